"""PDQ, Meta's perceptual hash for photos: 256 bits and a quality score (0 to 100).

The hash is written as the field writes it (ThreatExchange, HMA): 64 hexadecimal digits, the
first bit of `pdqhash.compute` the most significant. Two images are the same picture when their
hashes differ in at most MATCH_DISTANCE bits; a hash whose quality is at most LOW_QUALITY (a flat
or nearly blank image) says too little to be matched, and is neither matched nor shared.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import pdqhash

from pipeline.stores.records import PDQ_LOW_QUALITY, Pdq

BITS = 256
BYTES = BITS // 8
MATCH_DISTANCE = 31  # Meta's published advice for PDQ.
MIRRORED = 5  # Of pdqhash.compute_dihedral's eight: the image flipped left to right.
LOW_QUALITY = PDQ_LOW_QUALITY  # ...and hashes of this quality or less are discarded.
MAX_SIDE = 1536
"""Larger images are hashed from a copy shrunk to this side. pdqhash holds Python's GIL while it
works (0.7 s for 12 megapixels here: the event loop would stall); at 1536 px it takes about 0.1 s,
and the hash stays within a few bits of the full-size one (`make bench-hashes`)."""
_HEX = re.compile(r"^[0-9a-f]{64}$")


def pdq_of(pixels: np.ndarray) -> Pdq:
    """The PDQ hash of an RGB (or grey) uint8 image."""
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    height, width = pixels.shape[:2]
    if max(height, width) > MAX_SIDE:  # cv2 lets go of the GIL while it resizes.
        scale = MAX_SIDE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        pixels = cv2.resize(np.ascontiguousarray(pixels[..., :3]), size, interpolation=cv2.INTER_AREA)
    # The eight dihedral hashes cost about what one does: the first is the image's own, the sixth
    # its mirror's (PDQ alone does not match a mirrored copy).
    hashes, quality = pdqhash.compute_dihedral(np.ascontiguousarray(pixels[..., :3], dtype=np.uint8))
    own, mirrored = (np.packbits(hashes[i].astype(np.uint8)).tobytes().hex() for i in (0, MIRRORED))
    return Pdq(hash=own, quality=int(quality), mirrored=mirrored)


def image_pdq(frames: list[np.ndarray]) -> Pdq:
    """An image's PDQ hash: its first frame's, or for an animation (or a multi-page TIFF) the
    first frame that says enough to be matched, so a blank frame put first does not keep the
    picture after it from its lists. Every frame may be hashed: bounded by the decoded pixels."""
    hashes = (pdq_of(frame) for frame in frames)
    first = next(hashes)
    return first if first.matchable else next((h for h in hashes if h.matchable), first)


def checked_hash(text: str) -> str:
    """A PDQ hash as written in a list, lower case; ValueError when it is not one."""
    value = text.strip().lower()
    if not _HEX.fullmatch(value):
        raise ValueError(f"not a PDQ hash (64 hexadecimal digits): {text[:80]!r}")
    return value


def codes(hashes: list[str]) -> np.ndarray:
    """Hex hashes as an (N, 32) uint8 array, the layout the index keeps."""
    if not hashes:
        return np.zeros((0, BYTES), np.uint8)
    return np.frombuffer(bytes.fromhex("".join(hashes)), np.uint8).reshape(-1, BYTES)


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
