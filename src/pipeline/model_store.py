"""Putting profile models into the BentoML model store, and taking them out to serve.

BentoML's Keras integration imports Keras 3 and rejects tf_keras models, so models go into the
generic store with our metadata beside them. What is stored is what loads back fast and
survives library upgrades:

    weights.h5    the weights (Keras HDF5)
    model.json    the Keras config, for models not built from a profile spec

A model of a profile's architecture is rebuilt on load by our own builders from the spec kept
in its metadata, then given its weights: no Keras config (with `segmentation_models`' custom
layers) has to deserialise, and loading FPN-EfficientNetB7 takes seconds where a `.keras`
file takes minutes. Every model is loaded back and compared before it is registered, so a
model that would not load never reaches the store; its outputs on two probe images are kept
(`fingerprint`) and checked again before a service starts.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import bentoml
import numpy as np
import tf_keras
from pydantic import BaseModel, Field, ValidationError

from pipeline.architectures import build_member, build_segmenter, build_voting_ensemble
from pipeline.architectures.custom_objects import keras_custom_objects
from pipeline.architectures.layers import InferenceDropout
from pipeline.errors import ModelNotReady
from pipeline.profiles import ClassifierSpec, Profile, SegmenterSpec
from pipeline.schemas import ModelInfo

Role = Literal["classifier", "segmenter"]
WEIGHTS_FILE, CONFIG_FILE = "weights.h5", "model.json"
LEGACY_MODEL_FILE = "model.keras"  # Stores written before weights.h5: loaded, never written.
ROUND_TRIP_TOLERANCE = 1e-5  # Same process, same machine: the reloaded model must agree this closely.
FINGERPRINT_TOLERANCE = 0.02  # Another machine (GPU, other CPU kernels) may differ a little; wrong weights a lot.
log = logging.getLogger(__name__)


class ModelDoesNotLoad(ValueError):
    """A model that would not load back the way a service loads it."""


class StoredModelMetadata(BaseModel):
    """What gore-censor keeps with every model in the BentoML store."""

    profile: str
    role: Role
    architecture: str
    input_size: int
    threshold: float = Field(description="The gore threshold the profile's models were tuned for.")
    parameters: int
    trained: bool
    demo: bool
    source: str
    metrics: dict[str, Any] = Field(default_factory=dict)
    spec: dict[str, Any] | None = Field(
        None, description="The profile spec the model is rebuilt from on load; null: load model.json."
    )
    fingerprint: list[float] | None = Field(
        None, description="Outputs on the probe images at registration; null for stochastic models."
    )


def model_name(role: Role, profile: str) -> str:
    return f"gore-{role}-{profile}"


def build_from_spec(
    role: Role, spec: ClassifierSpec | SegmenterSpec, *, profile: str, weights: str | None = None
) -> tf_keras.Model:
    if role == "classifier":
        assert isinstance(spec, ClassifierSpec)
        members = [
            build_member(m.architecture, weights=weights, input_size=spec.input_size, name=m.name) for m in spec.members
        ]
        return build_voting_ensemble(members, name=f"{profile}_classifier")
    assert isinstance(spec, SegmenterSpec)
    return build_segmenter(
        spec.backbone, weights=weights, input_size=spec.input_size, pyramid_block_filters=spec.pyramid_block_filters
    )


def role_spec(profile: Profile, role: Role) -> ClassifierSpec | SegmenterSpec:
    return profile.classifier if role == "classifier" else profile.segmenter


def build_profile_model(profile: Profile, role: Role, *, weights: str | None = "imagenet") -> tf_keras.Model:
    """A fresh model of the profile's architecture (ImageNet encoders where reachable)."""
    return build_from_spec(role, role_spec(profile, role), profile=profile.name, weights=weights)


# ---- probe images: the same inputs on every machine ----


def probe_images(size: int) -> np.ndarray:
    """Two (size, size, 3) raw RGB images: seeded noise and a colour gradient."""
    noise = np.random.default_rng(0).uniform(0, 255, (size, size, 3))
    ramp = np.linspace(0, 255, size)
    gradient = np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)), np.full((size, size), 128.0)], -1)
    return np.stack([noise, gradient]).astype(np.float32)


