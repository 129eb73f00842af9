"""Encoding what the service hands out: lossless PNG, animated (APNG) for several frames."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image


def encode_png(frames: np.ndarray | Sequence[np.ndarray], durations_ms: Sequence[int] = (), loop: int = 0) -> bytes:
    """Lossless, so kept pixels stay byte-identical to the decoded original. Several frames make
    an APNG with the original's timing; a multi-page original (no timing) makes one too."""
    frames = [frames] if isinstance(frames, np.ndarray) else list(frames)
    buffer = io.BytesIO()
    first, rest = Image.fromarray(frames[0]), [Image.fromarray(f) for f in frames[1:]]
    if rest:
        durations = list(durations_ms) or [1000] * len(frames)
        first.save(
            buffer, format="PNG", save_all=True, append_images=rest, duration=durations, loop=loop, disposal=0, blend=0
        )
    else:
        first.save(buffer, format="PNG")
    return buffer.getvalue()
