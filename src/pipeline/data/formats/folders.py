"""A folder per class: root/gore/*.jpg and root/not_gore/*.jpg (also positive/negative, 1/0)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.data.dataset import Dataset, Sample

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
POSITIVE_FOLDERS = {"gore", "positive", "1"}
NEGATIVE_FOLDERS = {"not_gore", "no_gore", "non_gore", "negative", "0"}


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def from_class_folders(root: Path) -> Dataset:
    root = Path(root)
    samples = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = folder.name.lower()
        if label not in POSITIVE_FOLDERS | NEGATIVE_FOLDERS:
            raise ValueError(f"{folder}: class folders are named gore / not_gore (or positive / negative, 1 / 0)")
        gore = label in POSITIVE_FOLDERS
        samples += [
            Sample(image=os.path.relpath(p, root), gore=gore, attributes={"Gore": gore}) for p in image_files(folder)
        ]
    return Dataset(name=root.name, samples=samples)
