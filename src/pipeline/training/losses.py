"""Training losses (SPEC sections 2 and 3), as Keras-compatible `loss(y_true, y_pred)` functions.

Classification losses use the thesis' soft counts over the whole batch (eq. 2.12, 2.13, 5.1):
TP = x*q, FN = (1-x)*q, TN = (1-x)*(1-q), FP = x*(1-q), x the prediction, q the label.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

EPSILON = 1e-7
Loss = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def _soft_counts(y_true, y_pred):
    q = tf.cast(tf.reshape(y_true, [-1]), tf.float32)
    x = tf.cast(tf.reshape(y_pred, [-1]), tf.float32)
    tp = tf.reduce_sum(x * q)
    fn = tf.reduce_sum((1 - x) * q)
    tn = tf.reduce_sum((1 - x) * (1 - q))
    fp = tf.reduce_sum(x * (1 - q))
    return tp, fn, tn, fp


def weighted_recall_loss(w0: float = 0.30) -> Loss:
    """WRL = 1 - [(1 - w0) * TP/(TP+FN) + w0 * TN/(TN+FP)] (thesis eq. 5.1; w0 weighs the negatives)."""

    def wrl(y_true, y_pred):
        tp, fn, tn, fp = _soft_counts(y_true, y_pred)
        return 1.0 - ((1.0 - w0) * tp / (tp + fn + EPSILON) + w0 * tn / (tn + fp + EPSILON))

    wrl.__name__ = "wrl"
    return wrl


def binary_cross_entropy(y_true, y_pred):
    y_pred = tf.clip_by_value(tf.cast(y_pred, tf.float32), EPSILON, 1 - EPSILON)
    y_true = tf.cast(y_true, tf.float32)
    return -tf.reduce_mean(y_true * tf.math.log(y_pred) + (1 - y_true) * tf.math.log(1 - y_pred))


def macro_soft_f1(y_true, y_pred):
    """1 - soft F1 of the positive class (eq. 2.12, beta = 1)."""
    tp, fn, _, fp = _soft_counts(y_true, y_pred)
    return 1.0 - 2 * tp / (2 * tp + fn + fp + EPSILON)


def double_soft_f1(y_true, y_pred):
    """1 - (soft F1 of the positives + soft F1 of the negatives) / 2 (eq. 2.13)."""
    tp, fn, tn, fp = _soft_counts(y_true, y_pred)
    positive = 2 * tp / (2 * tp + fn + fp + EPSILON)
    negative = 2 * tn / (2 * tn + fp + fn + EPSILON)
    return 1.0 - 0.5 * (positive + negative)


def iou_loss(y_true, y_pred):
    """Jaccard loss: 1 - sum(p*q) / (sum(p) + sum(q) - sum(p*q)), over the batch."""
    q, p = tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32)
    intersection = tf.reduce_sum(p * q)
    return 1.0 - (intersection + EPSILON) / (tf.reduce_sum(p) + tf.reduce_sum(q) - intersection + EPSILON)


def dice_loss(y_true, y_pred):
    q, p = tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32)
    return 1.0 - (2 * tf.reduce_sum(p * q) + EPSILON) / (tf.reduce_sum(p) + tf.reduce_sum(q) + EPSILON)


def tversky_loss(alpha: float = 0.5, beta: float = 0.5) -> Loss:
    """1 - TP / (TP + alpha*FP + beta*FN); alpha = beta = 0.5 is Dice, 1 and 1 is IoU."""

    def tversky(y_true, y_pred):
        tp, fn, _, fp = _soft_counts(y_true, y_pred)
        return 1.0 - (tp + EPSILON) / (tp + alpha * fp + beta * fn + EPSILON)

    tversky.__name__ = "tversky"
    return tversky


def focal_loss(gamma: float = 2.0, alpha: float = 0.25) -> Loss:
    """Binary focal loss: -alpha_t * (1 - p_t)^gamma * log(p_t), averaged."""

    def focal(y_true, y_pred):
        q = tf.cast(y_true, tf.float32)
        p = tf.clip_by_value(tf.cast(y_pred, tf.float32), EPSILON, 1 - EPSILON)
        p_t = q * p + (1 - q) * (1 - p)
        alpha_t = q * alpha + (1 - q) * (1 - alpha)
        return tf.reduce_mean(-alpha_t * tf.pow(1 - p_t, gamma) * tf.math.log(p_t))

    focal.__name__ = "focal"
    return focal


CLASSIFICATION_LOSSES: dict[str, Callable[[], Loss]] = {
    "wrl": weighted_recall_loss,
    "bce": lambda: binary_cross_entropy,
    "macro_soft_f1": lambda: macro_soft_f1,
    "double_soft_f1": lambda: double_soft_f1,
}
SEGMENTATION_LOSSES: dict[str, Callable[[], Loss]] = {
    "iou": lambda: iou_loss,
    "dice": lambda: dice_loss,
    "tversky": tversky_loss,
    "focal": focal_loss,
    "bce": lambda: binary_cross_entropy,
}
