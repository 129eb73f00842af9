"""Censoring (SPEC section 1, steps 5 to 9): what is hidden, what is kept byte for byte, and
that the cleaning removes the same model-pixel sizes at every aspect ratio (fail closed)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.imaging.mask import apply_mask, censor_image, full_size_mask, keep_mask


def _original(height=480, width=640, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _square_map(lo=60, hi=160, size=224):
    probabilities = np.zeros((size, size), np.float32)
    probabilities[lo:hi, lo:hi] = 0.9
    return probabilities


def visible_share(truth: np.ndarray, keep: np.ndarray) -> float:
    """The leak: the share of true gore pixels left visible."""
    return float(keep[truth].mean())


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
    # 100 x 100 model pixels, 2x upsampled: a 200 x 200 block from (120, 120), corners rounded a little.
    assert result.keep[124:316, 124:316].max() == 0
    assert result.keep[:110].min() == 1 and result.keep[330:].min() == 1
    assert result.censored_fraction == pytest.approx(200 * 200 / 448**2, rel=0.03)


def test_nothing_is_censored_when_no_pixel_passes_the_threshold():
    original = _original()
    result = censor_image(original, np.full((224, 224), 0.4, np.float32), threshold=0.5, margin=2)
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


@pytest.mark.parametrize(("height", "width"), [(1000, 4000), (4000, 1000), (1080, 1920), (600, 600)])
def test_thin_bands_are_censored_at_every_aspect_ratio(height, width):
    """A band 3 model pixels across survives the cleaning whatever the aspect ratio. Sized from the
    longer side, the thesis' kernels wiped such bands out on elongated images (100% left visible)."""
    probabilities = np.zeros((224, 224), np.float32)
    probabilities[100:103, 20:200] = 0.9  # Horizontal band, 3 model pixels tall.
    probabilities[20:200, 150:153] = 0.9  # Vertical band, 3 model pixels wide.
    truth = cv2.resize((probabilities > 0.5).astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) == 1
    keep = full_size_mask(keep_mask(probabilities, 0.5), height, width)
    assert visible_share(truth, keep) < 0.02


def test_the_margin_widens_the_censored_region_by_model_pixels():
    probabilities = _square_map(100, 124)
    for height, width in ((448, 448), (448, 1792)):
        bare = full_size_mask(keep_mask(probabilities, 0.5), height, width, margin=0)
        wide = full_size_mask(keep_mask(probabilities, 0.5), height, width, margin=2)
        assert ((wide == 0) >= (bare == 0)).all(), "a margin only ever adds censored pixels"
        row, col = height * 112 // 224, (width * 124) // 224  # Just right of the square's edge.
        step = width // 224
        assert bare[row, col + step] == 1 and wide[row, col + step] == 0, "one model pixel out is censored"
        assert wide[row, col + 3 * step] == 1, "three model pixels out is not"


def _wound(size: int, seed: int = 3) -> np.ndarray:
    """A synthetic wound's exact mask at full size: an irregular blob with thin drips."""
    from pipeline.data.synthetic import draw_wound

    canvas = np.zeros((size, size, 3), np.uint8)
    return draw_wound(np.random.default_rng(seed), canvas).astype(bool)


def test_a_margin_of_one_model_pixel_covers_the_rim_and_the_drips():
    """Even a perfect segmenter sees the wound at 224 x 224: its rim and thin drips fall between
    model pixels, and the noise cleaning takes what is thinner than two. With the thesis'
    cleaning (margin 0) over 1% stays visible; one model pixel of margin, applied before the
    cleaning, hides all but a few pixels of splatter."""
    truth = _wound(896)
    seen = cv2.resize(truth.astype(np.float32), (224, 224), interpolation=cv2.INTER_AREA)  # A perfect segmenter.
    leaks = {m: visible_share(truth, full_size_mask(keep_mask(seen, 0.5), 896, 896, margin=m)) for m in (0, 1)}
    assert leaks[0] > 0.01, "the thesis' cleaning leaves rim and drips visible"
    assert leaks[1] < 0.002


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
