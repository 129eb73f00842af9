"""Content ids and perceptual hashes."""

from __future__ import annotations

import hashlib

import imagehash
import numpy as np
from PIL import Image


def content_id(data: bytes) -> str:
    """SHA-256 of the uploaded bytes: the same file always gets the same id."""
    return hashlib.sha256(data).hexdigest()


def perceptual_hash(pixels: np.ndarray) -> str:
    """64-bit DCT hash: near-duplicates (re-encoded, resized) differ in few bits."""
    return str(imagehash.phash(Image.fromarray(pixels)))
