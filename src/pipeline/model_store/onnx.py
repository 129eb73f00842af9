"""The ONNX Runtime backend: each stored model also exported with tf2onnx, run by ONNX Runtime.

The export happens when a model is registered, is checked against the Keras model's outputs on
the probe images, and is kept beside it as `model.onnx`. A service runs whichever backend its
setting (or its profile) picks; on a GPU host ONNX Runtime uses CUDA when its GPU build is
installed, and TensorFlow uses the GPU as always.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

ONNX_FILE = "model.onnx"
OPSET = 17
Backend = Literal["keras", "onnx"]


def export_onnx(model, path: Path) -> None:
    """Write `model` (tf_keras, raw RGB in) as ONNX, with a batch dimension of any size."""
    import tensorflow as tf
    import tf2onnx

    size = model.input_shape[1]
    signature = (tf.TensorSpec((None, size, size, 3), tf.float32, name="image"),)
    tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET, output_path=str(path))


class OnnxModel:
    """An ONNX Runtime session with what the pipeline and the evaluation ask of a Keras model."""

    def __init__(self, path: Path, threads: int = 0, name: str | None = None):
        import onnxruntime as ort

        self.name = name or Path(path).stem

        options = ort.SessionOptions()
        options.log_severity_level = 3  # Errors only: tf2onnx's resize attributes draw a warning per call.
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        providers = [p for p in wanted if p in ort.get_available_providers()]
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        shape = self.session.get_inputs()[0].shape
        self.input_shape = (None, *(int(d) for d in shape[1:]))

    def predict_on_batch(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.asarray(images, dtype=np.float32)})[0]

    def predict(self, images: np.ndarray, batch_size: int = 16, verbose: int = 0) -> np.ndarray:
        """Keras' `predict`, batch by batch: the evaluation code takes either."""
        parts = [self.predict_on_batch(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0,))
