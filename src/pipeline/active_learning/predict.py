"""A classifier's predictions on unlabelled images, in the form the strategies take."""

from __future__ import annotations

import numpy as np
import tf_keras

from pipeline.active_learning.strategies import PoolPredictions
from pipeline.uncertainty.dropout import DropoutSampler, ensemble_members, vote_weights


class Committee:
    """Members and how they are weighed: a stored voting ensemble (its learned vote), or the
    members a simulation trains (equal weights: the vote is fitted once the labels are in)."""

    def __init__(self, members: list[tf_keras.Model], weights: np.ndarray | None = None, whole=None):
        self.members = members
        self.weights = np.full(len(members), 1 / len(members)) if weights is None else np.asarray(weights, np.float64)
        self.whole = whole  # A classifier without our members (imported whole): probabilities only.
        self._sampler: DropoutSampler | None = None

    @classmethod
    def of(cls, classifier: tf_keras.Model) -> Committee:
        members = ensemble_members(classifier)
        if not members:
            return cls([], np.zeros(0), whole=classifier)
        return cls(members, vote_weights(classifier, len(members)))

    def sampler(self) -> DropoutSampler:
        if not self.members:
            raise ValueError("MC dropout needs a classifier built from our members (this one was imported whole)")
        if self._sampler is None:  # Its heads share the members' layers, so it follows their training.
            self._sampler = DropoutSampler(self.members, self.weights)
        return self._sampler

    def predict(self, x: np.ndarray, *, mc_passes: int = 0, members: bool = False, batch_size: int = 32):
        """PoolPredictions for a batch of model inputs (raw RGB, the model's size)."""
        if self.whole is not None:
            if members or mc_passes:
                raise ValueError(
                    "MC dropout and member disagreement need a classifier built from our members "
                    "(this one was imported whole)"
                )
            probabilities = self.whole.predict(x, batch_size=batch_size, verbose=0).ravel()
            return PoolPredictions(count=len(x), probabilities=np.clip(probabilities, 0, 1))
        each = np.stack([m.predict(x, batch_size=batch_size, verbose=0).ravel() for m in self.members])
        draws = self.sampler().draws(x, mc_passes, batch_size) if mc_passes else None
        return PoolPredictions(
            count=len(x),
            probabilities=np.clip(self.weights @ each, 0, 1),
            mc_draws=None if draws is None else np.clip(draws, 0, 1),
            members=each if members else None,
        )
