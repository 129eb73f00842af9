"""The square copy of an image that the models see; the original is kept untouched."""

from __future__ import annotations

import cv2
import numpy as np


def model_input(pixels: np.ndarray, size: int) -> np.ndarray:
    """size x size RGB uint8: area averaging when shrinking, linear when growing."""
    downscaling = pixels.shape[0] >= size and pixels.shape[1] >= size
    interpolation = cv2.INTER_AREA if downscaling else cv2.INTER_LINEAR
    return cv2.resize(pixels, (size, size), interpolation=interpolation)


def model_batch(images: list[np.ndarray], size: int) -> np.ndarray:
    """What the service feeds a model: each whole image resized, as one float32 batch."""
    return np.stack([model_input(image, size) for image in images]).astype(np.float32)


def model_masks(masks: list[np.ndarray], size: int) -> np.ndarray:
    """Masks at the model's resolution, to score its output against."""
    return np.stack([cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA) for m in masks])
