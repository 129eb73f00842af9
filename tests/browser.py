"""What the browser tests share: Debian's Chromium, and reading back the pixels a page shows.

Images are judged as the red-pixel test models judge them (tests/red_pixel_models.py): a pixel
is gore when R - (G + B) / 2 > 60.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)"
)


def redness(pixels: np.ndarray) -> np.ndarray:
    """The red-pixel test models' idea of gore."""
    pixels = pixels.astype(int)
    return pixels[..., 0] - (pixels[..., 1] + pixels[..., 2]) / 2 > 60


def colourfulness(pixels: np.ndarray) -> float:
    return float(np.ptp(pixels.astype(int), axis=-1).mean())


def until(page, condition: str, timeout_s: float = 60) -> None:
    """Poll a JavaScript condition. Not `wait_for_function`: it compiles its predicate with eval,
    which the app's Content-Security-Policy forbids, as it should."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(f"() => Boolean({condition})"):
        assert time.monotonic() < deadline, f"not true within {timeout_s} s: {condition}"
        time.sleep(0.1)


SHOWN = """selector => {
    const image = document.querySelector(selector);
    const canvas = document.createElement("canvas");
    canvas.width = image.naturalWidth || image.videoWidth;
    canvas.height = image.naturalHeight || image.videoHeight;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    return [canvas.width, canvas.height, Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data)];
}"""


def shown(page, selector: str) -> np.ndarray:
    """The pixels the browser decoded for an <img> (or a <video>'s current frame), at its own size,
    before any CSS filter (badges laid over it aside)."""
    width, height, data = page.evaluate(SHOWN, selector)
    return np.array(data, np.uint8).reshape(height, width, 4)[..., :3]


def watched_page(browser) -> tuple:
    """A fresh context and page (1280 x 900, a minute's patience for a 2-core machine) and the list
    of every URL the page requests, so a test can say what was never asked for."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    return context, page, requests
