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


# A voting ensemble of two red-pixel members with the thesis head's shape (encoder, then a layer
# named `pooling`): inference dropout and the cascading rule work on it. `red_wrl` says 0.5 at 5%
# red pixels, `red_bce` at 3%; the vote weighs them 3 to 1.
VOTE_PROFILE = Profile(
    name="redvote",
    demo=False,
    description="Test models: a vote of two red-pixel members. Not a gore detector.",
    classifier=ClassifierSpec(
        members=[
            MemberSpec(name="red_wrl", architecture="red_pixel_member", loss="wrl"),
            MemberSpec(name="red_bce", architecture="red_pixel_member", loss="bce"),
        ]
    ),
    segmenter=SegmenterSpec(backbone="red_pixel_map"),
)
VOTE_WEIGHTS = (0.75, 0.25)
MEMBER_BIAS = {"red_wrl": -5.0, "red_bce": -3.0}


def red_member(name: str) -> tf_keras.Model:
    inputs = tf_keras.Input((SIZE, SIZE, 3))
    redness = tf_keras.layers.Conv2D(1, 1, activation="sigmoid", name=f"{name}_redness")
    x = redness(inputs)
    redness.set_weights([np.array([0.5, -0.25, -0.25], np.float32).reshape(1, 1, 3, 1), np.array([-30.0], np.float32)])
    x = tf_keras.layers.GlobalAveragePooling2D(name="pooling")(x)
    head = tf_keras.layers.Dense(1, activation="sigmoid", name="gore_probability")
    outputs = head(x)
    head.set_weights([np.array([[100.0]], np.float32), np.array([MEMBER_BIAS[name]], np.float32)])
    return tf_keras.Model(inputs, outputs, name=name)


def red_vote() -> tf_keras.Model:
    from pipeline.architectures import build_voting_ensemble

    ensemble = build_voting_ensemble([red_member("red_wrl"), red_member("red_bce")], name="red_vote")
    ensemble.get_layer("vote").set_weights([np.array(VOTE_WEIGHTS, np.float32).reshape(2, 1)])
    return ensemble


def register_red_vote_models() -> dict[str, str]:
    """The red-pixel vote and segmenter under the `redvote` profile; returns their tags."""
    common = {"profile": VOTE_PROFILE, "trained": True, "source": "tests/red_pixel_models.py"}
    return {
        "classifier": register_model(red_vote(), role="classifier", architecture="red_pixel_vote", **common),
        "segmenter": register_model(red_segmenter(), role="segmenter", architecture="red_pixel_map", **common),
    }
