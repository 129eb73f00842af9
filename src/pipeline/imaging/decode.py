"""Decoding uploads with our own limits (Pillow, EXIF orientation applied)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.errors import InvalidImage, UploadTooLarge
from pipeline.imaging.hashes import content_id

# We enforce our own pixel limit before decoding; Pillow's bomb warning would only repeat it.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class DecodedImage:
    id: str
    """SHA-256 of the uploaded bytes: the same file always gets the same id."""
    filename: str
    format: str
    """Pillow's name for the container format, e.g. JPEG or PNG."""
    pixels: np.ndarray
    """H x W x 3 uint8 RGB, upright (EXIF orientation applied)."""

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def suffix(self) -> str:
        return {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}.get(
            self.format, ".img"
        )


def decode_upload(data: bytes, filename: str, *, max_bytes: int, max_pixels: int) -> DecodedImage:
    """Decode an uploaded file, or raise an error that says what is wrong with it."""
    if not data:
        raise InvalidImage(f"{filename}: the file is empty")
    if len(data) > max_bytes:
        raise UploadTooLarge(f"{filename}: {len(data):,} bytes is over the upload limit of {max_bytes:,} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            width, height = image.size  # From the header: nothing is decoded yet.
            if width * height > max_pixels:
                raise UploadTooLarge(
                    f"{filename}: {width} x {height} = {width * height:,} pixels is over the limit of {max_pixels:,}"
                )
            image_format = image.format or "unknown"
            image.load()
            upright = ImageOps.exif_transpose(image)
            pixels = np.asarray(upright.convert("RGB"), dtype=np.uint8)
    except UploadTooLarge:
        raise
    except UnidentifiedImageError:
        raise InvalidImage(f"{filename}: not an image format we can decode (JPEG, PNG, WebP, GIF, BMP, TIFF)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"{filename}: the image data is damaged or truncated ({exc})") from None
    if pixels.ndim != 3 or min(pixels.shape[:2]) < 1:
        raise InvalidImage(f"{filename}: the image has no pixels")
    return DecodedImage(id=content_id(data), filename=filename, format=image_format, pixels=pixels)
