"""Decoding uploads into what a viewer sees, under a budget enforced on what is decoded.

Only the accepted formats are decoded (`ACCEPTED`). Every frame of an animated or multi-page
file is decoded, one at a time, each checked *before* it is materialised: the frame count is
bounded before it is walked, and no frame may have another size than the image declares (a GIF
frame reaching past its canvas, which Pillow would grow the canvas for, or a TIFF page larger
than the first, is refused before a byte of it is decompressed). So the header's width x height
x frames is an upper bound of the pixels decoded, and that is what the pixel limit is checked
against. Each frame becomes 8-bit sRGB the way a viewer shows it: EXIF orientation applied,
16-bit and float samples scaled (not clipped), an embedded ICC profile (CMYK included) converted
to sRGB with Little CMS, and transparency composited over a fixed white background, so a pixel
that is invisible in the original stays invisible in every copy we make. When only a small copy
is needed (the models' input), a JPEG is decoded at a reduced scale by its own DCT scaling; the
full size is still known from the header. Pillow's own decompression-bomb check stays on: this
path only silences its warning, having enforced a stricter limit first.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from pipeline.errors import InvalidImage, PipelineError, UnsupportedImage, UploadTooLarge
from pipeline.files.kinds import video_container
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
MOST_GIF_BLOCKS = 1_000_000  # A 50 MB GIF of full 255-byte blocks has about 200,000.
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
        warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data" and the like: refused or shown below.
        if is_gif(data):  # Before Pillow reads it: opening alone keeps every comment block, one object each.
            gif_frames(data, filename, max_frames)
        image = _open(data, filename, max_pixels)
        try:
            frames, durations, size = _frames(
                image, data, filename, max_pixels=max_pixels, max_frames=max_frames, at_least=at_least
            )
        except PipelineError:
            raise
        except MemoryError:
            raise UploadTooLarge(f"{filename}: decoding it needs more memory than this service has") from None
        except Exception as exc:  # Pillow raises many types for hostile files (fuzzing found TypeError): all 422.
            raise InvalidImage(f"{filename}: the image data is damaged or truncated ({exc})") from None
    return DecodedImage(
        id=content_id(data),
        filename=filename,
        format="JPEG" if image.format == "MPO" else image.format,
        frames=frames,
        size=size,
        durations_ms=durations,
        loop=int(image.info.get("loop", 0) or 0),
    )


def declared_pixels(data: bytes, max_frames: int = 10_000) -> int:
    """Width x height x frames from the header and the frames' own descriptors, nothing decoded;
    0 when it is no accepted image (decoding will say what is wrong). An upper bound of what
    decoding may materialise: a frame of another size is refused, never decoded."""
    try:
        gif = len(gif_frames(data, "upload", max_frames)) if is_gif(data) else None  # Before Pillow reads a block.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(ACCEPTED))
            return image.size[0] * image.size[1] * (gif or _frame_count(image, data, "upload", max_frames))
    except Exception:  # Pillow raises many types for broken files; decoding will say what is wrong.
        return 0


def _open(data: bytes, filename: str, max_pixels: int) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=list(ACCEPTED))
    except Image.DecompressionBombError as exc:  # Pillow's own, looser check, on the header: our words.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        declared = f"{int(found.group(1)):,} pixels" if found else "more pixels than Pillow opens"
        raise UploadTooLarge(f"{filename}: its header declares {declared}, over the limit of {max_pixels:,}") from None
    except UnidentifiedImageError:
        pass
    except Exception as exc:  # Pillow raises many types for broken files.
        raise InvalidImage(f"{filename}: the image data is damaged or truncated ({exc})") from None
    try:  # Only to name what it is in the message; nothing of it is decoded.
        other = Image.open(io.BytesIO(data)).format
    except Exception:  # Pillow raises many types for files that are no image at all.
        other = None
    if video_container(data[:12]):
        raise UnsupportedImage(
            f"{filename}: a video; this takes images ({ACCEPTED_NAMES}). Send videos to POST /videos "
            "(censored in the background) or censor them offline with `gore-censor video`"
        )
    if other:
        raise UnsupportedImage(f"{filename}: {other} images are not accepted; send {ACCEPTED_NAMES}")
    raise UnsupportedImage(f"{filename}: not an image format we can decode (we accept {ACCEPTED_NAMES})")


def _frame_count(image: Image.Image, data: bytes, filename: str, max_frames: int) -> int:
    """How many frames decoding will walk, found without decoding any and never counting past
    `max_frames` (a file of a million tiny frames is refused after the limit, not walked)."""
    if image.format == "GIF":
        return len(gif_frames(data, filename, max_frames))
    if image.format == "MPO":  # A JPEG with extra pictures (stereo pairs, previews): viewers show the first.
        return 1
    if image.format == "TIFF":  # Pages are a chain in the file: follow it only up to the limit.
        for page in range(1, max_frames + 1):
            try:
                image.seek(page)  # Reads the page's tags, decodes nothing.
            except EOFError:
                image.seek(0)
                return page
        raise UploadTooLarge(f"{filename}: more than {max_frames:,} pages is over the limit of {max_frames:,} frames")
    return int(getattr(image, "n_frames", 1))  # PNG/APNG, WebP, AVIF: declared in a header.


def is_gif(data: bytes) -> bool:
    return data[:6] in (b"GIF87a", b"GIF89a")


def gif_frames(data: bytes, filename: str, max_frames: int) -> list[tuple[int, int, int, int]]:
    """Each frame's (left, top, width, height), read from the GIF's block structure without
    decompressing anything. A frame that reaches past the logical screen is refused: Pillow
    would grow the canvas for it (a 4 KB file of 1 x 1 can ask for 12999 x 12999 per frame),
    where browsers clip it."""
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        raise InvalidImage(f"{filename}: the GIF header is damaged")
    width, height, packed = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little"), data[10]
    at = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    frames: list[tuple[int, int, int, int]] = []
    blocks = 0

    def skip_sub_blocks(at: int) -> int:
        nonlocal blocks
        while at < len(data):
            size = data[at]
            blocks += 1
            if blocks > MOST_GIF_BLOCKS:
                raise InvalidImage(f"{filename}: over {MOST_GIF_BLOCKS:,} data blocks; not an image we decode")
            at += 1 + size
            if size == 0:
                return at
        return at

    while at < len(data):
        kind = data[at]
        if kind == 0x3B:  # Trailer.
            break
        if kind == 0x21:  # Extension: a label, then sub-blocks.
            at = skip_sub_blocks(at + 2)
        elif kind == 0x2C:  # Image descriptor: where the frame sits, then its data.
            if at + 10 > len(data):
                break
            left, top, w, h = (int.from_bytes(data[at + 1 + i : at + 3 + i], "little") for i in (0, 2, 4, 6))
            if left + w > width or top + h > height:
                raise InvalidImage(
                    f"{filename}: frame {len(frames) + 1} ({w} x {h} at {left}, {top}) reaches past the "
                    f"{width} x {height} canvas the file declares"
                )
            frames.append((left, top, w, h))
            if len(frames) > max_frames:
                raise UploadTooLarge(f"{filename}: more than {max_frames:,} frames is over the limit of {max_frames:,}")
            flags = data[at + 9]
            at += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            at = skip_sub_blocks(at + 1)  # The LZW code size, then the data.
        else:  # Pillow skips stray bytes one at a time; so do we.
            at += 1
    if not frames:
        raise InvalidImage(f"{filename}: the GIF holds no image")
    return frames


def _frames(
    image: Image.Image, data: bytes, filename: str, *, max_pixels: int, max_frames: int, at_least: int | None
) -> tuple[list[np.ndarray], list[int], tuple[int, int]]:
    width, height = image.size  # From the header: nothing is decoded yet.
    count = _frame_count(image, data, filename, max_frames)  # Bounded: never walks past the limit.
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
    if at_least and image.format in ("JPEG", "MPO") and count == 1:
        image.draft(image.mode, (at_least, at_least))  # DCT scaling: the smallest scale >= at_least a side.
    frames, durations, declared = [], [], image.size  # After DCT scaling: the size decoding will make.
    for index in range(count):
        if index:
            image.seek(index)  # Reads the frame's header (GIF: finishes the previous frame, already paid for).
        if image.size != declared:  # Checked before the frame is decompressed, not after.
            raise InvalidImage(
                f"{filename}: frame {index + 1} is {image.size[0]} x {image.size[1]}, the first "
                f"{width} x {height}; every frame or page must have the image's size"
            )
        image.load()
        # Stills and pages are shown upright by their EXIF orientation; animation players ignore it.
        frames.append(to_srgb(image if animated else _upright(image, single=count == 1)))
        if animated:
            durations.append(int(image.info.get("duration") or DEFAULT_FRAME_MS))
    if min(frames[0].shape[:2]) < 1:
        raise InvalidImage(f"{filename}: the image has no pixels")
    return frames, durations, size


def _upright(image: Image.Image, single: bool) -> Image.Image:
    """Turned by its EXIF orientation; a still image in place (no second copy of 80 million pixels)."""
    if image.getexif().get(ORIENTATION, 1) == 1:
        return image
    if single:
        ImageOps.exif_transpose(image, in_place=True)
        return image
    return ImageOps.exif_transpose(image)  # Pages: the file's next page is read into the same object.


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
    return np.asarray(frame if frame.mode == "RGB" else frame.convert("RGB"), dtype=np.uint8)  # No copy to spare.


def _eight_bit(frame: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer samples scaled to 0-255, float samples from 0-1 to 0-255.
    In place on one float32 copy: 4 bytes a pixel, not the 16 of float64 arithmetic."""
    if frame.mode.startswith("I;16") or frame.mode == "I":
        values = np.array(frame, dtype=np.float32)
        top = 65535.0 if frame.mode.startswith("I;16") or values.max() <= 65535 else float(2**32 - 1)
        values *= 255 / top
    elif frame.mode == "F":
        values = np.nan_to_num(np.array(frame, dtype=np.float32), copy=False, nan=1.0, posinf=1.0, neginf=0.0)
        if values.max() <= 1.0:
            values *= 255
    else:
        return frame
    np.rint(values, out=values)
    np.clip(values, 0, 255, out=values)
    grey = Image.fromarray(values.astype(np.uint8), mode="L")
    grey.info = dict(frame.info)  # Keep the ICC profile and transparency notes.
    return grey
