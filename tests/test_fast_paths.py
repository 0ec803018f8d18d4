"""Generation's cheaper paths give the values of the plain ones bit for bit (same seed, same
bytes): matched placement's one-correlation score on a 0/1 surface, its refinement sharing
one correlation between neighbouring candidates, its block means by OpenCV's area resize,
its weights turned instead of recomputed per orientation, and the surface levels read off a
histogram instead of sorted pixels."""

from __future__ import annotations

import numpy as np
import pytest

from midg.augment.levels import surface_levels
from midg.augment.placement import (COARSE, TRANSFORMS, _Kernel, _mismatch, _mismatch_binary, _refined,
                                    _shrink, _weights, dihedral)


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


def _refined_window_by_window(surface, kernel, cxs, cys, f, mw, mh) -> dict:
    """The refinement as first written: one window per coarse candidate, OpenCV's own path
    choice; {(y, x): float32 bits}, a place seen twice with its last value (as best_places keeps it)."""
    h, w = kernel.template.shape
    got = {}
    for cx, cy in zip(cxs.tolist(), cys.tolist()):
        x0, y0 = max(cx * f - f, 0), max(cy * f - f, 0)
        x1, y1 = min(cx * f + f, mw - 1), min(cy * f + f, mh - 1)
        m = _mismatch_binary(surface[y0:y1 + h, x0:x1 + w], kernel)
        for (dy, dx), v in np.ndenumerate(m.view(np.uint32)):
            got[(y0 + dy, x0 + dx)] = int(v)
    return got


@pytest.mark.parametrize("case", range(24))
def test_shared_refinement_windows_give_each_windows_values(case):
    """Neighbouring candidates scored through one window (OpenCV's IPP off) against one
    window each: the same places, the same bits. Templates 8-173 px (8 x 8: OpenCV takes IPP
    for their own windows, whose values then depend on the window: kept one by one),
    candidates in clusters and at the borders, and templates without conductor."""
    import cv2

    rng = np.random.default_rng(case)
    f = COARSE
    side = (8, 9, 12, 18, 35, 60, 90, 173)[case % 8]
    h, w = side, side if side == 8 else max(2 * f, side + int(rng.integers(-4, 5)))
    H, W = h + int(rng.integers(8, 200)), w + int(rng.integers(8, 200))
    surface = (rng.random((H, W)) < 0.5).astype(np.float32)
    surface[:H // 2, :W // 2] = 0  # bare substrate: exact zero sums, where OpenCV may keep a DFT residue
    template = np.zeros((h, w), np.float32) if case % 6 == 5 else (rng.random((h, w)) < 0.5).astype(np.float32)
    changed = np.zeros((h, w), np.uint8)
    changed[h // 2, w // 3] = 1
    kernel = _Kernel.of(template, _weights(changed))
    mw, mh = W - w + 1, H - h + 1
    ccw, cch = (W // f) - (w // f) + 1, (H // f) - (h // f) + 1  # the coarse map's size
    centres = np.concatenate([rng.integers(0, [cch, ccw], (2, 2)), [[0, 0]]])  # one cluster on the substrate
    near = centres[rng.integers(0, 3, 40)] + rng.integers(-2, 3, (40, 2))  # clusters of neighbours
    cands = np.unique(np.clip(np.concatenate([near, [[0, 0], [cch - 1, ccw - 1], [0, ccw - 1]]]), 0,
                              [cch - 1, ccw - 1]), axis=0)[:48]
    cys, cxs = cands[:, 0], cands[:, 1]
    want = _refined_window_by_window(surface, kernel, cxs, cys, f, mw, mh)
    ipp_before = cv2.ipp.useIPP()
    xs, ys, vals = _refined(surface, kernel, cxs, cys, f, mw, mh)
    assert cv2.ipp.useIPP() == ipp_before  # the switch is put back
    got = {}
    for y, x, v in zip(ys.tolist(), xs.tolist(), vals.view(np.uint32).tolist()):
        got[(y, x)] = v
    assert got == want


@pytest.mark.parametrize("values", [(0.0, 1.0), (1.0, 5.0)])  # surfaces and templates; weights
def test_area_resize_is_the_block_mean_bit_for_bit(values):
    rng = np.random.default_rng(int(values[1]))
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 200, 2))
        a = np.where(rng.random((h, w)) < rng.random(), *values).astype(np.float32)
        hh, ww = (h // COARSE) * COARSE, (w // COARSE) * COARSE
        mean = a[:hh, :ww].reshape(hh // COARSE, COARSE, ww // COARSE, COARSE).mean(axis=(1, 3), dtype=np.float32)
        got = _shrink(a, COARSE)
        assert got.dtype == np.float32 and got.shape == mean.shape
        assert np.array_equal(got.view(np.uint32), mean.view(np.uint32))


def test_turned_weights_are_the_weights_of_the_turned_mask():
    rng = np.random.default_rng(3)
    for _ in range(50):
        changed = (rng.random(tuple(int(v) for v in rng.integers(1, 60, 2))) < rng.random() * 0.2).astype(np.uint8)
        for t in range(TRANSFORMS):
            assert np.array_equal(dihedral(_weights(changed), t), _weights(dihedral(changed, t)))
