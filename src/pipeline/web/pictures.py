"""What the web app shows of an image, made server-side: thumbnails, the censored copy, the
original blurred and greyed, a patch of the original, the original.

How an image is treated is decided from its record every time (never from the gallery index):

    clean     neither the models (at the deployment's threshold), nor a gore hash list, nor the
              latest review say gore
    censored  likely gore and segmented: shown through its censored copy
    withheld  likely gore with no segmentation (no censored copy can exist): nothing is shown

A likely-gore thumbnail is made from the censored copy (black, whatever the deployment's style,
so no gore pixel survives in any form; the region widened by at least THUMB_MIN_MARGIN) and then
blurred and greyed; the original is never read for it.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from pipeline.errors import Forbidden, InvalidRequest, NotFound
from pipeline.imaging.encode import encode_png
from pipeline.serving.views import Views
from pipeline.stores.images import check_id
from pipeline.stores.records import Analysis, ImageRecord

Treatment = Literal["clean", "censored", "withheld"]
MIN_REVEAL_BLUR = 50  # The blurred step is never sharper than this, whatever a person's thumbnail setting.
DETAIL_PX = 1200  # Longer side of the blurred original on the detail page.
THUMBS_KEPT = 1024  # Thumbnails kept in memory per process (they are small).
THUMB_MIN_MARGIN = 2.0  # Model pixels: thumbnails widen the censored region at least this much, whatever
# the deployment's margin (margin 0 leaves about a tenth of gore edges visible; README "leak").


def treatment(record: ImageRecord, analysis: Analysis, views: Views, whole: bool | None = None) -> Treatment:
    """`whole`: whether a gore list hides it whole, when the caller has asked already (else asked here)."""
    model_gore = analysis.gore_probability >= views.defaults.threshold_for(analysis)
    review = record.latest_review()
    listed = views.whole(record) if whole is None else whole
    if not model_gore and (review is None or review.verdict == "not_gore") and not listed:
        return "clean"
    return "censored" if analysis.segmentation is not None else "withheld"


def fit(pixels: np.ndarray, longest: int) -> np.ndarray:
    """Shrunk (never enlarged) so the longer side is at most `longest`."""
    height, width = pixels.shape[:2]
    scale = longest / max(height, width)
    if scale >= 1:
        return pixels
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def soften(pixels: np.ndarray, strength: int) -> np.ndarray:
    """Blurred and greyed, both in proportion to `strength` (0: unchanged, 100: grey and formless)."""
    if strength <= 0:
        return pixels
    amount = strength / 100
    sigma = amount * 0.05 * max(pixels.shape[:2])
    blurred = cv2.GaussianBlur(pixels, (0, 0), sigmaX=max(sigma, 0.1)) if sigma >= 0.3 else pixels
    grey = cv2.cvtColor(cv2.cvtColor(blurred, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    return np.round(blurred * (1 - amount) + grey * amount).astype(np.uint8)


def encode_jpeg(pixels: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", pixels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def first_frame(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB") if image.mode != "L" else image.convert("L"))


def placeholder(longest: int) -> np.ndarray:
    """A withheld image's thumbnail: plain grey with a diagonal, no pixel of the image."""
    side = max(16, longest // 2)
    pixels = np.full((side, side, 3), 96, np.uint8)
    cv2.line(pixels, (0, 0), (side - 1, side - 1), (140, 140, 140), 2)
    cv2.line(pixels, (0, side - 1), (side - 1, 0), (140, 140, 140), 2)
    return pixels


@dataclass(frozen=True)
class Patch:
    """A square of the original (first frame) and how many censored pixels it uncovers."""

    left: int
    top: int
    width: int
    height: int
    png: bytes
    gore_pixels: int


@dataclass
class Pictures:
    views: Views
    thumbnail_px: int
    patch_fraction: float
    _thumbs: OrderedDict[tuple, bytes] = field(default_factory=OrderedDict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)  # Routes run in a thread pool.

    def found(self, image_id: str) -> tuple[ImageRecord, Analysis]:
        record = self.views.store.record(check_id(image_id))
        analysis = record.latest_analysis() if record else None
        if record is None or analysis is None:
            raise NotFound(f"no image with id {image_id}")
        return record, analysis

    def treatment(self, record: ImageRecord, analysis: Analysis) -> Treatment:
        return treatment(record, analysis, self.views)

    def _censored(self, record: ImageRecord, analysis: Analysis, style: str, margin: float | None = None) -> bytes:
        margin = self.views.defaults.margin if margin is None else margin
        return self.views.rendering(record, analysis, "censored", style, margin)

    def _decoded(self, record: ImageRecord):
        data, _ = self.views.store.original(record.id)
        return self.views.limits.decode(data, record.filename)

    # ---- what anyone with the analyst role may see ----

    def thumbnail(self, record: ImageRecord, analysis: Analysis, strength: int) -> bytes:
        # Whether a gore list hides it whole is part of the key: a list enabled later changes the picture.
        whole = self.views.whole(record)
        how = treatment(record, analysis, self.views, whole)
        key = (record.id, analysis.key, how, strength if how == "censored" else None, self.views.defaults.margin, whole)
        with self._lock:
            if key in self._thumbs:
                self._thumbs.move_to_end(key)
                return self._thumbs[key]
        if how == "clean":
            pixels = fit(self._decoded(record).frames[0], self.thumbnail_px)
        elif how == "censored":
            margin = max(self.views.defaults.margin, THUMB_MIN_MARGIN)
            censored = first_frame(self._censored(record, analysis, "black", margin))
            pixels = soften(fit(censored, self.thumbnail_px), strength)
        else:
            pixels = placeholder(self.thumbnail_px)
        jpeg = encode_jpeg(pixels)
        with self._lock:
            self._thumbs[key] = jpeg
            while len(self._thumbs) > THUMBS_KEPT:
                self._thumbs.popitem(last=False)
        return jpeg

    def view(self, record: ImageRecord, analysis: Analysis) -> bytes:
        """The detail page's first image: the censored copy (the deployment's style), or a clean
        image as decoded. A withheld image has none."""
        how = self.treatment(record, analysis)
        if how == "withheld":
            raise NotFound("this image is likely gore and has no censored copy: it is withheld")
        if how == "censored":
            return self._censored(record, analysis, self.views.defaults.style)
        decoded = self._decoded(record)
        return encode_png(decoded.frames, record.durations_ms, record.loop)

    # ---- reveals (the caller has checked, audited and counted them) ----

    def blurred(self, record: ImageRecord, strength: int) -> bytes:
        pixels = fit(self._decoded(record).frames[0], DETAIL_PX)
        return encode_jpeg(soften(pixels, max(strength, MIN_REVEAL_BLUR)))

    def original(self, record: ImageRecord) -> bytes:
        """The original as a viewer sees it (upright, sRGB, every frame), as PNG/APNG."""
        decoded = self._decoded(record)
        return encode_png(decoded.frames, record.durations_ms, record.loop)

    def gore_pixels(self, record: ImageRecord, analysis: Analysis) -> int:
        """Censored pixels of the first frame (what revealing the whole original uncovers)."""
        if analysis.segmentation is None:
            return record.width * record.height  # Withheld: all of it counts.
        mask = first_frame(self.views.rendering(record, analysis, "mask", "black", self.views.defaults.margin))
        return int(np.count_nonzero(mask))

    def patch_box(self, record: ImageRecord, analysis: Analysis, x: float, y: float) -> tuple[int, int, int, int]:
        """The square of the original around (x, y) a patch shows: left, top, width, height."""
        if self.treatment(record, analysis) != "censored":
            raise Forbidden("only a censored image's regions can be revealed in part")
        if not (0 <= x < record.width and 0 <= y < record.height):
            raise InvalidRequest(f"({x:g}, {y:g}) is outside the {record.width} x {record.height} image")
        side = max(16, round(self.patch_fraction * min(record.width, record.height)))
        left = int(min(max(0, x - side / 2), max(0, record.width - side)))
        top = int(min(max(0, y - side / 2), max(0, record.height - side)))
        return left, top, min(side, record.width - left), min(side, record.height - top)

    def patch(self, record: ImageRecord, analysis: Analysis, x: float, y: float) -> Patch:
        """A square of the original around (x, y) (original pixels, first frame)."""
        left, top, width, height = self.patch_box(record, analysis, x, y)
        frame = self._decoded(record).frames[0]
        piece = frame[top : top + height, left : left + width]
        mask = first_frame(self.views.rendering(record, analysis, "mask", "black", self.views.defaults.margin))
        gore = int(np.count_nonzero(mask[top : top + height, left : left + width]))
        return Patch(left, top, piece.shape[1], piece.shape[0], encode_png(piece), gore)
