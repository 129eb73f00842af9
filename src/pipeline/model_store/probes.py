"""Two probe images and a model's outputs on them: how a stored model proves it is the same model.

Light on purpose (NumPy only): a serving install without TensorFlow checks its ONNX models
with these, and registration records them (`fingerprint`) when a model enters the store.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def probe_images(size: int) -> np.ndarray:
    """Two (size, size, 3) raw RGB images, the same on every machine: seeded noise and a gradient."""
    noise = np.random.default_rng(0).uniform(0, 255, (size, size, 3))
    ramp = np.linspace(0, 255, size)
    gradient = np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)), np.full((size, size), 128.0)], -1)
    return np.stack([noise, gradient]).astype(np.float32)


def probe_outputs(model: Any) -> np.ndarray:
    """A model's outputs on the probe images: anything with `predict_on_batch` and `input_shape`
    (a Keras model, an ONNX Runtime session)."""
    return np.asarray(model.predict_on_batch(probe_images(model.input_shape[1])), np.float64)


def fingerprint(outputs: np.ndarray) -> list[float]:
    """Outputs on the probe images, pooled to at most 4 x 4 per image (segmenters)."""
    if outputs.ndim == 4:  # (N, S, S, 1) maps: block means over a 4 x 4 grid.
        n, size = outputs.shape[0], outputs.shape[1]
        cut = size - size % 4
        outputs = outputs[:, :cut, :cut, 0].reshape(n, 4, cut // 4, 4, cut // 4).mean(axis=(2, 4))
    return [round(float(v), 6) for v in outputs.ravel()]
