"""Tiny models whose behaviour is known exactly, so tests can predict the pipeline's output.

A pixel is "red" when R - (G + B) / 2 is well above 60. The segmenter outputs that per pixel;
the classifier outputs sigmoid(100 * red_fraction - 5): 0.5 at 5% red pixels, ~0 for none.
"""

from __future__ import annotations

import numpy as np
import tf_keras

from pipeline.model_store.registry import register_model
from pipeline.profiles import ClassifierSpec, MemberSpec, Profile, SegmenterSpec

SIZE = 224
TEST_PROFILE = Profile(
    name="redtest",
    demo=False,
    description="Test models: score red pixels. Not a gore detector.",
    classifier=ClassifierSpec(members=[MemberSpec(name="red", architecture="red_pixel_fraction")]),
    segmenter=SegmenterSpec(backbone="red_pixel_map"),
)


def _redness(inputs):
    layer = tf_keras.layers.Conv2D(1, 1, activation="sigmoid", name="redness")
    out = layer(inputs)
    layer.set_weights([np.array([0.5, -0.25, -0.25], np.float32).reshape(1, 1, 3, 1), np.array([-30.0], np.float32)])
    return out


def red_segmenter() -> tf_keras.Model:
    inputs = tf_keras.Input((SIZE, SIZE, 3))
    return tf_keras.Model(inputs, _redness(inputs), name="red_segmenter")


def red_classifier() -> tf_keras.Model:
    inputs = tf_keras.Input((SIZE, SIZE, 3))
    fraction = tf_keras.layers.GlobalAveragePooling2D()(_redness(inputs))
    vote = tf_keras.layers.Dense(1, activation="sigmoid", name="probability")
    outputs = vote(fraction)
    vote.set_weights([np.array([[100.0]], np.float32), np.array([-5.0], np.float32)])
    return tf_keras.Model(inputs, outputs, name="red_classifier")


def register_red_models(trained: bool = True) -> dict[str, str]:
    """Put both models into the current BentoML store; returns their tags."""
    return {
        "classifier": register_model(
            red_classifier(),
            role="classifier",
            profile=TEST_PROFILE,
            trained=trained,
            source="tests/red_pixel_models.py",
            architecture="red_pixel_fraction",
        ),
        "segmenter": register_model(
            red_segmenter(),
            role="segmenter",
            profile=TEST_PROFILE,
            trained=trained,
            source="tests/red_pixel_models.py",
            architecture="red_pixel_map",
        ),
    }
