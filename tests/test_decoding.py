"""Decoding uploads: upright pixels, stable ids, and a clear error for every bad file."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from images import upright
from PIL import Image

from pipeline.errors import InvalidImage, UploadTooLarge
from pipeline.imaging.decode import decode_upload
from pipeline.imaging.hashes import perceptual_hash
from pipeline.imaging.model_input import model_input

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 4_000_000}


def test_the_id_is_the_sha256_of_the_bytes(sample_images):
    data = sample_images.red_blob.read_bytes()
    decoded = decode_upload(data, "a.png", **LIMITS)
    assert decoded.id == hashlib.sha256(data).hexdigest()
    assert decode_upload(data, "b.png", **LIMITS).id == decoded.id


def test_exif_orientation_is_applied(sample_images):
    decoded = decode_upload(sample_images.rotated_red_blob.read_bytes(), "r.jpg", **LIMITS)
    assert (decoded.width, decoded.height) == (320, 480)
    assert np.array_equal(decoded.pixels, upright(sample_images.rotated_red_blob))
    top, bottom = decoded.pixels[:100].mean(axis=(0, 1)), decoded.pixels[-100:].mean(axis=(0, 1))
    assert top[0] > 150 > bottom[0], "the red third is at the top once upright"


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("not_an_image", InvalidImage, "not an image format"),
        ("empty", InvalidImage, "empty"),
        ("truncated", InvalidImage, "damaged or truncated"),
        ("huge_pixels", UploadTooLarge, "9,000,000 pixels"),
    ],
)
def test_bad_files_get_an_error_that_says_what_is_wrong(sample_images, name, error, message):
    path = getattr(sample_images, name)
    with pytest.raises(error, match=message) as raised:
        decode_upload(path.read_bytes(), path.name, **LIMITS)
    assert path.name in str(raised.value)


def test_uploads_over_the_byte_limit_are_refused(sample_images):
    with pytest.raises(UploadTooLarge, match="upload limit"):
        decode_upload(sample_images.red_blob.read_bytes(), "x.png", max_bytes=100, max_pixels=10**9)


def test_grey_and_transparent_images_become_rgb():
    import io

    for mode in ("L", "RGBA", "P"):
        buffer = io.BytesIO()
        Image.new(mode, (30, 20)).save(buffer, format="PNG")
        assert decode_upload(buffer.getvalue(), "m.png", **LIMITS).pixels.shape == (20, 30, 3)


def test_model_input_is_224_square_uint8():
    pixels = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    small = model_input(pixels, 224)
    assert small.shape == (224, 224, 3) and small.dtype == np.uint8
    assert model_input(pixels[:100, :100], 224).shape == (224, 224, 3)


def test_perceptual_hash_groups_near_duplicates():
    rng = np.random.default_rng(0)
    pixels = (np.kron(rng.integers(0, 256, (12, 16, 1)), np.ones((40, 40, 3)))).astype(np.uint8)
    resized = np.asarray(Image.fromarray(pixels).resize((320, 240)))
    other = (np.kron(rng.integers(0, 256, (12, 16, 1)), np.ones((40, 40, 3)))).astype(np.uint8)

    def distance(a, b):
        return bin(int(perceptual_hash(a), 16) ^ int(perceptual_hash(b), 16)).count("1")

    assert len(perceptual_hash(pixels)) == 16
    assert distance(pixels, resized) <= 4 < 16 <= distance(pixels, other)
