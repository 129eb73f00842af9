"""Putting models into the BentoML model store, and taking them out to serve.

BentoML's Keras integration imports Keras 3 and rejects tf_keras models, so models go into
the generic store as files (`files.py`) with our metadata beside them. Every model is loaded
back and compared before it is registered, so a model that would not load never reaches the
store; its outputs on two probe images are kept and checked again before a service starts.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import tf_keras
from pydantic import ValidationError

from pipeline.architectures import role_spec
from pipeline.errors import ModelNotReady
from pipeline.model_store import files
from pipeline.model_store.metadata import ModelInfo, StoredModelMetadata, model_name
from pipeline.model_store.onnx import ONNX_FILE, OnnxModel, export_onnx
from pipeline.profiles import Backend, Profile, Role

ROUND_TRIP_TOLERANCE = 1e-5  # Same process, same machine: the reloaded model must agree this closely.
ONNX_TOLERANCE = 1e-4  # Another runtime's kernels round differently; a wrong export differs by far more.
Predictor = tf_keras.Model | OnnxModel  # Both answer `predict_on_batch` and `input_shape`.
FINGERPRINT_TOLERANCE = 0.02  # Another machine (GPU, other CPU kernels) may differ a little; wrong weights a lot.
log = logging.getLogger(__name__)


class ModelDoesNotLoad(ValueError):
    """A model that would not load back the way a service loads it."""


def _round_trip(expected: np.ndarray | None, folder: Path, meta: StoredModelMetadata) -> None:
    """Load `folder` back as a service would and compare with the `expected` probe outputs."""
    what = f"this {meta.role} ({meta.architecture})"
    try:
        loaded = files.load_model_files(folder, meta)
    except Exception as error:  # Keras and h5py raise many types; all mean "does not load".
        raise ModelDoesNotLoad(
            f"{what} would not load back from the model store: {type(error).__name__}: {error}"
        ) from error
    if expected is None:  # Stochastic (inference dropout): loading is all that can be checked.
        return
    actual = files.probe_outputs(loaded)
    if expected.shape != actual.shape or not np.allclose(expected, actual, rtol=0, atol=ROUND_TRIP_TOLERANCE):
        raise ModelDoesNotLoad(
            f"{what} loads back from the model store with different outputs: it is not stored faithfully"
        )


def _exported(model: tf_keras.Model, path: Path, expected: np.ndarray) -> bool:
    """An ONNX copy that gives the Keras model's outputs, or none (the model is still stored)."""
    try:
        export_onnx(model, path)
        actual = OnnxModel(path).predict_on_batch(files.probe_images(model.input_shape[1]))
    except Exception as error:  # tf2onnx and ONNX Runtime raise many types; all mean "no ONNX copy".
        log.warning("no ONNX copy of %s: %s: %s", model.name, type(error).__name__, error)
        return False
    if actual.shape != expected.shape or not np.allclose(actual, expected, rtol=0, atol=ONNX_TOLERANCE):
        log.warning("no ONNX copy of %s: its outputs differ from the Keras model's", model.name)
        return False
    return True


def register_model(
    model: tf_keras.Model,
    *,
    role: Role,
    profile: Profile,
    trained: bool,
    source: str,
    metrics: dict[str, Any] | None = None,
    architecture: str | None = None,
    with_onnx: bool = True,
) -> str:
    """Check the model loads back, then save it into the model store with its metadata.

    `architecture=None` says the model is the profile's own architecture: it is rebuilt from the
    profile's spec on load. Any other model passes a name for its architecture and is stored
    with its Keras config. `with_onnx` also exports it for ONNX Runtime (checked the same way);
    a big model's export takes minutes and gigabytes, so it can be left for later.
    """
    spec = role_spec(profile, role)
    expected = None if files.is_stochastic(model) else files.probe_outputs(model)
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
        fingerprint=None if expected is None else files.fingerprint(expected),
    )
    with tempfile.TemporaryDirectory(prefix="gore-model-") as staging:
        files.save_model_files(model, Path(staging))
        _round_trip(expected, Path(staging), meta)
        if with_onnx and expected is not None and _exported(model, Path(staging) / ONNX_FILE, expected):
            meta.backends = ["keras", "onnx"]
            meta.backend = getattr(spec, "backend", "keras")
        labels = {
            "profile": profile.name,
            "role": role,
            "demo": str(profile.demo).lower(),
            "trained": str(trained).lower(),
        }
        # BentoML metadata takes basic types only: absent fields are left out, not null.
        metadata = meta.model_dump(mode="json", exclude_none=True)
        with bentoml.models.create(model_name(role, profile.name), labels=labels, metadata=metadata) as stored:
            for name in (files.WEIGHTS_FILE, files.CONFIG_FILE, *([ONNX_FILE] if "onnx" in meta.backends else [])):
                shutil.copyfile(Path(staging) / name, stored.path_of(name))
    return str(stored.tag)


