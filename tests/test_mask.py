"""Censoring (SPEC section 1, steps 5 to 9): what is hidden, what is kept byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.imaging.mask import KernelSizes, apply_mask, censor_image, full_size_mask, keep_mask


def _original(height=480, width=640, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _square_map(lo=60, hi=160, size=224):
    probabilities = np.zeros((size, size), np.float32)
    probabilities[lo:hi, lo:hi] = 0.9
    return probabilities


def test_binarising_censors_pixels_strictly_above_the_threshold():
    probabilities = np.array([[0.2, 0.5], [0.51, 0.99]], np.float32)
    assert keep_mask(probabilities, 0.5).tolist() == [[1, 1], [0, 0]]


def test_censored_image_has_the_original_size_and_kept_pixels_are_unchanged():
    original = _original()
    result = censor_image(original, _square_map(), threshold=0.5)
    assert result.image.shape == original.shape and result.keep.shape == original.shape[:2]
    kept = result.keep == 1
    assert np.array_equal(result.image[kept], original[kept])
    assert not result.image[~kept].any(), "black style: censored pixels are zero"


def test_the_censored_region_is_where_the_segmenter_saw_gore():
    result = censor_image(_original(448, 448), _square_map(), threshold=0.5)
    # 100 x 100 model pixels, 2x upsampled: a 200 x 200 block from (120, 120), edges rounded a little.
    assert result.keep[130:310, 130:310].max() == 0
    assert result.keep[:100].min() == 1 and result.keep[340:].min() == 1
    assert result.censored_fraction == pytest.approx(200 * 200 / 448**2, rel=0.03)


def test_nothing_is_censored_when_no_pixel_passes_the_threshold():
    original = _original()
    result = censor_image(original, np.full((224, 224), 0.4, np.float32), threshold=0.5)
    assert np.array_equal(result.image, original) and result.censored_fraction == 0.0


def test_isolated_specks_are_removed_and_small_holes_filled():
    probabilities = _square_map(40, 180)
    probabilities[100, 100] = 0.0  # One-model-pixel hole in the gore region.
    probabilities[10, 200] = 0.95  # One-model-pixel speck far away.
    keep = full_size_mask(keep_mask(probabilities, 0.5), 896, 896)
    assert keep[398:406, 398:406].max() == 0, "a one-pixel hole inside gore stays censored"
    assert keep[36:48, 796:808].min() == 1, "a one-pixel speck is noise, not gore"


def test_the_mask_is_smoothed_not_boxy():
    """Nearest-neighbour upsampling makes stairs; the median filter rounds a diagonal edge."""
    probabilities = np.tril(np.ones((224, 224), np.float32))
    keep = full_size_mask(keep_mask(probabilities, 0.5), 2240, 2240)
    raw = np.kron(keep_mask(probabilities, 0.5), np.ones((10, 10), np.uint8))
    assert (keep != raw).sum() > 0
    assert abs(int(keep.sum()) - int(raw.sum())) < 0.01 * raw.size, "smoothing moves edges, not areas"


@pytest.mark.parametrize(
    ("height", "width", "median", "morphology"), [(224, 224, 3, 3), (480, 640, 3, 7), (3000, 4000, 19, 37)]
)
def test_kernel_sizes_scale_with_the_image(height, width, median, morphology):
    assert KernelSizes.for_image(height, width) == KernelSizes(median, morphology)


@pytest.mark.parametrize("style", ["blur", "pixelate"])
def test_blur_and_pixelate_hide_the_region_and_keep_the_rest(style):
    original = _original()
    keep = np.ones(original.shape[:2], np.uint8)
    keep[100:300, 200:400] = 0
    censored = apply_mask(original, keep, style)
    assert np.array_equal(censored[keep == 1], original[keep == 1])
    region, hidden = original[100:300, 200:400].astype(float), censored[100:300, 200:400].astype(float)
    assert np.abs(region - hidden).mean() > 40, "noise-like detail must be gone"
    assert hidden.std() < region.std() / 3


def test_unknown_style_is_rejected():
    with pytest.raises(ValueError, match="style"):
        apply_mask(_original(), np.ones((480, 640), np.uint8), "sepia")
