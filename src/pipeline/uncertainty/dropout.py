"""Monte Carlo dropout (thesis 5.2.5) and the cascading rule (thesis 5.2.6.1).

Inference dropout sits between a member's encoder and its pooling, so every pass shares the
encoder's output: `DropoutSampler` runs the encoder once and only the dropout and the small head
N times, which makes N = 30 passes cost little more than one.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from pipeline.architectures.from_spec import build_classifier
from pipeline.architectures.layers import InferenceDropout
from pipeline.metrics import DROPOUT_PASSES, CascadeDecision, Uncertainty, cascade, is_uncertain
from pipeline.profiles import Profile

__all__ = [  # The rules themselves are light (pipeline.metrics); the Censor service applies them too.
    "CascadeDecision",
    "DropoutSampler",
    "Uncertainty",
    "cascade",
    "is_uncertain",
    "mc_dropout_uncertainty",
    "member_uncertainty",
]

INFERENCE_DROPOUT_RATE = 0.5  # The thesis' infer-dropout.


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


def is_member(model: tf_keras.Model) -> bool:
    """A classifier member of ours: an encoder, then the thesis head from `pooling` on."""
    return any(layer.name == "pooling" for layer in model.layers)


def ensemble_members(classifier: tf_keras.Model) -> list[tf_keras.Model]:
    """The members of a voting ensemble, or the classifier itself when it is one member."""
    if is_member(classifier):
        return [classifier]
    return [layer for layer in classifier.layers if isinstance(layer, tf_keras.Model) and is_member(layer)]


def vote_weights(classifier: tf_keras.Model, count: int) -> np.ndarray:
    """The learned vote as weights summing to 1 (one member: 1)."""
    if count == 1:
        return np.ones(1)
    kernel = np.asarray(classifier.get_layer("vote").get_weights()[0], np.float64).ravel()
    return kernel / (kernel.sum() + tf_keras.backend.epsilon())


class _MemberSampler:
    """A member split at its pooling: encoder features once, then dropout and head per pass."""

    def __init__(self, member: tf_keras.Model, rate: float):
        names = [layer.name for layer in member.layers]
        start = names.index("pooling")
        features_from = member.get_layer("pooling").input
        if names[start - 1] == "inference_dropout":  # Built with it: sample before it instead.
            features_from = member.get_layer("inference_dropout").input
        self.features = tf_keras.Model(member.input, features_from)
        head_input = tf_keras.Input(features_from.shape[1:])
        x = InferenceDropout(rate)(head_input)
        for layer in member.layers[start:]:  # The thesis head is a chain; its layers are shared, not copied.
            x = layer(x)
        self.head = tf_keras.Model(head_input, x)
        plain = plain_input = tf_keras.Input(features_from.shape[1:])
        for layer in member.layers[start:]:
            plain = layer(plain)
        self.plain = tf_keras.Model(plain_input, plain)  # The member's own answer, from the same features.

        self._compiled: dict[int, object] = {}

    def _graph(self, passes: int):
        """One compiled call: the encoder once, the plain head once, and the dropout head once over
        the features repeated `passes` times (every row draws its own mask). Eager calls or
        `predict` per pass cost tens of milliseconds each in overhead alone."""
        if passes not in self._compiled:

            @tf.function(reduce_retracing=True)
            def run(images):
                features = self.features(images, training=False)
                plain = tf.reshape(self.plain(features, training=False), (-1,))
                repeated = tf.concat([features] * passes, axis=0) if passes else features[:0]
                draws = tf.reshape(self.head(repeated, training=False), (passes, -1))
                return plain, draws

            self._compiled[passes] = run
        return self._compiled[passes]

    def sample(self, images: np.ndarray, passes: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(N,) plain probabilities and (passes, N) inference-dropout draws; the encoder runs once."""
        run = self._graph(passes)
        plains, draws = [], []
        for start in range(0, len(images), batch_size):
            plain, drawn = run(tf.convert_to_tensor(images[start : start + batch_size], tf.float32))
            plains.append(plain.numpy())
            draws.append(drawn.numpy())
        if not plains:
            return np.zeros(0, np.float32), np.zeros((passes, 0), np.float32)
        return np.concatenate(plains), np.concatenate(draws, axis=1)

    def draws(self, images: np.ndarray, passes: int, batch_size: int) -> np.ndarray:
        return self.sample(images, passes, batch_size)[1]


class DropoutSampler:
    """N inference-dropout passes of a classifier: one member, or members combined by weights.

    The trained weights are used as they are, as `mc_dropout_model` does: dropout is added at
    inference only. Each member is sampled, then the weighted mean (the learned vote) is taken.
    """

    def __init__(
        self, members: list[tf_keras.Model], weights: np.ndarray | None = None, rate: float = INFERENCE_DROPOUT_RATE
    ):
        if not members:
            raise ValueError(
                "MC dropout needs members with the thesis head (a `pooling` layer): one of our classifier architectures"
            )
        self.members = members
        self.samplers = [_MemberSampler(member, rate) for member in members]
        self.weights = np.full(len(members), 1 / len(members)) if weights is None else np.asarray(weights, np.float64)

    @classmethod
    def of(cls, classifier: tf_keras.Model, rate: float = INFERENCE_DROPOUT_RATE) -> DropoutSampler:
        """For a member, or a voting ensemble of members (its learned vote weighs them)."""
        members = ensemble_members(classifier)
        return cls(members, vote_weights(classifier, len(members)) if members else None, rate)

    def member_draws(self, images: np.ndarray, passes: int, batch_size: int = 32) -> np.ndarray:
        """(members, passes, N) gore probabilities."""
        return np.stack([sampler.draws(images, passes, batch_size) for sampler in self.samplers])

    def sample(self, images: np.ndarray, passes: int, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Each member's plain probabilities (members, N) and draws (members, passes, N), in one encoder pass each."""
        each = [sampler.sample(images, passes, batch_size) for sampler in self.samplers]
        return np.stack([plain for plain, _ in each]), np.stack([draws for _, draws in each])

    def draws(self, images: np.ndarray, passes: int, batch_size: int = 32) -> np.ndarray:
        """(passes, N) gore probabilities of the classifier, one row per stochastic pass."""
        return np.tensordot(self.weights, self.member_draws(images, passes, batch_size), axes=1)


def mc_dropout_uncertainty(
    classifier: tf_keras.Model, images: np.ndarray, passes: int = DROPOUT_PASSES, rate: float = INFERENCE_DROPOUT_RATE
) -> Uncertainty:
    """Run `passes` inference-dropout passes (thesis 5.2.5: 30) on a batch of model inputs."""
    if passes < 2:
        raise ValueError("MC dropout needs at least 2 passes for a standard deviation")
    draws = DropoutSampler.of(classifier, rate).draws(np.asarray(images, np.float32), passes)
    return Uncertainty(mean=draws.mean(axis=0), std=draws.std(axis=0), passes=passes)


def member_uncertainty(
    classifier: tf_keras.Model, images: np.ndarray, passes: int = DROPOUT_PASSES, rate: float = INFERENCE_DROPOUT_RATE
) -> dict[str, Uncertainty]:
    """Each member's own mean and standard deviation, by member name (for `cascade`)."""
    if passes < 2:
        raise ValueError("MC dropout needs at least 2 passes for a standard deviation")
    sampler = DropoutSampler.of(classifier, rate)
    draws = sampler.member_draws(np.asarray(images, np.float32), passes)
    return {
        member.name: Uncertainty(mean=d.mean(axis=0), std=d.std(axis=0), passes=passes)
        for member, d in zip(sampler.members, draws, strict=True)
    }
