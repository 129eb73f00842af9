"""Models from the store run in this process (the offline path and tests), as async callables."""

from __future__ import annotations

import numpy as np
from anyio import to_thread

from pipeline.model_store.metadata import ModelInfo
from pipeline.model_store.registry import load_for_serving, stored_model
from pipeline.serving.censorer import ModelCall


def local_model(
    tag: str, allow_untrained: bool, backend: str = "auto", threads: int = 0
) -> tuple[ModelCall, ModelInfo]:
    model, info = load_for_serving(stored_model(tag), allow_untrained=allow_untrained, backend=backend, threads=threads)

    async def call(images: np.ndarray) -> np.ndarray:  # In a thread: decoding and writing go on meanwhile.
        return await to_thread.run_sync(model.predict_on_batch, images.astype(np.float32))

    return call, info
