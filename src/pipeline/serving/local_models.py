"""Models from the store run in this process (the offline path, benchmarks and tests), as async callables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from anyio import to_thread

from pipeline.config import Settings
from pipeline.model_store.loading import load_for_serving, stored_model
from pipeline.model_store.metadata import ModelInfo
from pipeline.serving.censorer import Censorer, ModelCall, SampleCall
from pipeline.uncertainty.served import DropoutSampling


def local_model(
    tag: str, allow_untrained: bool, backend: str = "auto", threads: int = 0
) -> tuple[ModelCall, ModelInfo]:
    model, info = load_for_serving(stored_model(tag), allow_untrained=allow_untrained, backend=backend, threads=threads)

    async def call(images: np.ndarray) -> np.ndarray:  # In a thread: decoding and writing go on meanwhile.
        return await to_thread.run_sync(model.predict_on_batch, images.astype(np.float32))

    return call, info


def local_sampler(tag: str, threads: int = 0) -> SampleCall:
    """The classifier's inference-dropout passes in this process (its Keras copy, loaded when first asked)."""
    sampling = DropoutSampling(stored_model(tag), threads=threads)

    async def call(images: np.ndarray, passes: int):
        return await to_thread.run_sync(sampling.sample, images, passes)

    return call


def local_censorer(
    settings: Settings,
    *,
    allow_untrained: bool = False,
    data_dir: Path | None = None,
    render: bool = False,
    threads: int | None = None,
) -> Censorer:
    """The pipeline with both of the settings' models in this process; `threads` per model
    (default: the setting; 0: the runtime's own choice)."""
    untrained = allow_untrained or settings.allow_untrained
    threads = settings.threads_per_model if threads is None else threads
    classify, classifier = local_model(settings.classifier_tag, untrained, settings.backend, threads)
    segment, segmenter = local_model(settings.segmenter_tag, untrained, settings.backend, threads)
    return Censorer.from_settings(
        settings,
        classify=classify,
        segment=segment,
        classifier=classifier,
        segmenter=segmenter,
        data_dir=data_dir,
        render=render,
        sample=local_sampler(settings.classifier_tag, threads),
    )
