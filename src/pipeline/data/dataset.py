"""`Dataset`: one data set in one manifest (`dataset.json`), whatever format it came from.

The object owns its operations, as `supervision`'s datasets do: load and save, split, take a
split or a filtered view, and read its images, masks and labels. Views share their parent's
pixel cache, so a training run reads each image from disk once.

Paths are relative to the manifest's folder. `gore` is the classification label; `mask`
(grayscale PNG, read as [0, 1]) exists for segmentation samples; `attributes` holds the
VIA region attributes (Gore, Blood, Wound, Burn) that splits are stratified on.
"""

from __future__ import annotations

import fcntl
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image, ImageOps
from pydantic import BaseModel, Field, PrivateAttr

from pipeline.files import atomic_write

if TYPE_CHECKING:
    from pipeline.data.formats.via import Problem
    from pipeline.data.labels import LabelFormat, LabelsAdded

ATTRIBUTES = ("Gore", "Blood", "Wound", "Burn")
MANIFEST = "dataset.json"
LOCK_FILE = ".labels.lock"
_WRITING = threading.Lock()  # flock is per open file: threads of one process take turns here first.
Split = Literal["train", "validation", "test"]


class Sample(BaseModel):
    image: str
    gore: bool
    mask: str | None = None
    attributes: dict[str, bool] = Field(default_factory=dict)
    kind: str | None = Field(None, description="What a synthetic sample shows (wound, red_object, ...).")
    split: Split | None = None

    @property
    def stratum(self) -> str:
        """The label and the region attributes: splits keep their mix in every part."""
        return ("gore" if self.gore else "clean") + "".join(f"+{a}" for a in ATTRIBUTES if self.attributes.get(a))


