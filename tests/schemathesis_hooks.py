"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in tests/test_api_contract.py: a file field
described as binary is only schema-valid as far as the schema can say; the service also needs it
to be an image. So the generated files are small real images, of the formats we accept, and a
body of format "video" (POST /videos) is a small real video, and a hash list (POST
/admin/hash-lists) is PDQ hashes, a line each (read alike as signals and as HMA's CSV)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image
from videos import Clip, write_clip


def _encoded(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _images() -> list[bytes]:
    green = np.full((24, 32, 3), (40, 140, 60), np.uint8)
    red = green.copy()
    red[4:20, 6:26] = (200, 20, 20)
    return [_encoded(green, "PNG"), _encoded(red, "PNG"), _encoded(red, "JPEG"), _encoded(green, "GIF")]


schemathesis.openapi.format("binary", st.sampled_from(_images()))


def _videos() -> list[bytes]:
    with tempfile.TemporaryDirectory() as folder:
        clips = [Clip(width=32, height=24, seconds=0.2, audio=False), Clip(width=48, height=32, seconds=0.3)]
        return [
            write_clip(Path(folder) / f"{i}{suffix}", clip).read_bytes()
            for i, clip in enumerate(clips)
            for suffix in (".mp4", ".mkv")
        ]


schemathesis.openapi.format("video", st.sampled_from(_videos()))


def _hash_lists() -> list[str]:
    rng = np.random.default_rng(0)
    return ["".join(f"{rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()}\n" for _ in range(n)) for n in (1, 3)]


schemathesis.openapi.format("hash-list", st.sampled_from(_hash_lists()))
