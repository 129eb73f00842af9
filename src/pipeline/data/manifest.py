"""`dataset.json`: one manifest for every data set, whatever format it came from.

Paths are relative to the manifest's folder. `gore` is the classification label; `mask`
(grayscale PNG, read as [0, 1]) exists for segmentation samples; `attributes` holds the
VIA region attributes (Gore, Blood, Wound, Burn) that splits are stratified on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

ATTRIBUTES = ("Gore", "Blood", "Wound", "Burn")
Split = Literal["train", "validation", "test"]


class Sample(BaseModel):
    image: str
    gore: bool
    mask: str | None = None
    attributes: dict[str, bool] = Field(default_factory=dict)
    kind: str | None = Field(None, description="What a synthetic sample shows (wound, red_object, ...).")
    split: Split | None = None


class Dataset(BaseModel):
    name: str
    synthetic: bool = False
    note: str | None = None
    samples: list[Sample]

    def save(self, folder: Path) -> Path:
        path = Path(folder) / "dataset.json"
        path.write_text(self.model_dump_json(indent=1))
        return path

    @classmethod
    def load(cls, folder: Path) -> Dataset:
        path = Path(folder) / "dataset.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no dataset manifest (make one with `gore-censor data ...`)")
        return cls.model_validate_json(path.read_text())

    def subset(self, split: Split) -> list[Sample]:
        return [s for s in self.samples if s.split == split]


def read_rgb(path: Path) -> np.ndarray:
    from PIL import ImageOps

    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def read_mask(path: Path) -> np.ndarray:
    """A mask PNG as float32 in [0, 1]."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
