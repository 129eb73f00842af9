"""Report pictures, drawn with matplotlib's object API (files only: no display, no backend to pick)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve

ERROR_GRID_COLUMNS, ERROR_GRID_MOST = 6, 24


def plot_pr_curve(labels: np.ndarray, probabilities: np.ndarray, study: dict[str, float], path: Path) -> None:
    precision, recall, thresholds = precision_recall_curve(labels, probabilities)
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    ax.plot(recall, precision, label="precision-recall")
    for key, marker in (("max_f1_threshold", "o"), ("recall_90_threshold", "s"), ("recall_95_threshold", "^")):
        i = int(np.argmin(np.abs(thresholds - study[key])))
        ax.plot(recall[i], precision[i], marker, label=f"{key.replace('_threshold', '')}: t={study[key]:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_uncertainty(std: np.ndarray, correct: np.ndarray, path: Path) -> None:
    fig = Figure(figsize=(4, 4))
    ax = fig.subplots()
    ax.boxplot([std[correct], std[~correct]], tick_labels=[f"correct ({correct.sum()})", f"wrong ({(~correct).sum()})"])
    ax.set(ylabel="MC-dropout std of gore probability")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_errors(
    images: list[np.ndarray], labels: np.ndarray, predicted: np.ndarray, path: Path, show_images: bool
) -> int:
    """A grid of false positives and negatives; thumbnails heavily blurred unless `show_images`
    (on real data the errors are gore images). Returns how many were drawn."""
    wrong = [i for i in range(len(images)) if bool(predicted[i]) != bool(labels[i])][:ERROR_GRID_MOST]
    if not wrong:
        return 0
    rows = (len(wrong) + ERROR_GRID_COLUMNS - 1) // ERROR_GRID_COLUMNS
    fig = Figure(figsize=(2 * ERROR_GRID_COLUMNS, 2.2 * rows))
    axes = fig.subplots(rows, ERROR_GRID_COLUMNS, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), wrong, strict=False):  # More cells than errors.
        thumb = cv2.resize(images[i], (160, 160), interpolation=cv2.INTER_AREA)
        ax.imshow(thumb if show_images else cv2.GaussianBlur(thumb, (0, 0), 12))
        ax.set_title(("false positive" if predicted[i] else "false negative"), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return len(wrong)
