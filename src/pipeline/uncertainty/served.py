"""Served uncertainty: N inference-dropout passes (thesis 5.2.5) and the cascading rule (5.2.6.1).

The Classifier service answers `ClassifierSample`: each voting member's plain probability and
its N dropout draws per frame (the encoder runs once; only the head is sampled). The Censor
service turns that into each image's `UncertaintyResult`: the vote's mean and standard deviation,
whether the threshold lies within one deviation (eq. 5.3), and, when asked, the cascade's answer.

Protection fails closed: an answer only ever censors *more* with these options. With
`uncertainty`, an image whose vote could reach the threshold within one standard deviation
(mean + std >= threshold) is censored; with `cascade`, an image the cascade calls gore is
censored too, whatever the plain vote said.
"""

from __future__ import annotations

import logging
import threading
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from pipeline.metrics import CascadeSource, Uncertainty, cascade, is_uncertain

MemberLoss = Literal["wrl", "bce", "macro_soft_f1", "double_soft_f1"] | None
log = logging.getLogger(__name__)


class MemberSample(BaseModel):
    name: str
    loss: MemberLoss = Field(description="The loss it was trained with (the cascade needs WRL and BCE members).")
    weight: float = Field(description="Its share of the learned vote.")
    probabilities: list[float] = Field(description="Its plain (no dropout) gore probability per frame.")
    draws: list[list[float]] = Field(description="passes x frames: its gore probability with dropout on.")


class ClassifierSample(BaseModel):
    """The Classifier service's answer to `uncertainty`; `refusal` says why it cannot, if it cannot."""

    passes: int
    members: list[MemberSample] = Field(default_factory=list)
    refusal: str | None = None


class MemberUncertainty(BaseModel):
    name: str
    loss: MemberLoss
    probability: float = Field(description="Its plain gore probability.")
    mean: float
    std: float


class CascadeResult(BaseModel):
    probability: float = Field(description="The cascading ensemble's gore probability.")
    source: CascadeSource = Field(description="Which rule decided: the WRL model, the BCE model, or their average.")


class UncertaintyResult(BaseModel):
    """One image's uncertainty (its most doubtful frame: the highest mean + std)."""

    passes: int = Field(description="Inference-dropout passes (GORE_UNCERTAINTY_PASSES).")
    frame: int = Field(description="The frame these figures are of (0 for a still image).")
    mean: float = Field(description="Mean of the vote's gore probability over the passes.")
    std: float = Field(description="Its standard deviation.")
    uncertain: bool = Field(description="The threshold lies within [mean - std, mean + std] (thesis eq. 5.3).")
    members: list[MemberUncertainty]
    cascade: CascadeResult | None = Field(None, description="The thesis' cascading rule, when asked for.")
    censors: bool = Field(
        description="These figures make the answer gore (mean + std, or the cascade, reaches the threshold)."
    )


