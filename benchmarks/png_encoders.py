"""PNG encoding of a censored copy: Pillow's default level against what the service uses.

.venv/bin/python benchmarks/png_encoders.py
"""

from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image

from pipeline.imaging.encode import encode_png


def median_ms(work, runs: int = 15) -> float:
    work()  # Warm-up.
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def main() -> None:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:640, 0:640]
    photo = np.stack([x / 640 * 255, y / 640 * 255, (x + y) / 1280 * 255], -1) + rng.normal(0, 8, (640, 640, 3))
    censored = photo.clip(0, 255).astype(np.uint8)
    censored[200:400, 200:400] = 0  # A censored region, as the copies have.

    def pillow() -> None:
        Image.fromarray(censored).save(io.BytesIO(), "PNG")

    print(f"640 x 640 censored photo-like image, median of 15: Pillow default {median_ms(pillow):.1f} ms, ", end="")
    print(f"the service's encoder {median_ms(lambda: encode_png([censored])):.1f} ms")


if __name__ == "__main__":
    main()
