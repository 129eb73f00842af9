"""Losses and metrics against values worked out by hand (soft counts as in thesis eq. 2.12, 2.13, 5.1)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.metrics import classification_metrics, segmentation_metrics
from pipeline.training import losses

# Labels q and predictions x of one batch. Soft counts:
# TP = .9 + .5 = 1.4, FN = .1 + .5 = 0.6, TN = .6 + .9 = 1.5, FP = .4 + .1 = 0.5
Q = np.array([1, 0, 1, 0], np.float32)
X = np.array([0.9, 0.4, 0.5, 0.1], np.float32)


def value(loss, q=Q, x=X) -> float:
    return float(loss(q, x))


def test_weighted_recall_loss():
    # Recall1 = 1.4 / 2 = 0.7, Recall0 = 1.5 / 2 = 0.75: 1 - (0.7 * 0.7 + 0.3 * 0.75) = 0.285
    assert value(losses.weighted_recall_loss(0.30)) == pytest.approx(0.285, abs=1e-6)
    # w0 = 0: only positive recall counts.
    assert value(losses.weighted_recall_loss(0.0)) == pytest.approx(0.3, abs=1e-6)


def test_binary_cross_entropy():
    expected = -(math.log(0.9) + math.log(0.6) + math.log(0.5) + math.log(0.9)) / 4
    assert value(losses.binary_cross_entropy) == pytest.approx(expected, abs=1e-6)


def test_macro_soft_f1():
    # 2 TP / (2 TP + FN + FP) = 2.8 / 3.9
    assert value(losses.macro_soft_f1) == pytest.approx(1 - 2.8 / 3.9, abs=1e-6)


def test_double_soft_f1():
    # negative-class soft F1 = 2 TN / (2 TN + FP + FN) = 3.0 / 4.1
    assert value(losses.double_soft_f1) == pytest.approx(1 - (2.8 / 3.9 + 3.0 / 4.1) / 2, abs=1e-6)


# A mask q and a prediction p: intersection 1.5, sum p 2.0, sum q 2.0.
MASK = np.array([1, 1, 0, 0], np.float32)
PRED = np.array([0.5, 1.0, 0.5, 0.0], np.float32)


def test_iou_dice_and_tversky_losses():
    assert value(losses.iou_loss, MASK, PRED) == pytest.approx(1 - 1.5 / 2.5, abs=1e-6)
    assert value(losses.dice_loss, MASK, PRED) == pytest.approx(1 - 3.0 / 4.0, abs=1e-6)
    assert value(losses.tversky_loss(0.5, 0.5), MASK, PRED) == pytest.approx(
        value(losses.dice_loss, MASK, PRED), abs=1e-6
    )
    assert value(losses.tversky_loss(1.0, 1.0), MASK, PRED) == pytest.approx(
        value(losses.iou_loss, MASK, PRED), abs=1e-6
    )


def test_focal_loss():
    q, p = np.array([1, 0], np.float32), np.array([0.9, 0.2], np.float32)
    expected = (0.25 * 0.1**2 * -math.log(0.9) + 0.75 * 0.2**2 * -math.log(0.8)) / 2
    assert value(losses.focal_loss(2.0, 0.25), q, p) == pytest.approx(expected, rel=1e-5)


def test_perfect_predictions_cost_nothing():
    for loss in (
        losses.weighted_recall_loss(),
        losses.macro_soft_f1,
        losses.double_soft_f1,
        losses.iou_loss,
        losses.dice_loss,
    ):
        assert value(loss, Q, Q) == pytest.approx(0.0, abs=1e-5)


def test_classification_metrics():
    labels = [1, 1, 1, 0, 0, 0, 0, 0]
    probabilities = [0.9, 0.6, 0.3, 0.7, 0.2, 0.1, 0.4, 0.05]  # TP 2, FN 1, FP 1, TN 4
    m = classification_metrics(labels, probabilities, threshold=0.5)
    assert (
        m["precision"] == pytest.approx(2 / 3)
        and m["recall"] == pytest.approx(2 / 3)
        and m["f1"] == pytest.approx(2 / 3)
    )
    assert m["negative_precision"] == pytest.approx(0.8) and m["negative_recall"] == pytest.approx(0.8)
    assert m["double_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert classification_metrics([1, 0], [0.5, 0.5])["entropy"] == pytest.approx(1.0)
    assert classification_metrics([1, 0], [1.0, 0.0])["entropy"] == pytest.approx(0.0, abs=1e-6)


def test_the_threshold_moves_the_metrics():
    labels, probabilities = [1, 1, 0], [0.9, 0.4, 0.3]
    assert classification_metrics(labels, probabilities, 0.5)["recall"] == 0.5
    assert classification_metrics(labels, probabilities, 0.35)["recall"] == 1.0


def test_segmentation_metrics():
    masks = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]]], np.float32)
    probabilities = np.array([[[0.9, 0.2], [0.7, 0.1]], [[0.1, 0.1], [0.1, 0.1]]], np.float32)
    m = segmentation_metrics(masks, probabilities, 0.5)
    # image 1: TP 1, FP 1, FN 1, TN 1 -> IoU 1/3, F1 0.5, negative F1 0.5; image 2: nothing to find, nothing found -> 1
    assert m["iou"] == pytest.approx((1 / 3 + 1) / 2)
    assert (
        m["f1"] == pytest.approx(0.75)
        and m["negative_f1"] == pytest.approx(0.75)
        and m["double_f1"] == pytest.approx(0.75)
    )
    assert m["mse"] == pytest.approx(((0.01 + 0.64 + 0.49 + 0.01) / 4 + 0.01) / 2)
