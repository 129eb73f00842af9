"""Gore censoring service: a classifier and a segmenter service, chained by Censor.

bentoml serve service:Censor      # POST /censor, POST /censor/batch, GET /images/..., /admin/...
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import bentoml
import numpy as np
from pydantic import Field

with bentoml.importing():
    from pipeline.config import CensorStyle, get_settings
    from pipeline.errors import InvalidRequest, PipelineError
    from pipeline.model_store.metadata import ModelInfo
    from pipeline.model_store.preflight import Preflight
    from pipeline.model_store.registry import load_for_serving
    from pipeline.serving.access import AccessGuard, AccessStore
    from pipeline.serving.censorer import Censorer, Upload
    from pipeline.serving.http import admin_app, error_response, images_app, upload_filename
    from pipeline.serving.image_store import FileSystemStore
    from pipeline.serving.openapi import OpenAPIExtension
    from pipeline.serving.schemas import BatchItem, CensorResult
    from pipeline.serving.upload_guard import FormSpec, UploadGuard
    from pipeline.serving.views import Defaults, Limits, Views

settings = get_settings()
batching = {"batchable": True, "max_batch_size": settings.max_batch_size, "max_latency_ms": settings.max_latency_ms}
model_service = {"resources": settings.model_resources(), "traffic": {"timeout": settings.request_timeout_s}}
Threshold = Annotated[
    float | None,
    Field(ge=0.0, le=1.0, description="Gore probability at which to censor; default: the deployment setting."),
]
Style = Annotated[CensorStyle | None, Field(description="Look of censored pixels; default: the deployment setting.")]
Margin = Annotated[
    float | None,
    Field(ge=0.0, le=8.0, description="Model pixels to widen the censored region by; default: the deployment setting."),
]


@bentoml.service(**model_service)
class Classifier:
    """(N, S, S, 3) raw RGB -> (N,) gore probabilities."""

    model_ref = bentoml.models.BentoModel(settings.classifier_tag)

    @bentoml.on_deployment
    def preflight() -> None:  # Once, before workers start: a clean exit, not a restart loop.
        Preflight(settings.classifier_tag, settings.allow_untrained, settings.preflight_timeout_s).run()

    def __init__(self) -> None:
        self.model, self.model_info = load_for_serving(self.model_ref, allow_untrained=settings.allow_untrained)

    @bentoml.api(**batching)
    def classify(self, images: np.ndarray) -> np.ndarray:
        return self.model.predict_on_batch(images.astype(np.float32)).reshape(-1)

    @bentoml.api
    def info(self) -> ModelInfo:
        return self.model_info


@bentoml.service(**model_service)
class Segmenter:
    """(N, S, S, 3) raw RGB -> (N, S, S) per-pixel gore probabilities."""

    model_ref = bentoml.models.BentoModel(settings.segmenter_tag)

    @bentoml.on_deployment
    def preflight() -> None:  # Once, before workers start: a clean exit, not a restart loop.
        Preflight(settings.segmenter_tag, settings.allow_untrained, settings.preflight_timeout_s).run()

    def __init__(self) -> None:
        self.model, self.model_info = load_for_serving(self.model_ref, allow_untrained=settings.allow_untrained)

    @bentoml.api(**batching)
    def segment(self, images: np.ndarray) -> np.ndarray:
        return self.model.predict_on_batch(images.astype(np.float32))[..., 0]

    @bentoml.api
    def info(self) -> ModelInfo:
        return self.model_info


store = FileSystemStore(settings.data_dir)
access = AccessStore.in_data_dir(settings.data_dir)
views = Views(store, Defaults.from_settings(settings), Limits.from_settings(settings))


@bentoml.asgi_app(images_app(store, views, access), path="/images")
@bentoml.asgi_app(admin_app(access), path="/admin")
@bentoml.service(traffic={"timeout": settings.request_timeout_s})
class Censor:
    classifier = bentoml.depends(Classifier, url=settings.classifier_url)
    segmenter = bentoml.depends(Segmenter, url=settings.segmenter_url)

    @bentoml.on_deployment
    def first_admin_token() -> None:  # Once, before workers start: shown here and never again.
        made = access.ensure_first_admin()
        if made is not None:
            print(
                f"\nFIRST START: admin token (shown once, store it now): {made.secret}\n", file=sys.stderr, flush=True
            )

    def __init__(self) -> None:
        self._censorer: Censorer | None = None
        self._checked = 0.0

    async def censorer(self) -> Censorer:
        """The pipeline for the models served now, asked again every GORE_MODEL_INFO_TTL_S: a
        redeployed model service is noticed, and results carry the tags that made them."""
        if self._censorer is None or time.monotonic() - self._checked > settings.model_info_ttl_s:
            classifier = ModelInfo.model_validate(await self.classifier.to_async.info())
            segmenter = ModelInfo.model_validate(await self.segmenter.to_async.info())
            if self._censorer is None or (classifier, segmenter) != (
                self._censorer.classifier,
                self._censorer.segmenter,
            ):
                classify, segment = self.classifier.to_async.classify, self.segmenter.to_async.segment
                self._censorer = Censorer(store, classify, segment, classifier, segmenter, views)
            self._checked = time.monotonic()
        return self._censorer

    @bentoml.api(route="/censor")
    async def censor(
        self, image: Path, threshold: Threshold = None, style: Style = None, margin: Margin = None
    ) -> CensorResult:
        """Classify one image, every frame; when gore_probability >= threshold, censor it. Answers its JSON."""
        censorer = await self.censorer()
        options = censorer.options(threshold, style, margin)
        [outcome] = await censorer.censor([Upload(image, upload_filename(image))], options)
        return error_response(outcome) if isinstance(outcome, PipelineError) else outcome

    @bentoml.api(route="/censor/batch")
    async def censor_batch(
        self, images: list[Path], threshold: Threshold = None, style: Style = None, margin: Margin = None
    ) -> list[BatchItem]:
        """Several images in field `images`, batched through both models; each file fails alone."""
        if not 0 < len(images) <= settings.max_batch_images:
            return error_response(
                InvalidRequest(f"send 1 to {settings.max_batch_images} files in field 'images', got {len(images)}")
            )
        censorer = await self.censorer()
        uploads = [Upload(path, upload_filename(path)) for path in images]
        outcomes = await censorer.censor(uploads, censorer.options(threshold, style, margin))
        return [
            BatchItem(filename=o.filename, status=200, result=o)
            if isinstance(o, CensorResult)
            else BatchItem(filename=u.filename, status=int(o.status), error=str(o))
            for u, o in zip(uploads, outcomes, strict=True)
        ]


text_fields = {"threshold": False, "style": False, "margin": False}
slack = 1024 * 1024  # Multipart framing and the text fields.
# The first added runs first: the API description, then the token check, then the upload check.
Censor.add_asgi_middleware(OpenAPIExtension)
Censor.add_asgi_middleware(AccessGuard, store=access)
Censor.add_asgi_middleware(
    UploadGuard,
    routes={
        "/censor": FormSpec({"image": True, **text_fields}, settings.max_upload_bytes + slack),
        "/censor/batch": FormSpec(
            {"images": True, **text_fields}, settings.max_upload_bytes * settings.max_batch_images + slack
        ),
    },
)
