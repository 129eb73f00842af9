"""What the web app shows of an image, from a stored record (no server): how each image is
treated (fail closed), and the pixels of thumbnails, patches and reveals."""

from __future__ import annotations

import io
from datetime import timedelta

import cv2
import numpy as np
import pytest
from images import RED, red_blob_pixels
from PIL import Image
from test_image_store import T0, analysis, record

from pipeline.imaging.hashes import content_id
from pipeline.serving.views import Defaults, Limits, Views
from pipeline.stores.images import FileSystemStore
from pipeline.stores.records import Review, Segmentation
from pipeline.web.pictures import Pictures, treatment


def redness(pixels: np.ndarray) -> np.ndarray:
    pixels = pixels.astype(int)
    return pixels[..., 0] - (pixels[..., 1] + pixels[..., 2]) / 2 > 60


def views(tmp_path) -> Views:
    return Views(FileSystemStore(tmp_path), Defaults(None, None, "black", 0.0), Limits(10**7, 10**8, 10))


@pytest.mark.parametrize(
    ("probability", "segmented", "review", "expected"),
    [
        (0.1, False, None, "clean"),
        (0.9, True, None, "censored"),
        (0.9, False, None, "withheld"),  # Likely gore, no censored copy can exist: show nothing.
        (0.9, True, "not_gore", "censored"),  # A person said not gore, the models say gore: stay censored.
        (0.1, False, "gore", "withheld"),  # A person said gore: never shown as clean.
        (0.1, True, "gore", "censored"),
    ],
)
def test_an_image_is_shown_clean_only_when_models_and_people_agree(tmp_path, probability, segmented, review, expected):
    found = analysis(probability=probability, segmented=segmented)
    reviews = [Review(verdict=review, by="web:a", at=T0 + timedelta(1))] if review else []
    assert treatment(record(found, reviews=reviews), found, views(tmp_path)) == expected


@pytest.fixture
def stored(tmp_path):
    """The red blob as the service stores it: original, record, and maps by the red-pixel rule."""
    shown = views(tmp_path)
    pixels = red_blob_pixels()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    data = buffer.getvalue()
    image_id = content_id(data)
    small = cv2.resize(pixels, (224, 224), interpolation=cv2.INTER_AREA)
    maps = (redness(small) * 255).astype(np.uint8)[None]
    found = analysis(probability=0.99, segmented=True).model_copy(
        update={"segmentation": Segmentation(maps="maps-red.npy", size=224, segmented_at=T0)}
    )
    shown.store.put_original(image_id, ".png", data)
    shown.store.put_maps(image_id, "maps-red.npy", maps)
    saved = record(found).model_copy(update={"id": image_id, "filename": "red.png", "width": 640, "height": 480})
    shown.store.merge(saved)
    return Pictures(shown, thumbnail_px=256, patch_fraction=0.15), saved, found


def jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_thumbnails_of_gore_come_from_the_censored_copy(stored):
    pictures, saved, found = stored
    for strength in (0, 30, 100):
        thumb = jpeg(pictures.thumbnail(saved, found, strength))
        assert thumb.shape == (192, 256, 3) and not redness(thumb).any(), strength
    sharp = jpeg(pictures.thumbnail(saved, found, 0))
    assert sharp[60:100, 100:160].max() < 40, "unblurred, the red rectangle is black: the censored copy"


def test_a_patch_is_that_square_of_the_original_and_counts_its_gore(stored):
    pictures, saved, found = stored
    piece = pictures.patch(saved, found, 630, 5)  # Near a corner: the square stays inside.
    assert (piece.left, piece.top, piece.width, piece.height) == (640 - 72, 0, 72, 72)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(piece.png))), red_blob_pixels()[0:72, 568:640])
    assert piece.gore_pixels == 0, "no red there"
    inside = pictures.patch(saved, found, 300, 200)
    assert inside.gore_pixels == 72 * 72
    red_area = int((red_blob_pixels() == RED).all(axis=-1).sum())
    assert 0.95 * red_area <= pictures.gore_pixels(saved, found) <= 1.05 * red_area
