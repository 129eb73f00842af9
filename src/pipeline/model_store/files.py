"""A model as files: weights plus how to rebuild it, and probe outputs that tell it is the same.

    weights.h5    the weights (Keras HDF5)
    model.json    the Keras config, for models not built from a profile spec

A model of a profile's architecture is rebuilt by our own builders from the spec kept in its
metadata, then given its weights: no Keras config (with `segmentation_models`' custom layers)
has to deserialise, and FPN-EfficientNetB7 loads in seconds where a `.keras` file takes minutes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tf_keras

from pipeline.architectures import build_from_spec
from pipeline.architectures.custom_objects import keras_custom_objects
from pipeline.architectures.layers import InferenceDropout
from pipeline.model_store.metadata import StoredModelMetadata
from pipeline.profiles import ClassifierSpec, SegmenterSpec

WEIGHTS_FILE, CONFIG_FILE = "weights.h5", "model.json"
LEGACY_MODEL_FILE = "model.keras"  # Stores written before weights.h5: loaded, never written.


def probe_images(size: int) -> np.ndarray:
    """Two (size, size, 3) raw RGB images, the same on every machine: seeded noise and a gradient."""
    noise = np.random.default_rng(0).uniform(0, 255, (size, size, 3))
    ramp = np.linspace(0, 255, size)
    gradient = np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)), np.full((size, size), 128.0)], -1)
    return np.stack([noise, gradient]).astype(np.float32)


def is_stochastic(model: tf_keras.Model) -> bool:
    return any(isinstance(layer, InferenceDropout) for layer in model.submodules)


def probe_outputs(model: tf_keras.Model) -> np.ndarray:
    return np.asarray(model.predict_on_batch(probe_images(model.input_shape[1])), np.float64)


def fingerprint(outputs: np.ndarray) -> list[float]:
    """Outputs on the probe images, pooled to at most 4 x 4 per image (segmenters)."""
    if outputs.ndim == 4:  # (N, S, S, 1) maps: block means over a 4 x 4 grid.
        n, size = outputs.shape[0], outputs.shape[1]
        cut = size - size % 4
        outputs = outputs[:, :cut, :cut, 0].reshape(n, 4, cut // 4, 4, cut // 4).mean(axis=(2, 4))
    return [round(float(v), 6) for v in outputs.ravel()]


def save_model_files(model: tf_keras.Model, folder: Path) -> None:
    folder = Path(folder)
    model.save_weights(folder / WEIGHTS_FILE)
    (folder / CONFIG_FILE).write_text(model.to_json())


def load_model_files(folder: Path, meta: StoredModelMetadata) -> tf_keras.Model:
    """Rebuild from the spec (or the Keras config), then load the weights."""
    folder = Path(folder)
    if not (folder / WEIGHTS_FILE).is_file() and (folder / LEGACY_MODEL_FILE).is_file():
        return tf_keras.models.load_model(
            folder / LEGACY_MODEL_FILE, custom_objects=keras_custom_objects(), compile=False
        )
    if meta.spec is not None:
        spec_type = ClassifierSpec if meta.role == "classifier" else SegmenterSpec
        model = build_from_spec(meta.role, spec_type.model_validate(meta.spec), profile=meta.profile)
    else:
        config = (folder / CONFIG_FILE).read_text()
        model = tf_keras.models.model_from_json(config, custom_objects=keras_custom_objects())
    model.load_weights(folder / WEIGHTS_FILE)
    return model
