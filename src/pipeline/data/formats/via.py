"""VGG Image Annotator (VIA) projects -> masks and labels (SPEC section 3).

Masks as in the thesis: every polygon region filled with 255 on a blank grayscale canvas the
size of the image, a 9x9 mean filter (which softens only the edges), saved as PNG.

A project is hostile input (it may come over HTTP from the annotation routes): its entries are
validated (`ViaEntry`), each `filename` is read only as a regular file inside the images folder
(no absolute path, no `..`, no link followed; one message whether or not such a path exists
elsewhere), its size is capped in bytes and pixels before a mask is drawn, and masks and the
manifest are written whole (pipeline.files).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from pipeline.data.dataset import ATTRIBUTES, Dataset, Sample
from pipeline.errors import PipelineError
from pipeline.files import atomic_write, read_inside

MOST_IMAGE_BYTES = 50 * 1024 * 1024
MOST_MASK_PIXELS = 80_000_000  # Width x height of one mask (and of the image it covers).
NOT_IN_FOLDER = "image file missing (a label names a regular file inside the images folder; links are not followed)"


@dataclass(frozen=True)
class Problem:
    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


class ViaShape(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    name: str | None = None
    all_points_x: list[float] = Field(default_factory=list)
    all_points_y: list[float] = Field(default_factory=list)
    x: float = 0
    y: float = 0
    width: float = 0
    height: float = 0


class ViaRegion(BaseModel):
    model_config = ConfigDict(extra="allow")
    shape_attributes: ViaShape = Field(default_factory=ViaShape)
    region_attributes: dict[str, Any] = Field(default_factory=dict)


class ViaEntry(BaseModel):
    """One image of a VIA project: its file, its regions, its file attributes."""

    model_config = ConfigDict(extra="allow")
    filename: str = Field(min_length=1, max_length=4096)
    regions: list[ViaRegion] = Field(default_factory=list)
    file_attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("regions", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        return list(value.values()) if isinstance(value, dict) else value  # VIA 1 keys regions by number.


_ENTRIES = TypeAdapter(dict[str, ViaEntry])


def truthy(value: Any) -> bool:
    """VIA stores a checkbox as {"true": true}, a dropdown as a string, sometimes a bool."""
    if isinstance(value, dict):
        return any(truthy(v) and str(k).lower() not in ("false", "no", "0") for k, v in value.items())
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y", "gore")
    return bool(value)


def read_project(path: Path) -> Any:
    """A VIA project file's JSON; a file that is no JSON (or nested past reason) is a ValueError."""
    try:
        return json.loads(Path(path).read_bytes())
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def via_entries(project: Any) -> list[ViaEntry]:
    """Image entries of a VIA 2 project (`_via_img_metadata`) or a VIA 1 / annotations export."""
    entries = project.get("_via_img_metadata", project) if isinstance(project, dict) else None
    if not isinstance(entries, dict) or not all(isinstance(e, dict) and "filename" in e for e in entries.values()):
        raise ValueError("not a VIA project: expected `_via_img_metadata` or a mapping of entries with `filename`")
    try:
        return list(_ENTRIES.validate_python(entries).values())
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise ValueError(f"not a VIA project: {where}: {first['msg']}") from None


def _attribute(attributes: dict, name: str) -> bool:
    for key, value in attributes.items():
        if str(key).lower() == name.lower():
            return truthy(value)
    return False


def region_polygon(region: ViaRegion) -> np.ndarray | None:
    """The region's outline as float points, or None for a shape that is not a polygon or rect."""
    shape = region.shape_attributes
    if shape.name == "polygon":
        if len(shape.all_points_x) != len(shape.all_points_y):
            return np.zeros((0, 2))
        return np.stack([np.asarray(shape.all_points_x), np.asarray(shape.all_points_y)], axis=1).reshape(-1, 2)
    if shape.name == "rect":
        x, y, w, h = shape.x, shape.y, shape.width, shape.height
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)
    return None


def image_bytes(images_dir: Path, name: str, max_bytes: int = MOST_IMAGE_BYTES) -> bytes:
    """The bytes of the image a label names, read only as a regular file inside `images_dir`.
    Every refusal is one `PipelineError` whose message does not tell whether the path exists."""
    try:
        return read_inside(Path(images_dir), name, max_bytes, name)
    except PipelineError as error:
        if error.status == 413:
            raise
        raise PipelineError(NOT_IN_FOLDER) from None


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header, after checking the file decodes as an image."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            return image.size


def check_entry(
    entry: ViaEntry, images_dir: Path, max_bytes: int = MOST_IMAGE_BYTES
) -> tuple[list[Problem], tuple[int, int] | None]:
    """Every problem of one VIA entry (missing or unreadable image, too large, unknown shape, points
    outside), and the image's size when it can be read."""
    name = entry.filename
    try:
        data = image_bytes(images_dir, name, max_bytes)
        width, height = image_size(data)
    except PipelineError as error:
        return [Problem(name, str(error))], None
    except Exception as error:  # Pillow raises many types for broken files.
        return [Problem(name, f"unreadable image ({error})")], None
    if width * height > MOST_MASK_PIXELS:
        return [Problem(name, f"{width} x {height} is over {MOST_MASK_PIXELS:,} pixels for a mask")], None
    problems = []
    for index, region in enumerate(entry.regions):
        polygon = region_polygon(region)
        if polygon is None:
            shape = region.shape_attributes.name
            problems.append(Problem(name, f"region {index}: shape {shape!r} is not a polygon or rect"))
        elif len(polygon) < 3:
            problems.append(Problem(name, f"region {index}: a polygon needs 3 points, has {len(polygon)}"))
        elif (polygon < 0).any() or (polygon[:, 0] >= width).any() or (polygon[:, 1] >= height).any():
            problems.append(Problem(name, f"region {index}: polygon outside the {width}x{height} image"))
    return problems, (width, height)


def render_mask(entry: ViaEntry, width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    outlines = (region_polygon(r) for r in entry.regions)
    polygons = [np.round(p).astype(np.int32) for p in outlines if p is not None and len(p) >= 3]
    if polygons:
        cv2.fillPoly(mask, polygons, 255)
    return cv2.blur(mask, (9, 9))


def convert_via(
    project_path: Path, images_dir: Path, out_dir: Path, max_bytes: int = MOST_IMAGE_BYTES
) -> tuple[Dataset, list[Problem]]:
    """Write masks/<stem>.png for every valid entry and out_dir/dataset.json; return the problems."""
    entries = via_entries(read_project(project_path))
    out_dir = Path(out_dir)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    samples, problems = [], []
    for entry in entries:
        entry_problems, size = check_entry(entry, Path(images_dir), max_bytes)
        if entry_problems or size is None:
            problems += entry_problems
            continue
        mask_path = out_dir / "masks" / f"{Path(entry.filename).stem}.png"
        png = io.BytesIO()
        Image.fromarray(render_mask(entry, *size)).save(png, format="PNG")
        atomic_write(mask_path, png.getvalue())
        attributes = {a: any(_attribute(r.region_attributes, a) for r in entry.regions) for a in ATTRIBUTES}
        files = entry.file_attributes
        gore = _attribute(files, "gore") if any(str(k).lower() == "gore" for k in files) else bool(entry.regions)
        samples.append(
            Sample(
                image=os.path.relpath(Path(images_dir).resolve() / entry.filename, out_dir.resolve()),
                mask=str(mask_path.relative_to(out_dir)),
                gore=gore,
                attributes=attributes,
            )
        )
    dataset = Dataset(name=Path(project_path).stem, samples=samples)
    dataset.save(out_dir)
    return dataset, problems
