"""Image and mask pairs: root/images/<stem>.<ext> with root/masks/<stem>.png."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.data.dataset import Dataset, Sample, read_mask
from pipeline.data.formats.folders import image_files


def from_mask_pairs(root: Path, images: str = "images", masks: str = "masks") -> Dataset:
    """gore = the mask marks any pixel."""
    root = Path(root)
    samples = []
    for image in image_files(root / images):
        mask = root / masks / f"{image.stem}.png"
        gore = mask.is_file() and bool(np.any(read_mask(mask) >= 0.5))
        samples.append(
            Sample(
                image=os.path.relpath(image, root),
                mask=os.path.relpath(mask, root),
                gore=gore,
                attributes={"Gore": gore},
            )
        )
    return Dataset(name=root.name, samples=samples)
