"""Models trained elsewhere: a whole Keras model, or bare weights for a profile's architecture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tf_keras

from pipeline.architectures import build_profile_model, role_spec
from pipeline.architectures.custom_objects import keras_custom_objects
from pipeline.model_store.probes import probe_outputs
from pipeline.model_store.registry import ROUND_TRIP_TOLERANCE
from pipeline.profiles import Profile, Role


def load_weights_file(path: Path, profile: Profile, role: Role) -> tuple[tf_keras.Model, str | None]:
    """A whole model (.keras or .h5), or .h5 weights for the profile's architecture.

    Returns the model and the architecture name to register it under: None when it is (or its
    weights fit) the profile's own architecture. A whole model must take raw RGB in [0, 255]
    (ours carry their preprocessing inside); bare weights go into our architecture, which does.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise ValueError(f"{path}: expected a .keras or .h5 file")
    spec = role_spec(profile, role)
    try:
        model = tf_keras.models.load_model(path, custom_objects=keras_custom_objects(), compile=False)
    except (ValueError, OSError, KeyError, TypeError) as whole_model_error:
        if path.suffix == ".keras":
            raise ValueError(f"{path}: not a loadable Keras model ({whole_model_error})") from None
        model = build_profile_model(profile, role, weights=None)
        _load_bare_weights(model, path, role)
        return model, None
    expected = (spec.input_size, spec.input_size, 3)
    if tuple(model.input_shape[1:]) != expected:
        raise ValueError(
            f"{path}: the model takes {model.input_shape[1:]}, the {profile.name} profile needs {expected}"
        )
    ours = _as_profile_architecture(model, profile, role)
    return (ours, None) if ours is not None else (model, f"{model.name} (imported Keras model)")


def _as_profile_architecture(model: tf_keras.Model, profile: Profile, role: Role) -> tf_keras.Model | None:
    """The profile's architecture holding `model`'s weights, if they fit and give the same outputs."""
    ours = build_profile_model(profile, role, weights=None)
    if [tuple(w.shape) for w in ours.weights] != [tuple(w.shape) for w in model.weights]:
        return None
    ours.set_weights(model.get_weights())
    same = np.allclose(probe_outputs(ours), probe_outputs(model), rtol=0, atol=ROUND_TRIP_TOLERANCE)
    return ours if same else None


def _load_bare_weights(model: tf_keras.Model, path: Path, role: Role) -> None:
    try:
        model.load_weights(path)
        return
    except (ValueError, OSError) as error:
        if role != "segmenter":
            raise ValueError(f"{path}: weights do not fit the profile's classifier ({error})") from None
    # Weights saved from a bare `sm.FPN` (the thesis' code) fit the FPN inside our wrapper.
    try:
        model.layers[-1].load_weights(path)
    except (ValueError, OSError) as error:
        raise ValueError(f"{path}: weights do not fit the profile's segmenter ({error})") from None