def _is_stochastic(model: tf_keras.Model) -> bool:
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


# ---- files ----


def save_model_files(model: tf_keras.Model, folder: Path) -> None:
    folder = Path(folder)
    model.save_weights(folder / WEIGHTS_FILE)
    (folder / CONFIG_FILE).write_text(model.to_json())


def load_model_files(folder: Path, meta: StoredModelMetadata) -> tf_keras.Model:
    """Rebuild from the spec (or the Keras config), then load the weights."""
    folder = Path(folder)
    if not (folder / WEIGHTS_FILE).is_file() and (folder / LEGACY_MODEL_FILE).is_file():
        return tf_keras.models.load_model(folder / LEGACY_MODEL_FILE, custom_objects=keras_custom_objects(), compile=False)
    if meta.spec is not None:
        spec_type = ClassifierSpec if meta.role == "classifier" else SegmenterSpec
        model = build_from_spec(meta.role, spec_type.model_validate(meta.spec), profile=meta.profile)
    else:
        config = (folder / CONFIG_FILE).read_text()
        model = tf_keras.models.model_from_json(config, custom_objects=keras_custom_objects())
    model.load_weights(folder / WEIGHTS_FILE)
    return model


def _round_trip(expected: np.ndarray | None, folder: Path, meta: StoredModelMetadata) -> None:
    """Load `folder` back as a service would and compare with the `expected` probe outputs."""
    what = f"this {meta.role} ({meta.architecture})"
    try:
        loaded = load_model_files(folder, meta)
    except Exception as error:  # Keras and h5py raise many types; all mean "does not load".
        raise ModelDoesNotLoad(f"{what} would not load back from the model store: {type(error).__name__}: {error}") from error
    if expected is None:  # Stochastic (inference dropout): loading is all that can be checked.
        return
    actual = probe_outputs(loaded)
    if expected.shape != actual.shape or not np.allclose(expected, actual, rtol=0, atol=ROUND_TRIP_TOLERANCE):
        raise ModelDoesNotLoad(f"{what} loads back from the model store with different outputs: it is not stored faithfully")


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
    """Check the model loads back, then save it into the model store with its metadata.

    `architecture=None` says the model is the profile's own architecture: it is rebuilt from the
    profile's spec on load. Any other model passes a name for its architecture and is stored
    with its Keras config.
    """
    spec = role_spec(profile, role)
    expected = None if _is_stochastic(model) else probe_outputs(model)
    meta = StoredModelMetadata(
        profile=profile.name,
        role=role,
        architecture=architecture or spec.architecture,
        input_size=spec.input_size,
        threshold=spec.threshold,
        parameters=int(model.count_params()),
        trained=trained,
        demo=profile.demo,
        source=source,
        metrics=metrics or {},
        spec=spec.model_dump() if architecture is None else None,
        fingerprint=None if expected is None else fingerprint(expected),
    )
    with tempfile.TemporaryDirectory(prefix="gore-model-") as staging:
        save_model_files(model, Path(staging))
        _round_trip(expected, Path(staging), meta)
        labels = {"profile": profile.name, "role": role, "demo": str(profile.demo).lower(), "trained": str(trained).lower()}
        with bentoml.models.create(model_name(role, profile.name), labels=labels, metadata=meta.model_dump(mode="json", exclude_none=True)) as stored:
            for name in (WEIGHTS_FILE, CONFIG_FILE):
                shutil.copyfile(Path(staging) / name, stored.path_of(name))
    return str(stored.tag)


# ---- out of the store ----


def stored_metadata(stored: bentoml.Model) -> StoredModelMetadata:
    try:
        return StoredModelMetadata.model_validate(stored.info.metadata)
    except ValidationError as error:
        fields = ", ".join(str(e["loc"][0]) for e in error.errors())
        raise ModelNotReady(f"{stored.tag} was not put in the store by gore-censor: its metadata lacks or mistypes {fields}") from None


