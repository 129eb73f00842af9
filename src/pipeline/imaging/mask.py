"""From a segmentation map to a censored image (SPEC section 1, steps 5 to 9), with OpenCV.

The mask follows the thesis: 1 keeps a pixel, 0 censors it, so censoring is a multiplication.

Kernel sizes are set in *model pixels*: the segmenter sees the image at 224 x 224, so one
model pixel covers `scale = max(height, width) / 224` original pixels and upsampling makes
blocks of that size. The median filter spans one block (it rounds the staircase edges);
closing and opening use an ellipse of two blocks, so a censored speck or a kept hole smaller
than about two model pixels counts as noise, at any resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.config import CensorStyle


def _odd(value: float, minimum: int = 3) -> int:
    size = max(minimum, int(round(value)))
    return size if size % 2 else size + 1


@dataclass(frozen=True)
class KernelSizes:
    median: int
    morphology: int

    @classmethod
    def for_image(cls, height: int, width: int, model_size: int = 224) -> KernelSizes:
        scale = max(height, width) / model_size
        return cls(median=_odd(scale), morphology=_odd(2 * scale))


def keep_mask(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Binarise: probability > threshold -> 0 (censor), else 1 (keep)."""
    return (probabilities <= threshold).astype(np.uint8)


def full_size_mask(small_keep: np.ndarray, height: int, width: int, model_size: int = 224) -> np.ndarray:
    """Nearest-neighbour upsample, median filter, closing then opening."""
    kernels = KernelSizes.for_image(height, width, model_size)
    mask = cv2.resize(small_keep, (width, height), interpolation=cv2.INTER_NEAREST)
    mask = cv2.medianBlur(mask, kernels.median)
    ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernels.morphology, kernels.morphology))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, ellipse)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, ellipse)


def apply_mask(original: np.ndarray, keep: np.ndarray, style: CensorStyle = "black") -> np.ndarray:
    """Censor where keep == 0; pixels where keep == 1 are returned unchanged."""
    if style == "black":
        return original * keep[..., None]  # The thesis' multiplication into the three channels.
    height, width = keep.shape
    if style == "blur":
        # Strong enough that a wound's shape is gone, not just softened.
        sigma = max(height, width) / 40
        hidden = cv2.GaussianBlur(original, (0, 0), sigmaX=sigma, sigmaY=sigma)
    elif style == "pixelate":
        blocks = 24
        cols, rows = max(1, width * blocks // max(height, width)), max(1, height * blocks // max(height, width))
        small = cv2.resize(original, (cols, rows), interpolation=cv2.INTER_AREA)
        hidden = cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    else:
        raise ValueError(f"unknown censor style {style!r}")
    return np.where(keep[..., None].astype(bool), original, hidden)


@dataclass(frozen=True)
class Censored:
    image: np.ndarray
    """H x W x 3 uint8, the original's size."""
    keep: np.ndarray
    """H x W uint8: 1 kept, 0 censored."""

    @property
    def censored_fraction(self) -> float:
        return float(1.0 - self.keep.mean())

    def gore_mask_png_pixels(self) -> np.ndarray:
        """The mask as served: 255 where gore was censored, 0 elsewhere."""
        return ((1 - self.keep) * 255).astype(np.uint8)


def censor_image(
    original: np.ndarray, probabilities: np.ndarray, *, threshold: float, style: CensorStyle = "black"
) -> Censored:
    """Steps 5 to 9: binarise, upsample, clean, apply."""
    height, width = original.shape[:2]
    keep = full_size_mask(keep_mask(probabilities, threshold), height, width, probabilities.shape[0])
    return Censored(image=apply_mask(original, keep, style), keep=keep)
