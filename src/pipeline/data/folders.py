"""The thesis' other two formats: a folder per class, and image + mask PNG pairs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.data.manifest import Dataset, Sample, read_mask

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
POSITIVE_FOLDERS = {"gore", "positive", "1"}
NEGATIVE_FOLDERS = {"not_gore", "no_gore", "non_gore", "negative", "0"}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def from_class_folders(root: Path) -> Dataset:
    """root/gore/*.jpg and root/not_gore/*.jpg (also positive/negative, 1/0)."""
    root = Path(root)
    samples = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = folder.name.lower()
        if label not in POSITIVE_FOLDERS | NEGATIVE_FOLDERS:
            raise ValueError(f"{folder}: class folders are named gore / not_gore (or positive / negative, 1 / 0)")
        gore = label in POSITIVE_FOLDERS
        samples += [Sample(image=os.path.relpath(p, root), gore=gore, attributes={"Gore": gore}) for p in _images(folder)]
    return Dataset(name=root.name, samples=samples)


def from_mask_pairs(root: Path, images: str = "images", masks: str = "masks") -> Dataset:
    """root/images/<stem>.<ext> with root/masks/<stem>.png; gore = the mask marks any pixel."""
    root = Path(root)
    samples = []
    for image in _images(root / images):
        mask = root / masks / f"{image.stem}.png"
        gore = mask.is_file() and bool(np.any(read_mask(mask) >= 0.5))
        samples.append(Sample(image=os.path.relpath(image, root), mask=os.path.relpath(mask, root), gore=gore, attributes={"Gore": gore}))
    return Dataset(name=root.name, samples=samples)