def model_info(stored: bentoml.Model) -> ModelInfo:
    meta = stored_metadata(stored)
    return ModelInfo(tag=str(stored.tag), **meta.model_dump(include=set(ModelInfo.model_fields) - {"tag"}))


def servable_info(stored: bentoml.Model, *, allow_untrained: bool) -> ModelInfo:
    """The model's metadata, or a refusal: a model that was never trained is served only in a dry run."""
    info = model_info(stored)
    if not info.trained and not allow_untrained:
        raise ModelNotReady(
            f"{info.tag} was never trained, so its answers would be meaningless. Train or import weights "
            "(see README: 'Bring your own weights'), or set GORE_ALLOW_UNTRAINED=1 for a dry run."
        )
    return info


def load_stored(stored: bentoml.Model) -> tf_keras.Model:
    try:
        return load_model_files(Path(stored.path), stored_metadata(stored))
    except ModelNotReady:
        raise
    except Exception as error:  # Keras and h5py raise many types; all mean "cannot serve it".
        raise ModelNotReady(f"{stored.tag} does not load: {type(error).__name__}: {error}") from error


def load_for_serving(stored: bentoml.Model, *, allow_untrained: bool) -> tuple[tf_keras.Model, ModelInfo]:
    """Load a stored model after `servable_info` agrees, announcing dry runs and demo models loudly."""
    info = servable_info(stored, allow_untrained=allow_untrained)
    if not info.trained:
        log.warning("\n%s\n  DRY RUN: serving UNTRAINED model %s. Every answer says dry_run: true.\n%s", "!" * 72, info.tag, "!" * 72)
    if info.demo:
        log.warning("Serving DEMO model %s (synthetic training data): not a gore detector.", info.tag)
    return load_stored(stored), info


def verify_stored(stored: bentoml.Model) -> ModelInfo:
    """Load the model as a service would and check it still gives its registration outputs."""
    meta = stored_metadata(stored)
    model = load_stored(stored)
    if meta.fingerprint is not None:
        now = fingerprint(probe_outputs(model))
        if len(now) != len(meta.fingerprint) or not np.allclose(now, meta.fingerprint, rtol=0, atol=FINGERPRINT_TOLERANCE):
            raise ModelNotReady(f"{stored.tag} loads, but its outputs differ from those recorded when it was registered")
    return model_info(stored)


@dataclass(frozen=True)
class Preflight:
    """Before a model service starts its workers: can its model be served at all?

    Run in a child process, because a worker whose model fails to load is restarted forever
    by BentoML, and loading here would keep a copy of the model in the serve process.
    """

    tag: str
    allow_untrained: bool
    timeout_s: float

    def run(self) -> ModelInfo:
        info = servable_info(stored_model(self.tag), allow_untrained=self.allow_untrained)
        command = [sys.executable, "-m", "pipeline.cli", "models", "check", info.tag]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise ModelNotReady(f"{info.tag}: loading it took over {self.timeout_s:.0f} s (GORE_PREFLIGHT_TIMEOUT_S)") from None
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            reason = lines[-1].removeprefix("error: ")
            raise ModelNotReady(f"{info.tag} cannot be served: {reason}")
        return info


def stored_model(tag: str) -> bentoml.Model:
    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        raise ModelNotReady(
            f"model {tag} is not in the BentoML model store ($BENTOML_HOME, default ~/bentoml). "
            "Run `make models`, or `gore-censor models build|import --profile <name>`, first."
        ) from None


# ---- models trained elsewhere ----


def load_weights_file(path: Path, profile: Profile, role: Role) -> tuple[tf_keras.Model, str | None]:
    """A model trained elsewhere: a whole model (.keras or .h5), or .h5 weights for our architecture.

    Returns the model and the architecture name to register it under: None when it is (or
    its weights fit) the profile's own architecture. A whole model must take raw RGB in
    [0, 255] (ours carry their preprocessing inside); bare weights are loaded into our
    architecture, which does.
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
        raise ValueError(f"{path}: the model takes {model.input_shape[1:]}, the {profile.name} profile needs {expected}")
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
