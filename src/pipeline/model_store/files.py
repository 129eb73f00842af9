"""A model as files: weights plus how to rebuild it, and probe outputs that tell it is the same.

    weights.h5    the weights (Keras HDF5)
    model.json    the Keras config, for models not built from a profile spec

A model of a profile's architecture is rebuilt by our own builders from the spec kept in its
metadata, then given its weights: no Keras config (with `segmentation_models`' custom layers)
has to deserialise, and FPN-EfficientNetB7 loads in seconds where a `.keras` file takes minutes.
"""

from __future__ import annotations

from pathlib import Path

import tf_keras

from pipeline.architectures import build_from_spec
from pipeline.architectures.custom_objects import keras_custom_objects
from pipeline.architectures.layers import InferenceDropout
from pipeline.model_store.metadata import StoredModelMetadata
from pipeline.profiles import ClassifierSpec, SegmenterSpec

WEIGHTS_FILE, CONFIG_FILE = "weights.h5", "model.json"
LEGACY_MODEL_FILE = "model.keras"  # Stores written before weights.h5: loaded, never written.


def is_stochastic(model: tf_keras.Model) -> bool:
    return any(isinstance(layer, InferenceDropout) for layer in model.submodules)


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
