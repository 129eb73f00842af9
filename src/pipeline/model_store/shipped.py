"""Demo models kept in the repository, small: ONNX graphs with int8 weights (`models/demo-weights/`).

A newcomer's first answer should not wait for TensorFlow to install and the demo recipe to train.
So `make demo-weights` takes the demo models the recipe trained, keeps each ONNX copy's large
weight tensors as int8 with a scale per output channel (4 times smaller: about 8 MB for both
models, where float32 would be 32 MB), measures the models rebuilt from those weights on the
held-out synthetic test split, and writes it all with a digest of the recipe. `gore-censor models
ensure --profile demo` rebuilds them (float32 again, for ONNX Runtime), checks that they give the
recorded outputs on the probe images, and registers them: ONNX only, no TensorFlow needed.

DEMO MODELS: trained on synthetic images only; never a gore detector. Their metadata says so.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from pipeline.errors import ModelNotReady
from pipeline.model_store.metadata import StoredModelMetadata
from pipeline.profiles import Role

FOLDER = "demo-weights"  # Beside the profiles: models/demo-weights/.
MANIFEST = "weights.json"
MOST_FLOAT_ELEMENTS = 1024  # Tensors this small (biases, batch norms) stay float32.
ROLES: tuple[Role, ...] = ("classifier", "segmenter")
OUTPUT_TOLERANCE = 1e-4  # The same graph and weights in ONNX Runtime on another CPU.


class ShippedModel(BaseModel):
    file: str
    sha256: str
    metadata: StoredModelMetadata = Field(description="What it is registered with (metrics measured after packing).")


class ShippedWeights(BaseModel):
    """models/demo-weights/weights.json"""

    profile: str
    recipe: str = Field(description="Digest of the recipe the weights came from (see `recipe_digest`).")
    made: str = Field(description="When and from which stored models `make demo-weights` made them.")
    models: dict[Role, ShippedModel]


def recipe_digest(profiles_dir: Path) -> str:
    """SHA-256 of what decides the demo models: the profile, the synthetic data, the training order."""
    import pipeline

    package = Path(pipeline.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in (Path(profiles_dir) / "demo.yaml", package / "data" / "synthetic.py", package / "demo.py"):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def pack(onnx_bytes: bytes) -> bytes:
    """An ONNX model with its large float32 weights as int8 and a scale per output channel (.npz)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    arrays: dict[str, np.ndarray] = {}
    names = []
    for init in list(model.graph.initializer):
        weights = numpy_helper.to_array(init)
        if weights.dtype != np.float32 or weights.ndim < 2 or weights.size <= MOST_FLOAT_ELEMENTS:
            continue
        axis = 1 if weights.ndim == 2 else 0  # MatMul's (in, out); Conv's (out, in, h, w).
        others = tuple(i for i in range(weights.ndim) if i != axis)
        scale = np.abs(weights).max(axis=others, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        arrays[f"{len(names)}.q"] = np.round(weights / scale).clip(-127, 127).astype(np.int8)
        arrays[f"{len(names)}.scale"] = scale.astype(np.float32)
        names.append(init.name)
        model.graph.initializer.remove(init)
    out = io.BytesIO()
    np.savez_compressed(out, graph=np.frombuffer(model.SerializeToString(), np.uint8), names=np.array(names), **arrays)
    return out.getvalue()


def unpack(packed: bytes) -> bytes:
    """The ONNX model `pack` kept, its weights float32 again (each within half a step of the original)."""
    import onnx
    from onnx import numpy_helper

    with np.load(io.BytesIO(packed), allow_pickle=False) as stored:
        model = onnx.load_from_string(stored["graph"].tobytes())
        for index, name in enumerate(stored["names"]):
            weights = stored[f"{index}.q"].astype(np.float32) * stored[f"{index}.scale"]
            model.graph.initializer.append(numpy_helper.from_array(weights, str(name)))
    return model.SerializeToString()


def shipped_folder(profiles_dir: Path) -> Path:
    return Path(profiles_dir) / FOLDER


def read_manifest(profiles_dir: Path) -> ShippedWeights | None:
    path = shipped_folder(profiles_dir) / MANIFEST
    return ShippedWeights.model_validate_json(path.read_text()) if path.is_file() else None


def import_shipped(profiles_dir: Path) -> dict[str, str]:
    """Register the repository's demo models (ONNX only) after checking them; their tags by role."""
    from pipeline.model_store.onnx import OnnxModel
    from pipeline.model_store.probes import fingerprint, probe_outputs
    from pipeline.model_store.registry import register_onnx

    manifest = read_manifest(profiles_dir)
    if manifest is None:
        raise ModelNotReady(f"no demo weights in {shipped_folder(profiles_dir)}")
    if manifest.recipe != recipe_digest(profiles_dir):
        raise ModelNotReady(
            "the demo weights in the repository were made by another version of the demo recipe: "
            "run `make demo-weights` (or `make models` to train them here)"
        )
    tags = {}
    for role in ROLES:
        shipped = manifest.models[role]
        packed = (shipped_folder(profiles_dir) / shipped.file).read_bytes()
        if hashlib.sha256(packed).hexdigest() != shipped.sha256:
            raise ModelNotReady(f"{shipped.file} is not the file `make demo-weights` wrote (its SHA-256 differs)")
        with tempfile.TemporaryDirectory(prefix="gore-demo-") as staging:
            path = Path(staging) / "model.onnx"
            path.write_bytes(unpack(packed))
            now = fingerprint(probe_outputs(OnnxModel(path)))
            recorded = shipped.metadata.fingerprint or []
            if len(now) != len(recorded) or not np.allclose(now, recorded, rtol=0, atol=OUTPUT_TOLERANCE):
                raise ModelNotReady(f"{shipped.file} does not give the outputs recorded when it was made")
            tags[role] = register_onnx(path, shipped.metadata)
    return tags
