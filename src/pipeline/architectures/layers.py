"""Small serialisable layers the thesis models need; registered so `load_model` finds them."""

from __future__ import annotations

from typing import Literal

import tensorflow as tf
import tf_keras
from tf_keras.applications import imagenet_utils

PreprocessingMode = Literal["caffe", "tf", "torch"]


@tf_keras.saving.register_keras_serializable(package="pipeline")
class EncoderPreprocessing(tf_keras.layers.Layer):
    """Keras' ImageNet preprocessing (`caffe`, `tf` or `torch` mode) as a layer without weights."""

    def __init__(self, mode: PreprocessingMode, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("caffe", "tf", "torch"):
            raise ValueError(f"unknown preprocessing mode {mode!r}")
        self.mode = mode

    def call(self, inputs):
        return imagenet_utils.preprocess_input(tf.cast(inputs, self.compute_dtype), mode=self.mode)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@tf_keras.saving.register_keras_serializable(package="pipeline")
class InferenceDropout(tf_keras.layers.Dropout):
    """Dropout that stays on at inference, for Monte Carlo uncertainty (thesis 5.2.5)."""

    def call(self, inputs, training=None):
        return super().call(inputs, training=True)


@tf_keras.saving.register_keras_serializable(package="pipeline")
class WeightedVote(tf_keras.layers.Layer):
    """`Dense(n, 1, use_bias=False)` divided by the sum of its weights: a learned weighted mean.

    Weights are kept non-negative so the output stays a probability in [0, 1].
    """

    def build(self, input_shape):
        n = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(n, 1),
            initializer=tf_keras.initializers.Constant(1.0 / n),
            constraint=tf_keras.constraints.NonNeg(),
        )
        super().build(input_shape)

    def call(self, inputs):
        return tf.matmul(inputs, self.kernel) / (tf.reduce_sum(self.kernel) + tf_keras.backend.epsilon())
