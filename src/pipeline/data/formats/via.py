"""VGG Image Annotator (VIA) projects -> masks and labels (SPEC section 3).

Masks as in the thesis: every polygon region filled with 255 on a blank grayscale canvas the
size of the image, a 9x9 mean filter (which softens only the edges), saved as PNG.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from pipeline.data.dataset import ATTRIBUTES, Dataset, Sample


@dataclass(frozen=True)
class Problem:
    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


def truthy(value: Any) -> bool:
    """VIA stores a checkbox as {"true": true}, a dropdown as a string, sometimes a bool."""
    if isinstance(value, dict):
        return any(truthy(v) and k.lower() not in ("false", "no", "0") for k, v in value.items())
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y", "gore")
    return bool(value)


def via_entries(project: dict) -> list[dict]:
    """Image entries of a VIA 2 project (`_via_img_metadata`) or a VIA 1 / annotations export."""
    entries = project.get("_via_img_metadata", project)
    if not isinstance(entries, dict) or not all(isinstance(e, dict) and "filename" in e for e in entries.values()):
        raise ValueError("not a VIA project: expected `_via_img_metadata` or a mapping of entries with `filename`")
    return list(entries.values())


def _attribute(attributes: dict, name: str) -> bool:
    for key, value in attributes.items():
        if key.lower() == name.lower():
            return truthy(value)
    return False


def region_polygon(region: dict) -> np.ndarray | None:
    shape = region.get("shape_attributes", {})
    if shape.get("name") == "polygon":
        return np.stack([shape["all_points_x"], shape["all_points_y"]], axis=1).astype(np.int32)
    if shape.get("name") == "rect":
        x, y, w, h = (int(shape[k]) for k in ("x", "y", "width", "height"))
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.int32)
    return None


def check_entry(entry: dict, images_dir: Path) -> list[Problem]:
    """Every problem of one VIA entry: missing or unreadable image, unknown shape, points outside."""
    name = entry["filename"]
    path = images_dir / name
    if not path.is_file():
        return [Problem(name, f"image file missing (looked in {images_dir})")]
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            width, height = image.size
    except Exception as error:  # Pillow raises many types for broken files.
        return [Problem(name, f"unreadable image ({error})")]
    problems = []
    for index, region in enumerate(entry.get("regions", [])):
        polygon = region_polygon(region)
        if polygon is None:
            shape = region.get("shape_attributes", {}).get("name")
            problems.append(Problem(name, f"region {index}: shape {shape!r} is not a polygon or rect"))
        elif len(polygon) < 3:
            problems.append(Problem(name, f"region {index}: a polygon needs 3 points, has {len(polygon)}"))
        elif (polygon < 0).any() or (polygon[:, 0] >= width).any() or (polygon[:, 1] >= height).any():
            problems.append(Problem(name, f"region {index}: polygon outside the {width}x{height} image"))
    return problems


def render_mask(entry: dict, width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    polygons = [p for p in (region_polygon(r) for r in entry.get("regions", [])) if p is not None and len(p) >= 3]
    if polygons:
        cv2.fillPoly(mask, polygons, 255)
    return cv2.blur(mask, (9, 9))


def convert_via(project_path: Path, images_dir: Path, out_dir: Path) -> tuple[Dataset, list[Problem]]:
    """Write masks/<stem>.png for every valid entry and out_dir/dataset.json; return the problems."""
    project = json.loads(Path(project_path).read_text())
    out_dir = Path(out_dir)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    samples, problems = [], []
    for entry in via_entries(project):
        entry_problems = check_entry(entry, Path(images_dir))
        if entry_problems:
            problems += entry_problems
            continue
        image_path = (Path(images_dir) / entry["filename"]).resolve()
        with Image.open(image_path) as image:
            width, height = image.size
        mask_path = out_dir / "masks" / f"{Path(entry['filename']).stem}.png"
        Image.fromarray(render_mask(entry, width, height)).save(mask_path)
        regions = entry.get("regions", [])
        attributes = {a: any(_attribute(r.get("region_attributes", {}), a) for r in regions) for a in ATTRIBUTES}
        files = entry.get("file_attributes", {})
        gore = _attribute(files, "gore") if any(k.lower() == "gore" for k in files) else bool(regions)
        samples.append(
            Sample(
                image=os.path.relpath(image_path, out_dir.resolve()),
                mask=str(mask_path.relative_to(out_dir)),
                gore=gore,
                attributes=attributes,
            )
        )
    dataset = Dataset(name=Path(project_path).stem, samples=samples)
    dataset.save(out_dir)
    return dataset, problems
