"""Putting profile models into the BentoML model store, and taking them out to serve.

BentoML's Keras integration imports Keras 3 and rejects tf_keras models, so models go into the
generic store as `model.keras` with our metadata beside them (see BENTOML_NOTES.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import bentoml
import tf_keras

import pipeline.architectures.layers  # noqa: F401  (registers our layers for load_model)
from pipeline.architectures import build_member, build_segmenter, build_voting_ensemble
from pipeline.errors import ModelNotReady
from pipeline.profiles import Profile
from pipeline.schemas import ModelInfo

Role = Literal["classifier", "segmenter"]
MODEL_FILE = "model.keras"
log = logging.getLogger(__name__)


def model_name(role: Role, profile: str) -> str:
    return f"gore-{role}-{profile}"


def build_profile_model(profile: Profile, role: Role, *, weights: str | None = "imagenet") -> tf_keras.Model:
    """A fresh model of the profile's architecture (ImageNet encoders where reachable)."""
    if role == "classifier":
        spec = profile.classifier
        members = [
            build_member(m.architecture, weights=weights, input_size=spec.input_size, name=m.name) for m in spec.members
        ]
        return build_voting_ensemble(members, name=f"{profile.name}_classifier")
    spec = profile.segmenter
    return build_segmenter(
        spec.backbone, weights=weights, input_size=spec.input_size, pyramid_block_filters=spec.pyramid_block_filters
    )


def load_weights_file(path: Path, profile: Profile, role: Role) -> tf_keras.Model:
    """A model trained elsewhere: a whole model (.keras or .h5), or .h5 weights for our architecture.

    A whole model must take raw RGB in [0, 255] (ours carry their preprocessing inside);
    bare weights are loaded into our architecture, which does.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise ValueError(f"{path}: expected a .keras or .h5 file")
    try:
        model = tf_keras.models.load_model(path, compile=False)
    except (ValueError, OSError, KeyError) as whole_model_error:
        if path.suffix == ".keras":
            raise ValueError(f"{path}: not a loadable Keras model ({whole_model_error})") from None
        model = build_profile_model(profile, role, weights=None)
        _load_bare_weights(model, path, role)
    spec = profile.classifier if role == "classifier" else profile.segmenter
    expected = (spec.input_size, spec.input_size, 3)
    if tuple(model.input_shape[1:]) != expected:
        raise ValueError(f"{path}: the model takes {model.input_shape[1:]}, the {profile.name} profile needs {expected}")
    return model


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


def register_model(
    model: tf_keras.Model,
    *,
    role: Role,
    profile: Profile,
    trained: bool,
    source: str,
    metrics: dict[str, Any] | None = None,
    architecture: str | None = None,
) -> str:
    """Save into the model store with the metadata the services and reports read."""
    spec = profile.classifier if role == "classifier" else profile.segmenter
    metadata = {
        "profile": profile.name,
        "role": role,
        "architecture": architecture or spec.architecture,
        "input_size": spec.input_size,
        "threshold": spec.threshold,
        "parameters": int(model.count_params()),
        "trained": trained,
        "demo": profile.demo,
        "source": source,
        "metrics": metrics or {},
    }
    labels = {"profile": profile.name, "role": role, "demo": str(profile.demo).lower(), "trained": str(trained).lower()}
    with bentoml.models.create(model_name(role, profile.name), labels=labels, metadata=metadata) as stored:
        model.save(stored.path_of(MODEL_FILE))
    return str(stored.tag)


def model_info(stored: bentoml.Model) -> ModelInfo:
    meta = stored.info.metadata
    try:
        return ModelInfo(
            tag=str(stored.tag),
            profile=meta["profile"],
            architecture=meta["architecture"],
            input_size=meta["input_size"],
            threshold=meta["threshold"],
            trained=meta["trained"],
            demo=meta["demo"],
            parameters=meta["parameters"],
        )
    except KeyError as missing:
        raise ModelNotReady(f"{stored.tag} was not put in the store by gore-censor: its metadata lacks {missing}") from None


def servable_info(stored: bentoml.Model, *, allow_untrained: bool) -> ModelInfo:
    """The model's metadata, or a refusal: a model that was never trained is served only in a dry run."""
    info = model_info(stored)
    if not info.trained and not allow_untrained:
        raise ModelNotReady(
            f"{info.tag} was never trained, so its answers would be meaningless. Train or import weights "
            "(see README: 'Bring your own weights'), or set GORE_ALLOW_UNTRAINED=1 for a dry run."
        )
    return info


def load_for_serving(stored: bentoml.Model, *, allow_untrained: bool) -> tuple[tf_keras.Model, ModelInfo]:
    """Load a stored model after `servable_info` agrees, announcing dry runs and demo models loudly."""
    info = servable_info(stored, allow_untrained=allow_untrained)
    if not info.trained:
        log.warning("\n%s\n  DRY RUN: serving UNTRAINED model %s. Every answer says dry_run: true.\n%s", "!" * 72, info.tag, "!" * 72)
    if info.demo:
        log.warning("Serving DEMO model %s (synthetic training data): not a gore detector.", info.tag)
    return tf_keras.models.load_model(stored.path_of(MODEL_FILE), compile=False), info


def stored_model(tag: str) -> bentoml.Model:
    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        raise ModelNotReady(
            f"model {tag} is not in the BentoML model store ($BENTOML_HOME, default ~/bentoml). "
            "Run `make models`, or `gore-censor models build|import --profile <name>`, first."
        ) from None
