"""A two-level surface's own levels (bare substrate and conductor, as DeepPCB's binarised
scans): found once per image when its plan is made, and used when painted pixels go back,
so a painted pixel is one of the surface's own values, never a new grey."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SurfaceLevels:
    """A two-level surface (bare substrate and conductor, as DeepPCB's binarised scans):
    the grey threshold between the levels and each level's typical value."""
    threshold: float
    values: tuple[np.ndarray, np.ndarray]  # [dark, bright] pixel values (C,)


def surface_levels(image: np.ndarray, min_gap: float = 60.0, max_spread: float = 0.08) -> SurfaceLevels | None:
    """The image's two levels when it has just two (Otsu split, both sides tight around
    their median: under `max_spread` of the pixels farther than a quarter of the gap from
    it); None for a textured or many-level surface.

    The statistics are read off the grey levels' 256-bin histogram (one pass over the
    pixels instead of a sort per median), with exactly np.median's and np.mean's values."""
    g = image if image.ndim == 2 else image.mean(axis=2)
    g8 = g if g.dtype == np.uint8 else np.clip(np.rint(g), 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(g8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    grey = np.arange(256)
    hist = np.bincount(g8.ravel(), minlength=256)
    if not hist[grey <= t].any() or not hist[grey > t].any():
        return None
    lo, hi = _median_u8(np.where(grey > t, 0, hist)), _median_u8(np.where(grey > t, hist, 0))
    # Otsu's threshold is any value of the empty gap between two clean levels: use its middle
    t = (lo + hi) / 2
    bright = grey > t  # per grey level
    gap = hi - lo
    if gap < min_gap:
        return None
    far = np.where(bright, np.abs(grey - hi), np.abs(grey - lo)) > gap / 4
    if int(hist[far].sum()) / g8.size > max_spread:
        return None
    if g8 is image:  # a grey uint8 image: its histogram is all there is to know
        values = (np.array([_median_u8(np.where(bright, 0, hist))]), np.array([_median_u8(np.where(bright, hist, 0))]))
    else:
        flat = image.reshape(-1, 1 if image.ndim == 2 else image.shape[2])
        side = bright[g8].reshape(-1)  # each pixel's level
        values = (np.median(flat[~side], axis=0), np.median(flat[side], axis=0))
    return SurfaceLevels(float(t), (values[0].astype(np.uint8), values[1].astype(np.uint8)))


def _median_u8(hist: np.ndarray) -> float:
    """np.median of the grey levels that `hist` counts: the middle one, or the mean of the
    middle two for an even count."""
    n, cum = int(hist.sum()), np.cumsum(hist)
    low = int(np.searchsorted(cum, (n - 1) // 2, side="right"))  # the value at sorted index i: first cum > i
    high = int(np.searchsorted(cum, n // 2, side="right"))
    return (low + high) / 2


def snap_to_levels(normal_win: np.ndarray, painted_win: np.ndarray, local: tuple[int, int, int, int],
                   levels: SurfaceLevels) -> np.ndarray:
    """The rectangle (window coordinates `local`) of a two-level surface after painting:
    a pixel the painting moved to the other level takes the value of the nearest normal
    pixel of that level (the surface's own texture), every other pixel stays the normal's."""
    def level(img):
        g = img if img.ndim == 2 else img.mean(axis=2)
        return g > levels.threshold

    lx1, ly1, lx2, ly2 = local
    before, after = level(normal_win), level(painted_win[ly1:ly2, lx1:lx2])
    out = normal_win[ly1:ly2, lx1:lx2].copy()
    flip = before[ly1:ly2, lx1:lx2] != after
    for target in (False, True):
        todo = flip & (after == target)
        if not todo.any():
            continue
        source = before == target
        if source.any():
            # nearest pixel of the target level in the window (labels index its pixels row-major)
            _, labels = cv2.distanceTransformWithLabels((~source).astype(np.uint8), cv2.DIST_L2, 5,
                                                        labelType=cv2.DIST_LABEL_PIXEL)
            ys, xs = np.nonzero(source)
            lab = labels[ly1:ly2, lx1:lx2][todo] - 1
            out[todo] = normal_win[ys[lab], xs[lab]]
        else:
            out[todo] = levels.values[int(target)] if out.ndim == 3 else levels.values[int(target)][0]
    return out
