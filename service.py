"""Gore censoring service: a classifier and a segmenter service, chained by Censor.

bentoml serve service:Censor      # POST /censor, POST /censor/batch, GET /images/..., /admin/..., the web app at /app
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import bentoml
import numpy as np

with bentoml.importing():
    from pipeline.config import WEB_PREFIX, get_settings
    from pipeline.metrics import DROPOUT_PASSES
    from pipeline.model_store.metadata import ModelInfo
    from pipeline.serving import telemetry
    from pipeline.serving.entry import Entry, ModelClients
    from pipeline.serving.model_service import load_model, preflight
    from pipeline.serving.resilience import DRAINING
    from pipeline.serving.routes import censor as work
    from pipeline.serving.schemas import BatchItem, Cascade, CensorResult, Margin, Passes, Style, Threshold, Uncertain
    from pipeline.uncertainty.served import ClassifierSample, DropoutSampling
    from pipeline.web import web_app

settings = get_settings()
batching = {"batchable": True, "max_batch_size": settings.max_batch_size, "max_latency_ms": settings.max_latency_ms}
model_service = {"resources": settings.model_resources(), "traffic": {"timeout": settings.request_timeout_s}}


@bentoml.service(**model_service)
class Classifier:
    """(N, S, S, 3) raw RGB -> (N,) gore probabilities."""

    model_ref = bentoml.models.BentoModel(settings.classifier_tag)
    preflight = bentoml.on_deployment(lambda: preflight(settings.classifier_tag))

    def __init__(self) -> None:
        self.model, self.model_info = load_model(self.model_ref)
        keras = self.model if self.model_info.backend == "keras" else None  # ONNX has no dropout: Keras, on demand.
        self.dropout = DropoutSampling(self.model_ref, keras, settings.threads_per_model)

    @bentoml.api(**batching)
    def classify(self, images: np.ndarray) -> np.ndarray:
        return self.model.predict_on_batch(images.astype(np.float32)).reshape(-1)

    @bentoml.api
    def uncertainty(self, images: np.ndarray, passes: Passes = DROPOUT_PASSES) -> ClassifierSample:
        """(N, S, S, 3) raw RGB -> each member's plain probability and `passes` inference-dropout draws."""
        return self.dropout.sample(images, passes)

    @bentoml.api
    def info(self) -> ModelInfo:
        return self.model_info


@bentoml.service(**model_service)
class Segmenter:
    """(N, S, S, 3) raw RGB -> (N, S, S) per-pixel gore probabilities."""

    model_ref = bentoml.models.BentoModel(settings.segmenter_tag)
    preflight = bentoml.on_deployment(lambda: preflight(settings.segmenter_tag))

    def __init__(self) -> None:
        self.model, self.model_info = load_model(self.model_ref)

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
@bentoml.asgi_app(entry.videos_app(), path="/videos")  # Censored in the background, frame by frame.
@bentoml.asgi_app(entry.annotation_app(), path="/annotation")  # Active learning: what to label next, labels in.
@bentoml.asgi_app(  # The analysts' web app: people sign in there.
    web_app(settings, entry.stores, entry.views, entry.annotation, entry.current_censorer), path=WEB_PREFIX
)
@bentoml.service(workers=settings.censor_workers, traffic={"timeout": settings.request_timeout_s})
class Censor:
    classifier = bentoml.depends(Classifier, url=settings.classifier_url)
    segmenter = bentoml.depends(Segmenter, url=settings.segmenter_url)
    prepare = bentoml.on_deployment(lambda: entry.prepare())  # Once, before workers: sweep leftovers, first token.

    def __init__(self) -> None:
        DRAINING.install(settings.shutdown_grace_s)  # On SIGTERM: finish or refuse, then exit in time.
        self.models = ModelClients(self.classifier.to_async, self.segmenter.to_async)
        entry.start_jobs(self.models)  # Collection jobs, worked through in the background.

    @bentoml.on_shutdown
    async def stop_jobs(self) -> None:
        await entry.stop_jobs()  # What the background runners claimed goes back before the process exits.

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
        current = partial(entry.censorer, self.models)
        return await work.censor_one(current, image, threshold, style, margin, uncertainty, cascade)

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
        current, most = partial(entry.censorer, self.models), settings.max_batch_images
        return await work.censor_batch(current, images, most, threshold, style, margin, uncertainty, cascade)


for middleware, options in entry.middleware():  # In the order they run.
    Censor.add_asgi_middleware(middleware, **options)
telemetry.install(Censor, Classifier, Segmenter)  # /metrics counts by route template, never by image id.
