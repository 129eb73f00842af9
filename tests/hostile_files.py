"""Hostile files, made byte by byte: each is small on the wire and asks the decoder for far more
than it declares, or than any limit allows. The tests, the fuzzing corpus and `make hostile` use
them; each says what it attacks."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _gif_frame_bytes() -> bytes:
    """One 1 x 1 frame of a GIF (image descriptor and its data), as Pillow writes it."""
    data = _encoded(Image.new("P", (1, 1), 0), "GIF")
    start = data.index(b"\x2c", 13)  # The image descriptor, after the header and colour table.
    return data[start:-1]  # Without the trailer.


def _gif(width: int, height: int, frames: list[tuple[int, int]]) -> bytes:
    """A GIF whose header says `width` x `height`, with 1 x 1 frames at the given positions."""
    frame = _gif_frame_bytes()
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\x00\x00"
    body = b"".join(frame[:1] + struct.pack("<HH", x, y) + frame[5:] for x, y in frames)
    return head + body + b";"


def gif_growing_canvas(frames: int = 200, at: int = 12_999) -> bytes:
    """Header 1 x 1; every later frame sits at (12999, 12999): Pillow grows the canvas to
    13000 x 13000 (169 million pixels) for each one. About 4 KB."""
    return _gif(1, 1, [(0, 0)] + [(at, at)] * (frames - 1))


def gif_many_frames(frames: int = 100_000) -> bytes:
    """A 1 x 1 GIF with 100,000 frames (1.6 MB): counting them all is the attack."""
    return _gif(1, 1, [(0, 0)] * frames)


def gif_tiny_blocks(blocks: int = 10_000_000) -> bytes:
    """A 1 x 1 GIF whose comment is ten million 1-byte blocks (20 MB): Pillow's open alone keeps
    each block as an object (about 0.8 GB and 2 s here; 2 GB and 4.4 s for 50 MB)."""
    frame = _gif_frame_bytes()
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\x00\x00"
    comment = b"\x21\xfe" + b"\x01a" * blocks + b"\x00"
    return head + comment + frame + b";"


def tiff_growing_pages(big: int = 9000, pages: int = 3) -> bytes:
    """First page 1 x 1, later pages 9000 x 9000 (81 million pixels each), deflate-compressed to
    a few hundred KB: the first page's size passes every header check."""
    first = Image.new("L", (1, 1), 0)
    rest = [Image.new("L", (big, big), 0) for _ in range(pages - 1)]
    return _encoded(first, "TIFF", save_all=True, append_images=rest, compression="tiff_adobe_deflate")


def tiff_many_pages(pages: int = 20_000) -> bytes:
    """20,000 pages of 1 x 1 grey, chained IFD to IFD (written here: Pillow takes minutes to write
    that many): the page chain is walked only up to the frame limit."""
    entries = [(256, 3, 1), (257, 3, 1), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 0), (278, 3, 1), (279, 4, 1)]
    ifd_size = 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    for page in range(pages):
        start = len(out)
        pixel = start + ifd_size  # One byte of pixel data right after each IFD.
        following = 0 if page == pages - 1 else pixel + 1
        out += struct.pack("<H", len(entries))
        for tag, kind, value in entries:
            value = pixel if tag == 273 else value
            out += struct.pack("<HHI", tag, kind, 1) + (
                struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
            )
        out += struct.pack("<I", following) + bytes([page % 256])
    return bytes(out)


def png_bomb(side: int = 30_000) -> bytes:
    """A PNG header of 30000 x 30000 (900 million pixels) over a few KB of compressed zeros."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compressobj(9)
    data = rows.compress(b"\x00" * (side + 1) * 64) + rows.flush()  # A few rows; the header claims the rest.
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def apng_many_frames(declared: int = 1_000_000) -> bytes:
    """An APNG whose animation control says a million frames."""
    data = _encoded(
        Image.new("RGB", (4, 4), (200, 0, 0)),
        "PNG",
        save_all=True,
        append_images=[Image.new("RGB", (4, 4), (0, 200, 0))],
    )
    at = data.index(b"acTL")
    body = struct.pack(">II", declared, 0)
    crc = struct.pack(">I", zlib.crc32(b"acTL" + body) & 0xFFFFFFFF)
    return data[: at + 4] + body + crc + data[at + 4 + 8 + 4 :]


def jpeg_huge_header(side: int = 60_000) -> bytes:
    """A real JPEG whose frame header (SOF0) is rewritten to 60000 x 60000."""
    data = bytearray(_encoded(Image.new("RGB", (16, 16), (200, 20, 20)), "JPEG"))
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", side, side)
    return bytes(data)


def webp_big_canvas(side: int = 16_000) -> bytes:
    """A lossless WebP of 16000 x 1 made 16000 x 16000 in its header (VP8L)."""
    data = bytearray(_encoded(Image.new("RGB", (16, 16), (200, 20, 20)), "WEBP", lossless=True))
    at = data.index(b"VP8L") + 8 + 1  # Chunk header, then the signature byte.
    bits = (side - 1) | ((side - 1) << 14) | (int.from_bytes(data[at : at + 4], "little") & ~0xFFFFFFF)
    data[at : at + 4] = bits.to_bytes(4, "little")
    return bytes(data)


def bmp_huge(width: int = 40_000, height: int = 40_000) -> bytes:
    """A BMP header of 40000 x 40000 with almost no pixel data."""
    data = bytearray(_encoded(Image.new("RGB", (4, 4)), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def avif_many_frames(frames: int = 300) -> bytes:
    """An AVIF image sequence of 300 frames: past the frame limit (counted from its header)."""
    images = [Image.new("RGB", (8, 8), (i % 256, 0, 0)) for i in range(frames)]
    return _encoded(images[0], "AVIF", save_all=True, append_images=images[1:])


def mpo_pair() -> bytes:
    """A JPEG with a second picture appended (MPO): Pillow calls it MPO, not JPEG."""
    first, second = Image.new("RGB", (64, 48), (200, 20, 20)), Image.new("RGB", (32, 24), (20, 200, 20))
    return _encoded(first, "MPO", save_all=True, append_images=[second])


def float_tiff(side: int = 2000) -> bytes:
    """A 32-bit float TIFF (4 bytes a pixel as stored, 16 as float64 arithmetic would hold)."""
    return _encoded(Image.fromarray(np.full((side, side), 0.5, np.float32)), "TIFF", compression="tiff_adobe_deflate")


# Name -> (maker, what the decoder must answer: an HTTP status).
HOSTILE: dict[str, tuple[Callable[[], bytes], int]] = {
    "gif_growing_canvas.gif": (gif_growing_canvas, 422),
    "gif_many_frames.gif": (gif_many_frames, 413),
    "gif_tiny_blocks.gif": (gif_tiny_blocks, 422),
    "tiff_growing_pages.tif": (tiff_growing_pages, 422),
    "tiff_many_pages.tif": (tiff_many_pages, 413),
    "png_bomb.png": (png_bomb, 413),
    "apng_many_frames.png": (apng_many_frames, 413),
    "jpeg_huge_header.jpg": (jpeg_huge_header, 413),
    "webp_big_canvas.webp": (webp_big_canvas, 413),
    "bmp_huge.bmp": (bmp_huge, 413),
    "avif_many_frames.avif": (avif_many_frames, 413),
}
