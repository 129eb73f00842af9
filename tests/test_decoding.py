"""Decoding uploads into what a viewer sees: upright, 8-bit sRGB, transparency composited,
every frame; stable ids; and a clear error for every bad file."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from hostile_files import HOSTILE, gif_growing_canvas, mpo_pair, tiff_growing_pages
from images import linear_rgb_profile, srgb_encoded, upright
from PIL import Image

from pipeline.errors import InvalidImage, PipelineError, UnsupportedImage, UploadTooLarge
from pipeline.imaging.decode import declared_pixels, decode_upload
from pipeline.imaging.hashes import perceptual_hash
from pipeline.imaging.model_input import model_input

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 4_000_000, "max_frames": 10}


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decoded(data: bytes, **limits):
    return decode_upload(data, "f", **{**LIMITS, **limits})


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


def test_a_jpeg_for_the_models_only_decodes_at_reduced_scale_with_its_true_size(sample_images):
    data = sample_images.rotated_red_blob.read_bytes()
    whole = decode_upload(data, "r.jpg", **LIMITS)
    small = decode_upload(data, "r.jpg", **LIMITS, at_least=96)
    assert small.pixels.shape == (240, 160, 3), "half scale: the smallest DCT scale that keeps 96 a side"
    assert (small.width, small.height) == (whole.width, whole.height) == (320, 480), "the viewer's size, upright"
    difference = np.abs(model_input(small.pixels, 96).astype(int) - model_input(whole.pixels, 96).astype(int))
    assert difference.mean() < 2 and np.percentile(difference, 99) < 12, "the models see the same picture"
    top = small.pixels[:50].mean(axis=(0, 1))
    assert top[0] > 150, "upright at reduced scale too"


def test_other_formats_decode_whole_whatever_is_asked(sample_images):
    data = sample_images.red_blob.read_bytes()
    assert decode_upload(data, "b.png", **LIMITS, at_least=8).pixels.shape == decoded(data).pixels.shape


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("not_an_image", UnsupportedImage, "not an image format"),
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
        decode_upload(sample_images.red_blob.read_bytes(), "x.png", max_bytes=100, max_pixels=10**9, max_frames=1)


def test_grey_and_palette_images_become_the_same_rgb():
    grey = decoded(encoded(Image.new("L", (30, 20), 77), "PNG")).pixels
    assert grey.shape == (20, 30, 3) and (grey == 77).all()
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    assert (decoded(encoded(palette, "PNG")).pixels == (10, 200, 30)).all()


def test_16_bit_grey_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 256).astype(np.uint16)[None, :].repeat(4, axis=0)
    pixels = decoded(encoded(Image.fromarray(ramp), "PNG")).pixels[0, :, 0]
    assert pixels[0] == 0 and pixels[-1] == 255 and pixels[128] in (127, 128, 129)
    assert (pixels == 255).mean() < 0.01, "a full gradient, not 99.6% white"


def test_float_samples_from_0_to_1_are_scaled():
    half = decoded(encoded(Image.fromarray(np.full((6, 6), 0.5, np.float32)), "TIFF")).pixels
    assert (half == 128).all(), "0.5 is mid grey, not black"


def test_transparent_pixels_stay_invisible():
    """Red hidden under alpha 0 must not appear: composited over white, as a viewer shows it."""
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 255  # Red everywhere ...
    rgba[:, 5:, 3] = 255  # ... but only the right half is opaque.
    rgba[:, :5, 3] = 0
    pixels = decoded(encoded(Image.fromarray(rgba, "RGBA"), "PNG")).pixels
    assert (pixels[:, :5] == 255).all(), "the invisible half shows the white background"
    assert (pixels[:, 5:] == (255, 0, 0)).all()
    half = rgba.copy()
    half[..., 3] = 128
    assert decoded(encoded(Image.fromarray(half, "RGBA"), "PNG")).pixels[0, 0].tolist() == [255, 127, 127]


def test_a_palette_transparency_is_composited_too():
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([200, 0, 0] + [0] * 765)
    data = encoded(palette, "PNG", transparency=0)
    assert (decoded(data).pixels == 255).all()


def test_an_embedded_icc_profile_is_converted_to_srgb():
    """The same values mean other colours in another colour space: Little CMS converts them."""
    image = Image.new("RGB", (4, 4), (200, 100, 50))
    assert decoded(encoded(image, "PNG")).pixels[0, 0].tolist() == [200, 100, 50], "no profile: taken as sRGB"
    converted = decoded(encoded(image, "PNG", icc_profile=linear_rgb_profile())).pixels[0, 0]
    expected = [srgb_encoded(v) for v in (200, 100, 50)]
    assert np.abs(converted.astype(int) - expected).max() <= 3, (converted, expected)


def test_cmyk_is_converted_to_rgb():
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # Full magenta and yellow: red.
    pixels = decoded(encoded(cmyk, "JPEG", quality=100)).pixels[0, 0]
    assert pixels[0] > 200 and pixels[1] < 60 and pixels[2] < 60


def test_every_frame_of_an_animation_is_decoded_with_its_timing():
    colours = [(0, 200, 0), (200, 0, 0), (0, 0, 200)]
    frames = [Image.new("RGB", (12, 8), c) for c in colours]
    for fmt, options in (("GIF", {}), ("PNG", {}), ("WEBP", {"lossless": True})):
        data = encoded(
            frames[0], fmt, save_all=True, append_images=frames[1:], duration=[100, 200, 300], loop=0, **options
        )
        image = decoded(data)
        assert len(image.frames) == 3, fmt
        assert [tuple(int(v) for v in f[4, 6]) for f in image.frames] == colours, fmt
        if fmt != "WEBP":  # Pillow does not report WebP frame durations.
            assert image.durations_ms == [100, 200, 300], fmt


def test_pages_of_a_tiff_are_frames():
    pages = [Image.new("RGB", (6, 6), (i * 80, 0, 0)) for i in range(3)]
    image = decoded(encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    assert [int(f[0, 0, 0]) for f in image.frames] == [0, 80, 160] and image.durations_ms == []


def test_frames_count_against_the_limits():
    frames = [Image.new("RGB", (100, 100), (i, 0, 0)) for i in range(12)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(UploadTooLarge, match="more than 10 frames is over the limit of 10"):  # Counting stops there.
        decoded(data)
    with pytest.raises(UploadTooLarge, match=r"100 x 100 x 12 frames = 120,000 pixels"):
        decoded(data, max_frames=50, max_pixels=100_000)


@pytest.mark.parametrize("fmt", ["TGA", "PCX", "ICO", "PPM", "SGI"])
def test_formats_outside_the_allow_list_are_refused_by_name(fmt):
    with pytest.raises(UnsupportedImage, match=f"{fmt} images are not accepted; send JPEG, PNG/APNG"):
        decoded(encoded(Image.new("RGB", (16, 16)), fmt))


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


def test_a_jpeg_with_extra_pictures_is_the_jpeg_a_viewer_shows():
    """Pillow names a JPEG with appended pictures (stereo pairs, previews) MPO; viewers show the first."""
    image = decoded(mpo_pair())
    assert image.format == "JPEG" and image.size == (64, 48) and len(image.frames) == 1
    assert image.pixels[20, 30, 0] > 150 and image.pixels[20, 30, 1] < 60


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_file_is_refused_before_its_frames_are_decoded(name):
    """Each asks for far more than it declares or than the limits allow; each is refused with the
    status the service answers, and never makes the decoder hold more than the limit."""
    make, status = HOSTILE[name]
    with pytest.raises(PipelineError) as refused:
        decode_upload(make(), name, max_bytes=50 * 2**20, max_pixels=80_000_000, max_frames=200)
    assert int(refused.value.status) == status and str(refused.value).startswith(name)


def test_the_header_count_is_an_upper_bound_of_what_is_decoded():
    """Admission charges the pixels the headers declare; no frame of another size is ever decoded."""
    frames = [Image.new("RGB", (20, 10), (i * 40, 0, 0)) for i in range(4)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert declared_pixels(data) == 20 * 10 * 4 == sum(f.shape[0] * f.shape[1] for f in decoded(data).frames)
    assert declared_pixels(gif_growing_canvas()) == 0, "refused: decoding says why"
    with pytest.raises(InvalidImage, match="frame 2 is 9000 x 9000, the first 1 x 1"):
        decoded(tiff_growing_pages(), max_pixels=10**9)


FINDINGS = Path(__file__).resolve().parent / "fuzz_findings"


@pytest.mark.parametrize("path", sorted(FINDINGS.glob("decoder-*")), ids=lambda p: p.name)
def test_what_fuzzing_found_is_a_client_error_now(path):
    """Inputs `make fuzz` found to raise something other than our client errors (a 500), kept."""
    with pytest.raises(PipelineError) as refused:
        decoded(path.read_bytes())
    assert 400 <= int(refused.value.status) < 500
