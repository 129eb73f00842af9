"""The threshold study after training (thesis 5.2.7): points of the precision-recall curve."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve


def threshold_study(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Thresholds at max F1 and at 90% and 95% recall."""
    precision, recall, thresholds = precision_recall_curve(labels, probabilities)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    result = {"max_f1_threshold": float(thresholds[int(np.argmax(f1))]), "max_f1": float(f1.max())}
    for target in (0.90, 0.95):
        reaching = np.flatnonzero(recall[:-1] >= target)
        result[f"recall_{int(target * 100)}_threshold"] = float(thresholds[reaching[-1]]) if reaching.size else 0.0
    return result
