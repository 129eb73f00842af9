"""Decoding uploads into what a viewer sees, under our own limits.

Only the accepted formats are decoded (`ACCEPTED`). Every frame of an animated or multi-page
file is decoded, up to a frame limit, and frames x pixels count against the pixel limit
before anything is decompressed. Each frame becomes 8-bit sRGB the way a viewer shows it:
EXIF orientation applied, 16-bit and float samples scaled (not clipped), an embedded ICC
profile (CMYK included) converted to sRGB with Little CMS, and transparency composited over a
fixed white background, so a pixel that is invisible in the original stays invisible in every
copy we make. When only a small copy is needed (the models' input), a JPEG is decoded at a
reduced scale by its own DCT scaling, several times faster; the full size is still known from
the header. Pillow's own decompression-bomb check stays on: this path only silences its
warning, having enforced a stricter limit first.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageCms, ImageOps, ImageSequence, UnidentifiedImageError

from pipeline.errors import InvalidImage, UnsupportedImage, UploadTooLarge
from pipeline.imaging.hashes import content_id

# Pillow's names for the formats we decode, and what they are called in messages.
ACCEPTED = {
    "JPEG": "JPEG",
    "PNG": "PNG/APNG",
    "WEBP": "WebP",
    "GIF": "GIF",
    "BMP": "BMP",
    "TIFF": "TIFF",
    "AVIF": "AVIF",
}
ACCEPTED_NAMES = ", ".join(ACCEPTED.values())
SUFFIXES = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tif",
    "AVIF": ".avif",
}
BACKGROUND = (255, 255, 255)  # What transparent pixels are shown over, in every copy we make.
DEFAULT_FRAME_MS = 100
ORIENTATION = 0x0112  # The EXIF tag.
_SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True)
class DecodedImage:
    id: str
    """SHA-256 of the uploaded bytes: the same file always gets the same id."""
    filename: str
    format: str
    """Pillow's name for the container format, e.g. JPEG or PNG."""
    frames: list[np.ndarray]
    """Each frame H x W x 3 uint8 sRGB, upright, as a viewer shows it; one for a still image.
    Reduced in scale (never below the size asked for) when decoded for the models only."""
    size: tuple[int, int]
    """Width and height of the image as a viewer shows it, whatever scale `frames` were decoded at."""
    durations_ms: list[int] = field(default_factory=list)
    """How long each frame shows (animations); empty for a still image or a multi-page file."""
    loop: int = 0

    @property
    def pixels(self) -> np.ndarray:
        return self.frames[0]

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    @property
    def animated(self) -> bool:
        return len(self.frames) > 1

    @property
    def suffix(self) -> str:
        return SUFFIXES[self.format]


def decode_upload(
    data: bytes, filename: str, *, max_bytes: int, max_pixels: int, max_frames: int, at_least: int | None = None
) -> DecodedImage:
    """Decode an uploaded file, or raise an error that says what is wrong with it.

    `at_least`: only a copy at least this many pixels a side is needed, so a JPEG may be decoded
    at 1/2, 1/4 or 1/8 scale; unset, every pixel is decoded."""
    if not data:
        raise InvalidImage(f"{filename}: the file is empty")
    if len(data) > max_bytes:
        raise UploadTooLarge(f"{filename}: {len(data):,} bytes is over the upload limit of {max_bytes:,} bytes")
    with warnings.catch_warnings():
        # Our limit below is checked before any decompression; Pillow's warning would only repeat it.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = _open(data, filename)
        try:
            frames, durations, size = _frames(
                image, filename, max_pixels=max_pixels, max_frames=max_frames, at_least=at_least
            )
        except (OSError, ValueError, SyntaxError, EOFError, ImageCms.PyCMSError) as exc:
            raise InvalidImage(f"{filename}: the image data is damaged or truncated ({exc})") from None
    return DecodedImage(
        id=content_id(data),
        filename=filename,
        format=image.format,
        frames=frames,
        size=size,
        durations_ms=durations,
        loop=int(image.info.get("loop", 0) or 0),
    )


