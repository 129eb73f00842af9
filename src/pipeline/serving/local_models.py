"""Models from the store run in this process (the offline path and tests), as async callables."""

from __future__ import annotations

import numpy as np

from pipeline.model_store.metadata import ModelInfo
from pipeline.model_store.registry import load_for_serving, stored_model
from pipeline.serving.censorer import ModelCall


def local_model(tag: str, allow_untrained: bool) -> tuple[ModelCall, ModelInfo]:
    model, info = load_for_serving(stored_model(tag), allow_untrained=allow_untrained)

    async def call(images: np.ndarray) -> np.ndarray:
        return model.predict_on_batch(images.astype(np.float32))

    return call, info
