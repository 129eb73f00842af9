"""Evaluation metrics (SPEC sections 2 and 3), on NumPy arrays, with scikit-learn where it has them."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

DROPOUT_PASSES = 30  # Inference-dropout passes: the thesis ran 30 (5.2.5); every default reads this one.

EPSILON = 1e-12


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Precision, recall, F1, Double F1 (mean of positive- and negative-class F1), negative
    precision and recall, and the mean binary entropy of the predictions (uncertainty)."""
    # Imported here: every serving worker imports this module (config reads DROPOUT_PASSES), and
    # scikit-learn took 1.4 of its 4 s start-up, time a probe spends queued before anyone answers.
    from sklearn.metrics import f1_score, precision_score, recall_score

    y = np.asarray(labels).astype(int).ravel()
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    predicted = (p >= threshold).astype(int)
    kwargs = {"zero_division": 0.0}
    f1_positive = f1_score(y, predicted, pos_label=1, **kwargs)
    f1_negative = f1_score(y, predicted, pos_label=0, **kwargs)
    clipped = np.clip(p, EPSILON, 1 - EPSILON)
    entropy = -(clipped * np.log2(clipped) + (1 - clipped) * np.log2(1 - clipped))
    return {
        "precision": float(precision_score(y, predicted, pos_label=1, **kwargs)),
        "recall": float(recall_score(y, predicted, pos_label=1, **kwargs)),
        "f1": float(f1_positive),
        "double_f1": float((f1_positive + f1_negative) / 2),
        "negative_precision": float(precision_score(y, predicted, pos_label=0, **kwargs)),
        "negative_recall": float(recall_score(y, predicted, pos_label=0, **kwargs)),
        "entropy": float(entropy.mean()),
    }


def _f1(tp: float, fp: float, fn: float) -> float:
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def segmentation_metrics(masks: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """IoU, MSE, F1 (Dice), negative F1 and Double F1, per image then averaged over images.

    `masks` in [0, 1] (soft edges from annotation are binarised at 0.5); an image with no gore
    that gets no gore predicted scores 1 on IoU and F1.
    """
    truths = np.asarray(masks, dtype=np.float32).reshape(len(masks), -1)
    probs = np.asarray(probabilities, dtype=np.float32).reshape(len(probabilities), -1)
    rows = []
    for truth, prob in zip(truths, probs, strict=True):
        t, p = truth >= 0.5, prob > threshold
        tp, fp, fn = float(np.sum(t & p)), float(np.sum(~t & p)), float(np.sum(t & ~p))
        tn = float(t.size) - tp - fp - fn
        f1_positive, f1_negative = _f1(tp, fp, fn), _f1(tn, fn, fp)
        rows.append(
            {
                "iou": 1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn),
                "mse": float(np.mean((prob - truth) ** 2)),
                "f1": f1_positive,
                "negative_f1": f1_negative,
                "double_f1": (f1_positive + f1_negative) / 2,
            }
        )
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


# ---- Uncertainty (thesis 5.2.5) and the cascading rule (5.2.6.1): light, so the Censor service uses them too ----


class Uncertainty(BaseModel):
    """Mean and standard deviation of N inference-dropout passes, per image."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    mean: np.ndarray
    std: np.ndarray
    passes: int


CascadeSource = Literal["wrl", "bce", "average"]


class CascadeDecision(BaseModel):
    """The cascading ensemble's answer per image, and which rule gave it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    probability: np.ndarray
    source: list[CascadeSource]


def is_uncertain(mean: np.ndarray, std: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Thesis eq. 5.3: the threshold lies in [mean - std, mean + std]."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    return (mean - std <= threshold) & (threshold <= mean + std)


def cascade(wrl: Uncertainty, bce: Uncertainty, threshold: float = 0.5) -> CascadeDecision:
    """Thesis 5.2.6.1: the WRL model decides unless it is uncertain (eq. 5.3); then the BCE model
    is consulted; if it is uncertain too, the two mean predictions are averaged."""
    wrl_unsure, bce_unsure = is_uncertain(wrl.mean, wrl.std, threshold), is_uncertain(bce.mean, bce.std, threshold)
    probability = np.where(~wrl_unsure, wrl.mean, np.where(~bce_unsure, bce.mean, (wrl.mean + bce.mean) / 2))
    source: list[CascadeSource] = [
        "wrl" if not w else ("bce" if not b else "average") for w, b in zip(wrl_unsure, bce_unsure, strict=True)
    ]
    return CascadeDecision(probability=probability, source=source)
