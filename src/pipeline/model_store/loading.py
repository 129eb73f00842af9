"""Taking models out of the BentoML model store to serve them (putting them in: registry.py).

No TensorFlow at import: a serving install runs the stored ONNX copies with ONNX Runtime, and
imports the Keras stack only when a model is asked for its Keras copy (the `keras` backend, or
the inference-dropout passes of `uncertainty`); without the training extras that is a clear
`ModelNotReady` saying what to install.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
from pydantic import ValidationError

from pipeline.errors import ModelNotReady
from pipeline.model_store.metadata import ModelInfo, StoredModelMetadata, model_name
from pipeline.model_store.onnx import ONNX_FILE, OnnxModel
from pipeline.model_store.probes import fingerprint, probe_outputs
from pipeline.profiles import Backend, Role

FINGERPRINT_TOLERANCE = 0.02  # Another machine (GPU, other CPU kernels) may differ a little; wrong weights a lot.
TRAINING_EXTRAS = "pip install -e '.[train]' (the training extras: TensorFlow, tf-keras, segmentation-models)"
log = logging.getLogger(__name__)


def keras_available() -> bool:
    """Whether the training extras are installed (without importing TensorFlow to find out)."""
    from importlib.util import find_spec

    try:
        return find_spec("tensorflow") is not None and find_spec("tf_keras") is not None
    except ImportError:  # A finder that refuses the name outright: not installed either.
        return False


def stored_model(tag: str) -> bentoml.Model:
    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        raise ModelNotReady(
            f"model {tag} is not in the BentoML model store ($BENTOML_HOME, default ~/bentoml). "
            "Run `make models`, or `gore-censor models ensure|build|import --profile <name>`, first."
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


def load_stored(stored: bentoml.Model, backend: Backend = "keras", threads: int = 0) -> Any:
    """The stored model as a predictor (`predict_on_batch`, `input_shape`): an ONNX Runtime session
    or the Keras model."""
    try:
        if backend == "onnx":
            return OnnxModel(Path(stored.path_of(ONNX_FILE)), threads)
        if not keras_available():
            raise ModelNotReady(
                f"{stored.tag}: its Keras copy needs TensorFlow, which is not installed: {TRAINING_EXTRAS}"
            )
        from pipeline.model_store import files

        if threads > 0:
            _tensorflow_threads(threads)
        return files.load_model_files(Path(stored.path), stored_metadata(stored))
    except ModelNotReady:
        raise
    except Exception as error:  # Keras, h5py and ONNX Runtime raise many types; all mean "cannot serve it".
        raise ModelNotReady(f"{stored.tag} does not load: {type(error).__name__}: {error}") from error


def load_for_serving(
    stored: bentoml.Model, *, allow_untrained: bool, backend: str = "auto", threads: int = 0
) -> tuple[Any, ModelInfo]:
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
        now = fingerprint(probe_outputs(model))
        if len(now) != len(meta.fingerprint) or not np.allclose(
            now, meta.fingerprint, rtol=0, atol=FINGERPRINT_TOLERANCE
        ):
            raise ModelNotReady(
                f"{stored.tag} loads, but its outputs differ from those recorded when it was registered"
            )
    return model_info(stored)
