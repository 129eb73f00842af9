"""What the Classifier and Segmenter services share: the check before workers start and the model
each worker loads."""

from __future__ import annotations

from typing import Any

import bentoml

from pipeline.config import get_settings
from pipeline.model_store.loading import load_for_serving
from pipeline.model_store.metadata import ModelInfo
from pipeline.model_store.preflight import Preflight
from pipeline.serving.resilience import DRAINING


def preflight(tag: str) -> None:
    """Once, before workers start: a model that cannot serve is a clean exit, not a restart loop."""
    settings = get_settings()
    Preflight(tag, settings.allow_untrained, settings.preflight_timeout_s, settings.backend).run()


def load_model(model_ref: bentoml.Model) -> tuple[Any, ModelInfo]:
    """In each worker: drain on SIGTERM, then the stored model on the configured backend."""
    settings = get_settings()
    DRAINING.install(settings.shutdown_grace_s)
    threads, backend = settings.threads_per_model, settings.backend
    return load_for_serving(model_ref, allow_untrained=settings.allow_untrained, backend=backend, threads=threads)
