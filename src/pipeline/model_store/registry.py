"""Putting models into the BentoML model store (taking them out to serve: loading.py).

BentoML's Keras integration imports Keras 3 and rejects tf_keras models, so models go into
the generic store as files (`files.py`) with our metadata beside them. Every model is loaded
back and compared before it is registered, so a model that would not load never reaches the
store; its outputs on two probe images are kept and checked again before a service starts.
`register_model` needs the training extras (TensorFlow); `register_onnx` (the repository's demo
models) does not, and neither does importing this module.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import bentoml
import numpy as np

from pipeline.model_store.metadata import StoredModelMetadata, model_name
from pipeline.model_store.onnx import ONNX_FILE, OnnxModel, export_onnx
from pipeline.model_store.probes import fingerprint, probe_images, probe_outputs
from pipeline.profiles import Profile, Role

ROUND_TRIP_TOLERANCE = 1e-5  # Same process, same machine: the reloaded model must agree this closely.
ONNX_TOLERANCE = 1e-4  # Another runtime's kernels round differently; a wrong export differs by far more.
log = logging.getLogger(__name__)


class ModelDoesNotLoad(ValueError):
    """A model that would not load back the way a service loads it."""


def _round_trip(expected: np.ndarray | None, folder: Path, meta: StoredModelMetadata) -> None:
    """Load `folder` back as a service would and compare with the `expected` probe outputs."""
    from pipeline.model_store import files

    what = f"this {meta.role} ({meta.architecture})"
    try:
        loaded = files.load_model_files(folder, meta)
    except Exception as error:  # Keras and h5py raise many types; all mean "does not load".
        raise ModelDoesNotLoad(
            f"{what} would not load back from the model store: {type(error).__name__}: {error}"
        ) from error
    if expected is None:  # Stochastic (inference dropout): loading is all that can be checked.
        return
    actual = probe_outputs(loaded)
    if expected.shape != actual.shape or not np.allclose(expected, actual, rtol=0, atol=ROUND_TRIP_TOLERANCE):
        raise ModelDoesNotLoad(
            f"{what} loads back from the model store with different outputs: it is not stored faithfully"
        )


def _exported(model: Any, path: Path, expected: np.ndarray) -> bool:
    """An ONNX copy that gives the Keras model's outputs, or none (the model is still stored)."""
    try:
        export_onnx(model, path)
        actual = OnnxModel(path).predict_on_batch(probe_images(model.input_shape[1]))
    except Exception as error:  # tf2onnx and ONNX Runtime raise many types; all mean "no ONNX copy".
        log.warning("no ONNX copy of %s: %s: %s", model.name, type(error).__name__, error)
        return False
    if actual.shape != expected.shape or not np.allclose(actual, expected, rtol=0, atol=ONNX_TOLERANCE):
        log.warning("no ONNX copy of %s: its outputs differ from the Keras model's", model.name)
        return False
    return True


def register_model(
    model: Any,
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
    from pipeline.architectures import role_spec
    from pipeline.model_store import files

    spec = role_spec(profile, role)
    expected = None if files.is_stochastic(model) else probe_outputs(model)
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
        files.save_model_files(model, Path(staging))
        _round_trip(expected, Path(staging), meta)
        if with_onnx and expected is not None and _exported(model, Path(staging) / ONNX_FILE, expected):
            meta.backends = ["keras", "onnx"]
            meta.backend = getattr(spec, "backend", "keras")
        names = (files.WEIGHTS_FILE, files.CONFIG_FILE, *([ONNX_FILE] if "onnx" in meta.backends else []))
        return _stored(meta, {name: Path(staging) / name for name in names})


def register_onnx(path: Path, meta: StoredModelMetadata) -> str:
    """An ONNX model alone (no Keras copy: the repository's demo models), with its metadata."""
    return _stored(meta.model_copy(update={"backends": ["onnx"], "backend": "onnx"}), {ONNX_FILE: Path(path)})


def _stored(meta: StoredModelMetadata, files_by_name: dict[str, Path]) -> str:
    labels = {
        "profile": meta.profile,
        "role": meta.role,
        "demo": str(meta.demo).lower(),
        "trained": str(meta.trained).lower(),
    }
    # BentoML metadata takes basic types only: absent fields are left out, not null.
    metadata = meta.model_dump(mode="json", exclude_none=True)
    with bentoml.models.create(model_name(meta.role, meta.profile), labels=labels, metadata=metadata) as stored:
        for name, path in files_by_name.items():
            shutil.copyfile(path, stored.path_of(name))
    return str(stored.tag)
