"""Generation's cheaper paths give the values of the plain ones bit for bit (same seed, same
bytes): matched placement's one-correlation score on a 0/1 surface, and the surface levels
read off a histogram instead of sorted pixels."""

from __future__ import annotations

import numpy as np
import pytest

from midg.augment.levels import surface_levels
from midg.augment.placement import COARSE, _Kernel, _mismatch, _mismatch_binary, _weights


def _levels_by_sorting(image: np.ndarray, min_gap: float = 60.0, max_spread: float = 0.08):
    """surface_levels as first written: np.median over the pixels of each side."""
    import cv2

    g = image if image.ndim == 2 else image.mean(axis=2)
    g8 = np.clip(np.rint(g), 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(g8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = g8 > t
    if bright.all() or not bright.any():
        return None
    lo, hi = float(np.median(g8[~bright])), float(np.median(g8[bright]))
    t = (lo + hi) / 2
    bright = g8 > t
    gap = hi - lo
    if gap < min_gap:
        return None
    far = np.where(bright, np.abs(g8 - hi), np.abs(g8 - lo)) > gap / 4
    if far.mean() > max_spread:
        return None
    flat = image.reshape(-1, 1 if image.ndim == 2 else image.shape[2])
    values = (np.median(flat[~bright.reshape(-1)], axis=0), np.median(flat[bright.reshape(-1)], axis=0))
    return float(t), values[0].astype(np.uint8), values[1].astype(np.uint8)


def _two_level_images(rng: np.random.Generator, n: int):
    for i in range(n):
        h, w = (int(v) for v in rng.integers(2, 50, 2))
        dark, bright = (int(v) for v in rng.integers(0, 256, 2))
        img = np.where(rng.random((h, w)) < rng.random(), dark, bright) + rng.integers(-20, 21, (h, w)) * (i % 3)
        img = np.clip(img, 0, 255).astype(np.uint8)
        yield img if i % 4 else np.stack([img, 255 - img, img // 2], axis=2)


def test_surface_levels_equal_the_sorted_medians_bit_for_bit():
    rng = np.random.default_rng(0)
    seen = 0
    for img in _two_level_images(rng, 300):  # odd and even pixel counts on each side, grey and colour
        got, want = surface_levels(img), _levels_by_sorting(img)
        if want is None:
            assert got is None
            continue
        seen += 1
        assert got is not None and got.threshold == want[0]
        for have, expect in zip(got.values, want[1:]):
            assert have.dtype == expect.dtype and have.shape == expect.shape and np.array_equal(have, expect)
    assert seen > 50  # the comparison ran on many two-level surfaces, not only on rejected ones


def test_an_off_by_one_median_would_be_caught():
    """The check above can fail: an image whose even count puts the middle two on two levels."""
    img = np.array([[10, 10, 12, 12, 200, 200]], np.uint8)
    assert surface_levels(img).values[0][0] == 11  # mean of the middle two dark pixels, 10 and 12


@pytest.mark.parametrize("side", [8, 9, 18, 35, 90, 173])  # DeepPCB boxes: 18-173 px; 8 px is OpenCV's other path
def test_one_correlation_scores_a_binary_surface_exactly_as_two(side):
    rng = np.random.default_rng(side)
    surface = (rng.random((side + 40, side + 30)) < 0.5).astype(np.float32)
    template = (rng.random((side, side + 3)) < 0.5).astype(np.float32)
    changed = np.zeros(template.shape, np.uint8)
    changed[side // 2, side // 2] = 1
    k = _Kernel.of(template, _weights(changed))
    for dy in range(0, 2 * COARSE + 1):  # the refinement's windows: up to 2 COARSE px past the template
        for dx in (0, 1, 5, 2 * COARSE):
            sub = surface[:side + dy, :side + 3 + dx]
            assert np.array_equal(_mismatch_binary(sub, k).view(np.uint32), _mismatch(sub, sub, k).view(np.uint32))
    # a whole map goes through OpenCV's single-precision path, where the two ways round apart:
    # the shortcut is for the refinement's small windows only
    whole_one, whole_two = _mismatch_binary(surface, k), _mismatch(surface, surface, k)
    assert np.allclose(whole_one, whole_two, atol=1e-6)


def test_one_correlation_is_only_for_binary_surfaces():
    """On a fractional surface (the coarse search's block means) S^2 != S: the shortcut
    would be wrong there, which is why the coarse search keeps the two correlations."""
    rng = np.random.default_rng(1)
    surface = rng.random((30, 30)).astype(np.float32)
    template = (rng.random((9, 9)) < 0.5).astype(np.float32)
    k = _Kernel.of(template, _weights(np.zeros(template.shape, np.uint8)))
    assert not np.allclose(_mismatch_binary(surface, k), _mismatch(surface, surface * surface, k))
