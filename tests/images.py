"""Test images whose content the red-pixel models judge predictably."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

GREEN = (40, 140, 60)
RED = (200, 20, 20)


def upright(path: Path) -> np.ndarray:
    """How a viewer shows the file: EXIF orientation applied."""
    from PIL import ImageOps

    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))


@dataclass(frozen=True)
class SampleImages:
    red_blob: Path
    """640 x 480 PNG, green with a 250 x 200 red rectangle: gore for the red models."""
    rotated_red_blob: Path
    """JPEG stored 480 wide x 320 high, EXIF orientation 6: shown 320 x 480, red patch at top."""
    green: Path
    """400 x 300 PNG, no red at all: not gore."""
    not_an_image: Path
    empty: Path
    truncated: Path
    huge_pixels: Path
    """3000 x 3000 PNG of one colour: few bytes, 9 million pixels."""


def red_blob_pixels() -> np.ndarray:
    pixels = np.full((480, 640, 3), GREEN, np.uint8)
    pixels[100:300, 200:450] = RED
    return pixels


def write_images(folder: Path) -> SampleImages:
    red_blob = folder / "red blob.png"
    Image.fromarray(red_blob_pixels()).save(red_blob)

    stored = np.full((320, 480, 3), GREEN, np.uint8)
    stored[:, :160] = RED  # Left third as stored; rotated 90 degrees clockwise it becomes the top.
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = folder / "rotated.jpg"
    Image.fromarray(stored).save(rotated, quality=95, exif=exif)

    green = folder / "green.png"
    Image.fromarray(np.full((300, 400, 3), GREEN, np.uint8)).save(green)

    not_an_image = folder / "notes.txt.jpg"
    not_an_image.write_bytes(b"this is not an image")
    empty = folder / "empty.png"
    empty.write_bytes(b"")

    buffer = io.BytesIO()
    Image.fromarray(red_blob_pixels()).save(buffer, format="JPEG")
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])

    huge = folder / "huge.png"
    Image.new("RGB", (3000, 3000), GREEN).save(huge)
    return SampleImages(red_blob, rotated, green, not_an_image, empty, truncated, huge)
