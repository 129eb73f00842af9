"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in tests/test_api_contract.py: a file field
described as binary is only schema-valid as far as the schema can say; the service also needs it
to be an image. So the generated files are small real images, of the formats we accept."""

from __future__ import annotations

import io

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image


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