class Dataset(BaseModel):
    name: str
    synthetic: bool = False
    note: str | None = None
    samples: list[Sample]
    _root: Path | None = PrivateAttr(None)
    _pixels: dict[str, np.ndarray] = PrivateAttr(default_factory=dict)

    # ---- files ----

    # ---- made from other formats (converters in formats/), or grown by labels ----

    @classmethod
    def from_via(
        cls, project: Path, images_dir: Path, out_dir: Path, max_bytes: int | None = None
    ) -> tuple[Dataset, list[Problem]]:
        """A VIA project: masks drawn into `out_dir/masks/`, the manifest written; and the entries refused."""
        from pipeline.data.formats.via import MOST_IMAGE_BYTES, convert_via

        with cls.writing(out_dir):
            return convert_via(project, images_dir, out_dir, max_bytes or MOST_IMAGE_BYTES)

    @classmethod
    def from_class_folders(cls, root: Path) -> Dataset:
        """`root/gore/*` and `root/not_gore/*` (not saved: call `save`)."""
        from pipeline.data.formats.folders import from_class_folders

        return from_class_folders(root)

    @classmethod
    def from_pairs(cls, root: Path, images: str = "images", masks: str = "masks") -> Dataset:
        """`root/images/x.*` with `root/masks/x.png` (not saved: call `save`)."""
        from pipeline.data.formats.pairs import from_mask_pairs

        return from_mask_pairs(root, images, masks)

    @staticmethod
    def add_labels(
        source: Path, images_dir: Path, out_dir: Path, fmt: LabelFormat | None = None, max_bytes: int | None = None
    ) -> LabelsAdded:
        """A CSV (`image,label`) or VIA project naming images in `images_dir`, into the data set at
        `out_dir` (made if missing): the one way labels are added (see `pipeline.data.labels`)."""
        from pipeline.data.formats.via import MOST_IMAGE_BYTES
        from pipeline.data.labels import add_labels

        return add_labels(source, images_dir, out_dir, fmt, max_bytes or MOST_IMAGE_BYTES)

    @staticmethod
    @contextmanager
    def writing(folder: Path) -> Iterator[None]:
        """One writer of a data set folder at a time, across threads and processes."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with _WRITING, open(folder / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @classmethod
    def load(cls, folder: Path) -> Dataset:
        path = Path(folder) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no dataset manifest (make one with `gore-censor data ...`)")
        dataset = cls.model_validate_json(path.read_text())
        dataset._root = Path(folder)
        return dataset

    def save(self, folder: Path | None = None) -> Path:
        if folder is not None:
            self._root = Path(folder)
        # Whole or not at all: a crash or a full disk mid-write must not lose every label.
        return atomic_write(self.root / MANIFEST, self.model_dump_json(indent=1), mode=0o644)

    @property
    def root(self) -> Path:
        if self._root is None:
            raise ValueError(f"data set {self.name!r} has no folder yet: save it first")
        return self._root

    # ---- views ----

    def __len__(self) -> int:
        return len(self.samples)

    def _view(self, samples: list[Sample], name: str | None = None) -> Dataset:
        # Shares the folder and the pixel cache.
        return self.model_copy(update={"samples": samples, "name": name or self.name})

    def subset(self, split: Split, *, with_masks: bool = False, gore_only: bool = False) -> Dataset:
        """The samples of one split (optionally only those with masks, or only gore); may be empty."""
        chosen = [
            s
            for s in self.samples
            if s.split == split and (s.mask is not None or not with_masks) and (s.gore or not gore_only)
        ]
        return self._view(chosen, f"{self.name}, {split} split")

    def require(self, split: Split, *, with_masks: bool = False, gore_only: bool = False) -> Dataset:
        """`subset`, or an error saying what to run when it is empty."""
        part = self.subset(split, with_masks=with_masks, gore_only=gore_only)
        if not part.samples:
            what = " with masks" if with_masks else ""
            raise ValueError(f"the data set has no {split} samples{what}: run `gore-censor data split` first")
        return part

    def split(self, *, seed: int = 0, validation: float = 0.15, test: float = 0.15) -> Dataset:
        """Every sample assigned to train, validation or test, stratified, reproducible by seed.

        Strata too small to divide fall back to the gore label; scikit-learn needs two members
        per stratum, and splits at random without them.
        """
        if not 0 < validation + test < 1:
            raise ValueError("validation + test must be between 0 and 1")
        # Imported here: the service imports this module (labels land in datasets), and scikit-learn
        # is 1.4 s of a serving worker's start-up.
        from sklearn.model_selection import train_test_split

        indices = list(range(len(self.samples)))
        counts = Counter(s.stratum for s in self.samples)
        keys = [s.stratum if counts[s.stratum] >= 3 else ("gore" if s.gore else "clean") for s in self.samples]
        train, rest = train_test_split(indices, test_size=validation + test, random_state=seed, stratify=_usable(keys))
        rest_keys = [keys[i] for i in rest]
        validation_part, test_part = train_test_split(
            rest, test_size=test / (validation + test), random_state=seed, stratify=_usable(rest_keys)
        )
        names = {
            **dict.fromkeys(train, "train"),
            **dict.fromkeys(validation_part, "validation"),
            **dict.fromkeys(test_part, "test"),
        }
        return self._view([s.model_copy(update={"split": names[i]}) for i, s in enumerate(self.samples)])

    # ---- contents ----

    def labels(self) -> np.ndarray:
        return np.array([s.gore for s in self.samples], dtype=np.int64)

    def images(self) -> list[np.ndarray]:
        """Every sample's image as H x W x 3 uint8 RGB, upright, read once."""
        return [self._read(s.image, read_rgb) for s in self.samples]

    def masks(self) -> list[np.ndarray]:
        """Every sample's mask as H x W float32 in [0, 1], read once."""
        missing = [s.image for s in self.samples if s.mask is None]
        if missing:
            raise ValueError(f"{len(missing)} samples have no mask, e.g. {missing[0]}")
        return [self._read(s.mask, read_mask) for s in self.samples]

    def _read(self, relative: str, reader) -> np.ndarray:
        if relative not in self._pixels:
            self._pixels[relative] = reader(self.root / relative)
        return self._pixels[relative]


def _usable(keys: list[str]) -> list[str] | None:
    return keys if min(Counter(keys).values()) >= 2 else None


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def read_mask(path: Path) -> np.ndarray:
    """A mask PNG as float32 in [0, 1]."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
