"""Checks a data set and lists every problem with its file and reason."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from pipeline.data.dataset import Dataset
from pipeline.data.formats.via import Problem, check_entry, read_project, via_entries


def validate_via(project_path: Path, images_dir: Path) -> list[Problem]:
    try:
        entries = via_entries(read_project(project_path))
    except (OSError, ValueError) as error:
        return [Problem(str(project_path), f"not a readable VIA project ({error})")]
    problems = [p for entry in entries for p in check_entry(entry, Path(images_dir))[0]]
    labels = {bool(entry.regions) for entry in entries}
    problems += _empty_classes(labels, str(project_path))
    return problems


def validate_dataset(folder: Path) -> list[Problem]:
    folder = Path(folder)
    try:
        dataset = Dataset.load(folder)
    except (OSError, ValueError) as error:
        return [Problem(str(folder / "dataset.json"), str(error))]
    problems = []
    for sample in dataset.samples:
        size = _readable(folder / sample.image, sample.image, problems)
        if sample.mask is not None:
            mask_size = _readable(folder / sample.mask, sample.mask, problems)
            if size and mask_size and size != mask_size:
                problems.append(
                    Problem(sample.mask, f"mask is {mask_size[0]}x{mask_size[1]}, its image {size[0]}x{size[1]}")
                )
    problems += _empty_classes({s.gore for s in dataset.samples}, str(folder / "dataset.json"))
    for split in ("train", "validation", "test"):
        part = dataset.subset(split).samples
        if part and len({s.gore for s in part}) < 2:
            problems.append(Problem(str(folder / "dataset.json"), f"the {split} split holds only one class"))
    return problems


def _readable(path: Path, name: str, problems: list[Problem]) -> tuple[int, int] | None:
    if not path.is_file():
        problems.append(Problem(name, "file missing"))
        return None
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            return image.size
    except Exception as error:  # Pillow raises many types for broken files.
        problems.append(Problem(name, f"unreadable image ({error})"))
        return None


def _empty_classes(labels: set[bool], where: str) -> list[Problem]:
    missing = [name for name, value in (("gore", True), ("not gore", False)) if value not in labels]
    return [Problem(where, f"empty class: no {name} samples") for name in missing]