def declared_pixels(data: bytes) -> int:
    """Width x height x frames from the header, nothing decoded; 0 when it is no accepted image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(ACCEPTED))
            return image.size[0] * image.size[1] * getattr(image, "n_frames", 1)
    except Exception:  # Pillow raises many types for broken files; decoding will say what is wrong.
        return 0


def _open(data: bytes, filename: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=list(ACCEPTED))
    except Image.DecompressionBombError as exc:
        raise UploadTooLarge(f"{filename}: {exc}") from None
    except UnidentifiedImageError:
        pass
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"{filename}: the image data is damaged or truncated ({exc})") from None
    try:  # Only to name what it is in the message; nothing of it is decoded.
        other = Image.open(io.BytesIO(data)).format
    except Exception:  # Pillow raises many types for files that are no image at all.
        other = None
    if other:
        raise UnsupportedImage(f"{filename}: {other} images are not accepted; send {ACCEPTED_NAMES}")
    raise UnsupportedImage(f"{filename}: not an image format we can decode (we accept {ACCEPTED_NAMES})")


def _frames(
    image: Image.Image, filename: str, *, max_pixels: int, max_frames: int, at_least: int | None
) -> tuple[list[np.ndarray], list[int], tuple[int, int]]:
    width, height = image.size  # From the header: nothing is decoded yet.
    count = getattr(image, "n_frames", 1)
    if count > max_frames:
        raise UploadTooLarge(f"{filename}: {count:,} frames is over the limit of {max_frames:,} frames")
    if width * height * count > max_pixels:
        frames = f" x {count} frames" if count > 1 else ""
        total = width * height * count
        raise UploadTooLarge(
            f"{filename}: {width} x {height}{frames} = {total:,} pixels is over the limit of {max_pixels:,}"
        )
    animated = count > 1 and image.format != "TIFF"  # Multi-page TIFF: pages, not an animation.
    # A viewer's width and height: EXIF orientations 5 to 8 turn the image a quarter.
    size = (height, width) if not animated and image.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8) else (width, height)
    if at_least and image.format == "JPEG" and count == 1:
        image.draft(image.mode, (at_least, at_least))  # DCT scaling: the smallest scale >= at_least a side.
    frames, durations = [], []
    for frame in ImageSequence.Iterator(image):
        frame.load()
        # Stills and pages are shown upright by their EXIF orientation; animation players ignore it.
        frames.append(to_srgb(frame if animated else ImageOps.exif_transpose(frame)))
        if animated:
            durations.append(int(frame.info.get("duration") or DEFAULT_FRAME_MS))
    sizes = {f.shape for f in frames}
    if len(sizes) > 1:
        raise InvalidImage(f"{filename}: its {len(frames)} pages have different sizes ({', '.join(map(str, sizes))})")
    if min(frames[0].shape[:2]) < 1:
        raise InvalidImage(f"{filename}: the image has no pixels")
    return frames, durations, size


def to_srgb(frame: Image.Image) -> np.ndarray:
    """One frame as H x W x 3 uint8 sRGB, as a viewer shows it."""
    frame = _eight_bit(frame)
    icc = frame.info.get("icc_profile")
    if icc:
        with_alpha = frame.mode in ("RGBA", "LA", "PA") or "transparency" in frame.info
        rgba = frame.convert("RGBA") if with_alpha and frame.mode != "CMYK" else frame
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if rgba.mode == "RGBA" else "RGB"
        if rgba.mode not in ("RGB", "RGBA", "CMYK", "L"):
            rgba = rgba.convert("RGB")
        frame = ImageCms.profileToProfile(rgba, source, _SRGB, outputMode=mode)
    if frame.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in frame.info:
        rgba = frame.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        frame = Image.alpha_composite(background, rgba)
    return np.asarray(frame.convert("RGB"), dtype=np.uint8)


def _eight_bit(frame: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer samples scaled to 0-255, float samples from 0-1 to 0-255."""
    if frame.mode.startswith("I;16") or frame.mode == "I":
        values = np.asarray(frame, dtype=np.float64)
        top = 65535.0 if frame.mode.startswith("I;16") or values.max() <= 65535 else float(2**32 - 1)
        scaled = values / top * 255
    elif frame.mode == "F":
        values = np.nan_to_num(np.asarray(frame, dtype=np.float64), nan=1.0, posinf=1.0, neginf=0.0)
        scaled = values * 255 if values.max() <= 1.0 else values
    else:
        return frame
    grey = Image.fromarray(np.round(scaled).clip(0, 255).astype(np.uint8), mode="L")
    grey.info = dict(frame.info)  # Keep the ICC profile and transparency notes.
    return grey
