"""Monte Carlo dropout (thesis 5.2.5): the same classifier with dropout on at inference."""

from __future__ import annotations

import numpy as np
import tf_keras

from pipeline.architectures.from_spec import build_classifier
from pipeline.profiles import Profile


def mc_dropout_model(ensemble: tf_keras.Model, profile: Profile) -> tf_keras.Model:
    """The ensemble's weights with inference dropout in every member."""
    mc = build_classifier(profile.classifier, profile=profile.name, inference_dropout=True)
    for spec in profile.classifier.members:
        mc.get_layer(spec.name).set_weights(ensemble.get_layer(spec.name).get_weights())
    mc.get_layer("vote").set_weights(ensemble.get_layer("vote").get_weights())
    return mc


def mc_dropout_draws(mc: tf_keras.Model, images: np.ndarray, passes: int) -> np.ndarray:
    """(passes, N) gore probabilities, one row per stochastic pass."""
    return np.stack([mc.predict(images, batch_size=16, verbose=0).ravel() for _ in range(passes)])
