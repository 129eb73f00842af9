"""Gore censoring service: a classifier and a segmenter service, chained by Censor.

bentoml serve service:Censor      # POST /censor, POST /censor/batch, GET /images/..., /admin/..., the web app at /app
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import bentoml
import numpy as np
from pydantic import Field

with bentoml.importing():
    from pipeline.config import MOST_UNCERTAINTY_PASSES, CensorStyle, get_settings
    from pipeline.model_store.loading import load_for_serving
    from pipeline.model_store.metadata import ModelInfo
    from pipeline.model_store.preflight import Preflight
    from pipeline.serving import telemetry
    from pipeline.serving.entry import Entry, ModelClients
    from pipeline.serving.resilience import DRAINING
    from pipeline.serving.schemas import BatchItem, CensorResult
    from pipeline.serving.uncertainty import ClassifierSample, DropoutSampling
    from pipeline.web import web_app

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
    Field(
        ge=0.0,
        le=8.0,
        description="Model pixels to widen the censored region by, rounded up to a multiple of 0.5; "
        "default: the deployment setting.",
    ),
]
Uncertain = Annotated[
    bool,
    Field(description="Run N inference-dropout passes (GORE_UNCERTAINTY_PASSES): mean and std; doubt censors."),
]
Cascade = Annotated[bool, Field(description="Also apply the thesis' cascading rule (WRL, then BCE members).")]
Passes = Annotated[int, Field(ge=2, le=MOST_UNCERTAINTY_PASSES, description="Inference-dropout passes.")]


@bentoml.service(**model_service)
class Classifier:
    """(N, S, S, 3) raw RGB -> (N,) gore probabilities."""

    model_ref = bentoml.models.BentoModel(settings.classifier_tag)

    @bentoml.on_deployment
    def preflight() -> None:  # Once, before workers start: a clean exit, not a restart loop.
        Preflight(
            settings.classifier_tag, settings.allow_untrained, settings.preflight_timeout_s, settings.backend
        ).run()

    def __init__(self) -> None:
        DRAINING.install(settings.shutdown_grace_s)
        self.model, self.model_info = load_for_serving(
            self.model_ref,
            allow_untrained=settings.allow_untrained,
            backend=settings.backend,
            threads=settings.threads_per_model,
        )
        keras = self.model if self.model_info.backend == "keras" else None  # ONNX has no dropout: Keras, on demand.
        self.dropout = DropoutSampling(self.model_ref, keras, settings.threads_per_model)

    @bentoml.api(**batching)
    def classify(self, images: np.ndarray) -> np.ndarray:
        return self.model.predict_on_batch(images.astype(np.float32)).reshape(-1)

    @bentoml.api
    def uncertainty(self, images: np.ndarray, passes: Passes = 30) -> ClassifierSample:
        """(N, S, S, 3) raw RGB -> each member's plain probability and `passes` inference-dropout draws."""
        return self.dropout.sample(images, passes)

    @bentoml.api
    def info(self) -> ModelInfo:
        return self.model_info


@bentoml.service(**model_service)
class Segmenter:
    """(N, S, S, 3) raw RGB -> (N, S, S) per-pixel gore probabilities."""

    model_ref = bentoml.models.BentoModel(settings.segmenter_tag)

    @bentoml.on_deployment
    def preflight() -> None:  # Once, before workers start: a clean exit, not a restart loop.
        Preflight(
            settings.segmenter_tag, settings.allow_untrained, settings.preflight_timeout_s, settings.backend
        ).run()

    def __init__(self) -> None:
        DRAINING.install(settings.shutdown_grace_s)
        self.model, self.model_info = load_for_serving(
            self.model_ref,
            allow_untrained=settings.allow_untrained,
            backend=settings.backend,
            threads=settings.threads_per_model,
        )

    @bentoml.api(**batching)
    def segment(self, images: np.ndarray) -> np.ndarray:
        return self.model.predict_on_batch(images.astype(np.float32))[..., 0]

    @bentoml.api
    def info(self) -> ModelInfo:
        return self.model_info


entry = Entry.from_settings(settings)


@bentoml.asgi_app(entry.images_app(), path="/images")
@bentoml.asgi_app(entry.admin_app(), path="/admin")
@bentoml.asgi_app(entry.jobs_app(), path="/jobs")
@bentoml.asgi_app(entry.annotation_app(), path="/annotation")  # Active learning: what to label next, labels in.
@bentoml.asgi_app(web_app(entry), path="/app")  # The analysts' web app: people sign in there.
@bentoml.service(workers=settings.censor_workers, traffic={"timeout": settings.request_timeout_s})
class Censor:
    classifier = bentoml.depends(Classifier, url=settings.classifier_url)
    segmenter = bentoml.depends(Segmenter, url=settings.segmenter_url)

    @bentoml.on_deployment
    def prepare() -> None:  # Once, before workers start: sweep leftovers, make the first token.
        entry.prepare()

    def __init__(self) -> None:
        DRAINING.install(settings.shutdown_grace_s)  # On SIGTERM: finish or refuse, then exit in time.
        self.models = ModelClients(self.classifier.to_async, self.segmenter.to_async)
        entry.start_jobs(self.models)  # Collection jobs, worked through in the background.

    @bentoml.api(route="/censor")
    async def censor(
        self,
        image: Path,
        threshold: Threshold = None,
        style: Style = None,
        margin: Margin = None,
        uncertainty: Uncertain = False,
        cascade: Cascade = False,
    ) -> CensorResult:
        """Classify one image, every frame; when gore_probability >= threshold, censor it. Answers its JSON."""
        return await entry.censor_one(self.models, image, threshold, style, margin, uncertainty, cascade)

    @bentoml.api(route="/censor/batch")
    async def censor_batch(
        self,
        images: list[Path],
        threshold: Threshold = None,
        style: Style = None,
        margin: Margin = None,
        uncertainty: Uncertain = False,
        cascade: Cascade = False,
    ) -> list[BatchItem]:
        """Several images in field `images`, batched through both models; each file fails alone."""
        return await entry.censor_batch(self.models, images, threshold, style, margin, uncertainty, cascade)


for middleware, options in entry.middleware():  # In the order they run.
    Censor.add_asgi_middleware(middleware, **options)
telemetry.install(Censor, Classifier, Segmenter)  # /metrics counts by route template, never by image id.
