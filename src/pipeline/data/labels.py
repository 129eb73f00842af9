"""Labels into a data set folder, in the training tools' formats: the one way labels are added,
whoever sends them (`gore-censor al labels`, the annotation routes, the labelling page), each
data set written by one writer at a time (`Dataset.writing`).

- CSV (`image,label`; `filename`/`file`/`path` and `gore` name the columns too): each image is
  copied into `<out>/gore/` or `<out>/not_gore/` (the class-folder format of `gore-censor data
  folders`); an image labelled again moves to its new class.
- VIA JSON: masks and labels as `gore-censor data via` makes them (masks in `<out>/masks/`).

Either way `<out>/dataset.json` keeps every sample it had (and its split) and gains the new ones;
a relabelled image takes its new label. New samples have no split: run `gore-censor data split`.

Labels are hostile input (they arrive over HTTP too): a name is read only as a regular file
inside the images folder, the same message refuses a name that is missing, a link, or outside
the folder (so a label file cannot ask whether some path exists), and everything written is
written whole (pipeline.files).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from pipeline.data.dataset import MANIFEST, Dataset, Sample
from pipeline.data.formats.folders import IMAGE_SUFFIXES
from pipeline.data.formats.via import MOST_IMAGE_BYTES, Problem, convert_via, image_bytes
from pipeline.errors import PipelineError
from pipeline.files import atomic_write

LabelFormat = Literal["csv", "via"]
IMAGE_COLUMNS = ("image", "filename", "file", "path")
LABEL_COLUMNS = ("label", "gore")
GORE_VALUES = {"gore", "1", "true", "yes", "y", "positive"}
CLEAN_VALUES = {"not_gore", "no_gore", "non_gore", "clean", "0", "false", "no", "n", "negative"}


def labelled_names(datasets: list[Path]) -> set[str]:
    """File names of the images these data sets hold (a folder without a manifest holds none)."""
    return {
        Path(s.image).name
        for folder in datasets
        if (Path(folder) / MANIFEST).is_file()
        for s in Dataset.load(folder).samples
    }


def label_format(path: Path) -> LabelFormat:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "via"
    raise ValueError(f"{path}: labels come as a .csv file or a VIA .json project")


def _column(header: list[str], names: tuple[str, ...], path: Path) -> str:
    lowered = {h.strip().lower(): h for h in header}
    for name in names:
        if name in lowered:
            return lowered[name]
    raise ValueError(f"{path}: no column named one of {list(names)} (columns: {header})")


def read_csv_labels(path: Path) -> tuple[dict[str, bool], list[Problem]]:
    """File name -> gore, and a problem per row that says neither gore nor clean."""
    labels: dict[str, bool] = {}
    problems = []
    with open(path, newline="", encoding="utf-8") as file:
        try:
            reader = csv.DictReader(file)
            if not reader.fieldnames:
                raise ValueError(f"{path}: empty, expected a header such as `image,label`")
            image_column = _column(list(reader.fieldnames), IMAGE_COLUMNS, path)
            label_column = _column(list(reader.fieldnames), LABEL_COLUMNS, path)
            for line, row in enumerate(reader, start=2):
                name = str(row.get(image_column) or "").strip()
                value = str(row.get(label_column) or "").strip().lower()
                if not name:
                    problems.append(Problem(f"{path.name}:{line}", "no image named"))
                elif value in GORE_VALUES | CLEAN_VALUES:
                    labels[name] = value in GORE_VALUES
                else:
                    wanted = f"neither gore ({sorted(GORE_VALUES)}) nor clean"
                    problems.append(Problem(name, f"label {value[:40]!r} is {wanted}"))
        except csv.Error as error:  # A field over the size limit, a NUL byte: not a CSV we read.
            raise ValueError(f"{path.name}: not a CSV file we can read ({error})") from None
    return labels, problems


def _existing(out_dir: Path) -> Dataset | None:
    return Dataset.load(out_dir) if (out_dir / MANIFEST).is_file() else None


def merge(existing: Dataset | None, new: list[Sample], name: str) -> Dataset:
    """Existing samples keep their place and split; a sample for the same image replaces the label."""
    by_image = {s.image: s for s in (existing.samples if existing else [])}
    for sample in new:
        old = by_image.get(sample.image)
        by_image[sample.image] = sample.model_copy(update={"split": old.split}) if old else sample
    base = existing or Dataset(name=name, samples=[])
    return base.model_copy(update={"samples": list(by_image.values())})


def ingest_csv(
    path: Path, images_dir: Path, out_dir: Path, max_bytes: int = MOST_IMAGE_BYTES
) -> tuple[Dataset, list[Problem]]:
    labels, problems = read_csv_labels(Path(path))
    out_dir, images_dir = Path(out_dir), Path(images_dir)
    existing = _existing(out_dir)
    new, moved = [], set()
    for name, gore in labels.items():
        base = PurePosixPath(name).name
        if PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
            problems.append(Problem(name, f"not an image file name ({sorted(IMAGE_SUFFIXES)})"))
            continue
        try:  # Only a regular file inside the images folder: one message for every other name.
            data = image_bytes(images_dir, name, max_bytes)
        except PipelineError as error:
            problems.append(Problem(name, str(error)))
            continue
        folder, other = ("gore", "not_gore") if gore else ("not_gore", "gore")
        atomic_write(out_dir / folder / base, data)  # The bytes read, not the path: nothing can swap in.
        stale = out_dir / other / base
        if stale.is_file():  # Labelled again, the other way: it moves.
            stale.unlink()
            moved.add(f"{other}/{base}")
        new.append(Sample(image=f"{folder}/{base}", gore=gore, attributes={"Gore": gore}))
    dataset = merge(existing, new, out_dir.name)
    dataset = dataset.model_copy(update={"samples": [s for s in dataset.samples if s.image not in moved]})
    dataset.save(out_dir)
    return dataset, problems


def ingest_via(
    project: Path, images_dir: Path, out_dir: Path, max_bytes: int = MOST_IMAGE_BYTES
) -> tuple[Dataset, list[Problem]]:
    out_dir = Path(out_dir)
    existing = _existing(out_dir)  # `convert_via` writes its own manifest: read ours first.
    converted, problems = convert_via(Path(project), Path(images_dir), out_dir, max_bytes)
    dataset = merge(existing, converted.samples, out_dir.name)
    dataset.save(out_dir)
    return dataset, problems


@dataclass(frozen=True)
class LabelsAdded:
    dataset: Dataset
    problems: list[Problem]
    changed: int  # Samples whose label is new or different.


def add_labels(
    source: Path, images_dir: Path, out_dir: Path, fmt: LabelFormat | None = None, max_bytes: int = MOST_IMAGE_BYTES
) -> LabelsAdded:
    """Labels from a CSV file or a VIA project into `out_dir`, under the data set's writing lock."""
    out_dir = Path(out_dir)
    with Dataset.writing(out_dir):
        existing = _existing(out_dir)
        before = {s.image: s.gore for s in existing.samples} if existing else {}
        if (fmt or label_format(source)) == "csv":
            dataset, problems = ingest_csv(source, images_dir, out_dir, max_bytes)
        else:
            dataset, problems = ingest_via(source, images_dir, out_dir, max_bytes)
    changed = sum(1 for s in dataset.samples if before.get(s.image) != s.gore)
    return LabelsAdded(dataset, problems, changed)