def stored_model(tag: str) -> bentoml.Model:
    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        raise ModelNotReady(
            f"model {tag} is not in the BentoML model store ($BENTOML_HOME, default ~/bentoml). "
            "Run `make models`, or `gore-censor models build|import --profile <name>`, first."
        ) from None


def has_model(role: Role, profile: str) -> bool:
    try:
        return bool(bentoml.models.list(model_name(role, profile)))
    except bentoml.exceptions.NotFound:
        return False


def stored_metadata(stored: bentoml.Model) -> StoredModelMetadata:
    try:
        return StoredModelMetadata.model_validate(stored.info.metadata)
    except ValidationError as error:
        fields = ", ".join(str(e["loc"][0]) for e in error.errors())
        raise ModelNotReady(
            f"{stored.tag} was not put in the store by gore-censor: its metadata lacks or mistypes {fields}"
        ) from None


def model_info(stored: bentoml.Model) -> ModelInfo:
    return ModelInfo.of(str(stored.tag), stored_metadata(stored))


def servable_info(stored: bentoml.Model, *, allow_untrained: bool) -> ModelInfo:
    """The model's metadata, or a refusal: a model that was never trained is served only in a dry run."""
    info = model_info(stored)
    if not info.trained and not allow_untrained:
        raise ModelNotReady(
            f"{info.tag} was never trained, so its answers would be meaningless. Train or import weights "
            "(see README: 'Bring your own weights'), or set GORE_ALLOW_UNTRAINED=1 for a dry run."
        )
    return info


def backend_for(stored: bentoml.Model, setting: str = "auto") -> Backend:
    """`setting` if it names a backend, else the model's own; a backend the store lacks is refused."""
    meta = stored_metadata(stored)
    backend: Backend = meta.backend if setting == "auto" else setting  # type: ignore[assignment]
    if backend not in meta.backends:
        raise ModelNotReady(
            f"{stored.tag} has no {backend} copy in the store (it has {', '.join(meta.backends)}): register it again "
            "with this version, or set GORE_BACKEND=keras"
        )
    return backend


def _tensorflow_threads(threads: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran an op in this process: its thread pools are fixed.
        log.warning("TensorFlow is initialised already; keeping its own thread counts")


def load_stored(stored: bentoml.Model, backend: Backend = "keras", threads: int = 0) -> Predictor:
    try:
        if backend == "onnx":
            return OnnxModel(Path(stored.path_of(ONNX_FILE)), threads)
        if threads > 0:
            _tensorflow_threads(threads)
        return files.load_model_files(Path(stored.path), stored_metadata(stored))
    except ModelNotReady:
        raise
    except Exception as error:  # Keras, h5py and ONNX Runtime raise many types; all mean "cannot serve it".
        raise ModelNotReady(f"{stored.tag} does not load: {type(error).__name__}: {error}") from error


def load_for_serving(
    stored: bentoml.Model, *, allow_untrained: bool, backend: str = "auto", threads: int = 0
) -> tuple[Predictor, ModelInfo]:
    """Load a stored model after `servable_info` agrees, announcing dry runs and demo models loudly."""
    info = servable_info(stored, allow_untrained=allow_untrained)
    if not info.trained:
        log.warning(
            "\n%s\n  DRY RUN: serving UNTRAINED model %s. Every answer says dry_run: true.\n%s",
            "!" * 72,
            info.tag,
            "!" * 72,
        )
    if info.demo:
        log.warning("Serving DEMO model %s (synthetic training data): not a gore detector.", info.tag)
    chosen = backend_for(stored, backend)
    return load_stored(stored, chosen, threads), info.model_copy(update={"backend": chosen})


def verify_stored(stored: bentoml.Model, backend: str = "auto") -> ModelInfo:
    """Load the model as a service would and check it still gives its registration outputs."""
    meta = stored_metadata(stored)
    model = load_stored(stored, backend_for(stored, backend))
    if meta.fingerprint is not None:
        now = files.fingerprint(files.probe_outputs(model))
        if len(now) != len(meta.fingerprint) or not np.allclose(
            now, meta.fingerprint, rtol=0, atol=FINGERPRINT_TOLERANCE
        ):
            raise ModelNotReady(
                f"{stored.tag} loads, but its outputs differ from those recorded when it was registered"
            )
    return model_info(stored)
