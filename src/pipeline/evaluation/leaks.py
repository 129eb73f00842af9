"""Does censoring hide the gore? The leak and the over-censoring of the served pipeline, per
safety margin and aspect ratio.

    leak            share of true gore pixels left visible (gore images the classifier missed count whole)
    leak, flagged   the same over the gore images the classifier flagged: what the mask alone lets through
    over-censoring  share of non-gore pixels hidden, over every image

Each image and its mask are stretched to the aspect ratio (models see their square resize of
it, as in service), so the cleaning's behaviour on elongated images is measured, not assumed.
"""

from __future__ import annotations

import cv2
import numpy as np
import tf_keras

from pipeline.data.dataset import Dataset
from pipeline.imaging.mask import full_size_mask, keep_mask
from pipeline.imaging.model_input import model_batch

ASPECT_RATIOS = {"1:1": (640, 640), "16:9": (1280, 720), "4:1": (2560, 640)}
MARGINS = (0.0, 1.0, 2.0)


def leak_study(
    classifier: tf_keras.Model,
    segmenter: tf_keras.Model,
    data: Dataset,
    *,
    threshold: float,
    seg_threshold: float,
    margins: tuple[float, ...] = MARGINS,
    ratios: dict[str, tuple[int, int]] = ASPECT_RATIOS,
) -> list[dict[str, float | str]]:
    """One row per (aspect ratio, margin). `data` needs masks (gore images) and may hold clean images."""
    rows = []
    for ratio, (width, height) in ratios.items():
        images = [cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR) for image in data.images()]
        truths = [cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR) >= 0.5 for mask in data.masks()]
        probabilities = classifier.predict(
            model_batch(images, classifier.input_shape[1]), batch_size=16, verbose=0
        ).ravel()
        maps = segmenter.predict(model_batch(images, segmenter.input_shape[1]), batch_size=8, verbose=0)[..., 0]
        for margin in margins:
            visible = gore = visible_flagged = gore_flagged = hidden_clean = clean = 0
            for truth, p, prob_map in zip(truths, probabilities, maps, strict=True):
                flagged = p >= threshold
                if flagged:
                    keep = full_size_mask(keep_mask(prob_map, seg_threshold), height, width, margin)
                else:
                    keep = np.ones((height, width), np.uint8)
                shown = int(keep[truth].sum())
                visible, gore = visible + shown, gore + int(truth.sum())
                if flagged:
                    visible_flagged, gore_flagged = visible_flagged + shown, gore_flagged + int(truth.sum())
                hidden_clean, clean = hidden_clean + int((keep[~truth] == 0).sum()), clean + int((~truth).sum())
            rows.append(
                {
                    "aspect ratio": f"{ratio} ({width} x {height})",
                    "margin": margin,
                    "leak": visible / max(gore, 1),
                    "leak, flagged images": visible_flagged / max(gore_flagged, 1),
                    "over-censoring": hidden_clean / max(clean, 1),
                }
            )
    return rows
