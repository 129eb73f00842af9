"""Gore censoring pipeline: classify, segment, censor.

The Keras stack is chosen here, before anything imports TensorFlow:
`segmentation_models` 1.0.1 and the thesis models need Keras 2 (`tf_keras`),
and TensorFlow 2.21 defaults to Keras 3 unless told otherwise.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# On a GPU host, two model services share one device: neither may take it all.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

__version__ = "0.1.0"