def _vote(weights: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """(members,) vote weights, (members, passes, frames) draws -> the vote's (passes, frames)."""
    weights = np.clip(weights, 0.0, None) + 1e-12
    return np.tensordot(weights / weights.sum(), draws, axes=1)


def _group(members: list[MemberSample], weights: np.ndarray, draws: np.ndarray, loss: str) -> Uncertainty:
    """The vote of the members trained with `loss` (their vote weights renormalised)."""
    chosen = np.array([m.loss == loss for m in members])
    vote = _vote(weights[chosen], draws[chosen])
    return Uncertainty(mean=vote.mean(axis=0), std=vote.std(axis=0), passes=len(vote))


def cascade_refusal(sample: ClassifierSample) -> str | None:
    losses = {m.loss for m in sample.members}
    if {"wrl", "bce"} <= losses:
        return None
    return (
        "the cascading rule needs a classifier with both WRL and BCE members (the thesis' Voting_Mixed); "
        f"this one's members were trained with {sorted(str(loss) for loss in losses)}"
    )


def summarise(
    sample: ClassifierSample, frames: list[int], threshold: float, with_cascade: bool
) -> list[UncertaintyResult]:
    """Each image's result; `frames[i]` is how many of the sample's columns are image i's frames."""
    members = sample.members
    weights = np.array([m.weight for m in members], np.float64)
    each = np.array([m.draws for m in members], np.float64)  # (members, passes, all frames)
    plain = np.array([m.probabilities for m in members], np.float64)
    vote = _vote(weights, each)
    mean, std = vote.mean(axis=0), vote.std(axis=0)
    each_mean, each_std = each.mean(axis=1), each.std(axis=1)
    decision = None
    if with_cascade:  # Both groups exist: checked by cascade_refusal.
        decision = cascade(_group(members, weights, each, "wrl"), _group(members, weights, each, "bce"), threshold)
    results, start = [], 0
    for count in frames:
        span = slice(start, start + count)
        start += count
        frame = int(np.argmax(mean[span] + std[span]))
        at = span.start + frame
        result = UncertaintyResult(
            passes=sample.passes,
            frame=frame,
            mean=round(float(mean[at]), 6),
            std=round(float(std[at]), 6),
            uncertain=bool(is_uncertain(mean[at], std[at], threshold)),
            members=[
                MemberUncertainty(
                    name=m.name,
                    loss=m.loss,
                    probability=round(float(plain[i, at]), 6),
                    mean=round(float(each_mean[i, at]), 6),
                    std=round(float(each_std[i, at]), 6),
                )
                for i, m in enumerate(members)
            ],
            censors=bool(mean[at] + std[at] >= threshold),
        )
        if decision is not None:  # The frame the cascade is surest is gore speaks for the image.
            best = span.start + int(np.argmax(decision.probability[span]))
            probability = float(decision.probability[best])
            result.cascade = CascadeResult(probability=round(probability, 6), source=decision.source[best])
            result.censors = result.censors or probability >= threshold
        results.append(result)
    return results


class DropoutSampling:
    """What the Classifier service runs for `uncertainty`: the Keras copy of its model (ONNX has no
    dropout), loaded on the first request so a deployment that never asks pays no memory for it."""

    def __init__(self, stored, keras_model=None, threads: int = 0) -> None:
        self.stored, self.threads = stored, threads
        self._model = keras_model
        self._sampler = None
        self._losses: dict[str, MemberLoss] = {}
        self._refusal: str | None = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        from pipeline.model_store.loading import TRAINING_EXTRAS, keras_available, load_stored, stored_metadata

        if "keras" not in stored_metadata(self.stored).backends:
            self._refusal = (
                f"{self.stored.tag} is stored as ONNX only (the repository's demo models are), and ONNX has no "
                "inference dropout: uncertainty needs the Keras copy, which `make models` trains here"
            )
            return
        if not keras_available():
            self._refusal = (
                f"uncertainty runs the Keras copy of the classifier, which needs TensorFlow: {TRAINING_EXTRAS}"
            )
            return
        from pipeline.uncertainty.dropout import DropoutSampler, ensemble_members, vote_weights

        if self._model is None:
            log.info("loading the Keras copy of %s for inference-dropout passes", self.stored.tag)
            self._model = load_stored(self.stored, "keras", self.threads)
        members = ensemble_members(self._model)
        if not members:
            self._refusal = (
                f"{self.stored.tag} is not built from our classifier members (it was imported whole), so it has "
                "no inference dropout: uncertainty is not available"
            )
            return
        spec = stored_metadata(self.stored).spec or {}
        losses = {m["name"]: m.get("loss") for m in spec.get("members", [])}
        for member in members:  # Imported with our members but no spec: the thesis' names say the loss.
            suffix = member.name.rsplit("_", 1)[-1]
            self._losses[member.name] = losses.get(member.name) or (suffix if suffix in ("wrl", "bce") else None)
        self._sampler = DropoutSampler(members, vote_weights(self._model, len(members)))

    def sample(self, images: np.ndarray, passes: int) -> ClassifierSample:
        with self._lock:  # One load, and one sampling at a time (TensorFlow holds the cores anyway).
            if self._sampler is None and self._refusal is None:
                self._load()
            if self._refusal is not None:
                return ClassifierSample(passes=passes, refusal=self._refusal)
            plain, draws = self._sampler.sample(np.asarray(images, np.float32), passes)
            sampler = self._sampler
        return ClassifierSample(
            passes=passes,
            members=[
                MemberSample(
                    name=member.name,
                    loss=self._losses.get(member.name),
                    weight=float(weight),
                    probabilities=np.clip(p, 0, 1).tolist(),
                    draws=np.clip(d, 0, 1).tolist(),
                )
                for member, weight, p, d in zip(sampler.members, sampler.weights, plain, draws, strict=True)
            ],
        )
