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


def linear_rgb_profile() -> bytes:
    """An ICC v2 display profile: sRGB primaries, but a linear tone curve (gamma 1.0).

    The same pixel values mean brighter colours in it than in sRGB, by a formula a test can
    check: value v becomes sRGB's encoding of v / 255.
    """
    import struct

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    linear = b"curv" + bytes(4) + struct.pack(">IH", 1, 0x0100) + bytes(2)
    text = b"linear sRGB\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.4360747, 0.2225045, 0.0139322)),
        (b"gXYZ", xyz(0.3850649, 0.7168786, 0.0971045)),
        (b"bXYZ", xyz(0.1430804, 0.0606169, 0.7141733)),
        (b"rTRC", linear),
        (b"gTRC", linear),
        (b"bTRC", linear),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ " + bytes(12)
    header += b"acsp" + bytes(4 + 4 + 4 + 4 + 8 + 4) + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(4 + 44)
    assert len(header) == 128
    return header + table + data


def srgb_encoded(value: int) -> int:
    """What a linear value (0-255) is in sRGB's encoding."""
    linear = value / 255
    encoded = 12.92 * linear if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055
    return round(encoded * 255)


def red_square(share: float, side: int = 200) -> bytes:
    """A PNG, green-grey, with a red square covering `share` of its pixels at the top left."""
    import math

    pixels = np.full((side, side, 3), (50, 110, 70), np.uint8)
    edge = round(math.sqrt(share * side * side))
    pixels[10 : 10 + edge, 20 : 20 + edge] = (230, 20, 20)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()
