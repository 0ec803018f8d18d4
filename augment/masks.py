"""The rectangle sampler: where, how big and of which class each new defect is.

    rects = sample_rectangles(np.random.default_rng([seed, k]), image, stats, ["open", "short"], n=3)
    # -> [("short", (x1, y1, x2, y2)), ...]   pixels, x2/y2 exclusive

Sizes come from the class' real box sizes (`stats` from `midg.augment.library.fit_defect_stats`),
with a small log-normal jitter. Places are content-aware, and what "content" a class likes
is learned, not hand-coded: for every real box we measured the fraction of conductor pixels
under it (conductor = Otsu threshold of the grey image, the bright side; on DeepPCB the
copper is the dark side, which changes nothing, since every class' placement is learned
against the same map), and kept a histogram per class. Here we draw many candidate places, measure the same fraction under
each, and pick one with weight p_class(f) / q(f), where q is the histogram of the candidates
themselves (sampling-importance-resampling): the chosen places then follow the class'
distribution whatever the board looks like. Rectangles stay inside the image and never
overlap (with a margin). The same rng gives the same rectangles.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

FRACTION_BINS = 10  # histogram bins of the conductor fraction in [0, 1]
SIZE_JITTER = 0.1  # sigma of the log-normal factor on each side of a drawn real size
MIN_SIDE = 2  # a rectangle side never gets smaller than this (pixels)

Rect = tuple[int, int, int, int]


def to_gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def conductor_map(image: np.ndarray) -> np.ndarray:
    """HxW uint8, 1 on conductor: the bright side of the image's Otsu threshold."""
    _, m = cv2.threshold(to_gray(image), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return m


def conductor_integral(image: np.ndarray) -> np.ndarray:
    """(H+1)x(W+1) summed-area table of the conductor map: O(1) fraction per rectangle."""
    return cv2.integral(conductor_map(image), sdepth=cv2.CV_64F)


def conductor_fraction(integral: np.ndarray, x1, y1, x2, y2) -> np.ndarray:
    """Fraction of conductor pixels under rectangles (scalars or arrays of corners)."""
    s = integral[y2, x2] - integral[y1, x2] - integral[y2, x1] + integral[y1, x1]
    area = (np.asarray(x2) - x1) * (np.asarray(y2) - y1)
    return s / np.maximum(area, 1)


def fraction_histogram(fractions: Sequence[float], smoothing: float = 0.5) -> list[float]:
    """Smoothed, normalised histogram: no bin is impossible, so rare places stay possible."""
    counts, _ = np.histogram(np.clip(np.asarray(fractions, float), 0, 1), bins=FRACTION_BINS, range=(0.0, 1.0))
    p = counts + smoothing
    return (p / p.sum()).tolist()


def _bins(fractions: np.ndarray) -> np.ndarray:
    return np.minimum((fractions * FRACTION_BINS).astype(int), FRACTION_BINS - 1)


def class_stats(stats: dict[str, Any], cls: str) -> dict[str, Any]:
    """The class' sizes and fraction histogram; a class with no real box borrows all sizes
    and a flat histogram, so a sampler never fails on a rare class."""
    per = stats["per_class"].get(cls)
    if per and per.get("sizes"):
        return per
    pooled = [s for c in stats["per_class"].values() for s in c.get("sizes", [])]
    if not pooled:
        raise ValueError("defect stats hold no box sizes at all")
    return {"sizes": pooled, "conductor_hist": [1.0 / FRACTION_BINS] * FRACTION_BINS}


def draw_class(rng: np.random.Generator, classes: Sequence[str], weights: Sequence[float] | None = None) -> str:
    """One class: uniform (one integer draw, as always), or by `weights` (one uniform draw)."""
    if weights is None or len(classes) == 1:
        return classes[int(rng.integers(len(classes)))]
    cdf = np.cumsum(np.asarray(weights, float))
    return classes[int(min(np.searchsorted(cdf / cdf[-1], rng.random(), side="right"), len(classes) - 1))]


def sample_rectangles(rng: np.random.Generator, image: np.ndarray, stats: dict[str, Any], classes: Sequence[str],
                      n: int, margin: int = 4, candidates: int = 64,
                      integral: np.ndarray | None = None, avoid: Sequence[Rect] = (),
                      class_weights: Sequence[float] | None = None, pad: int = 0) -> list[tuple[str, Rect]]:
    """Up to `n` (class, rect) pairs on `image`, classes drawn from `classes` (uniformly, or by
    `class_weights`: the generation's class mix).

    Fewer come back when no candidate place fits between the rectangles already placed.
    Every iteration draws the same amount of randomness, so the stream (and therefore
    whatever a caller draws after) depends only on the rng, never on the image content.
    """
    integral = conductor_integral(image) if integral is None else integral

    def weigh(cs, xs, ys, rw, rh, ok):
        b = _bins(conductor_fraction(integral, xs, ys, xs + rw, ys + rh))
        p_class = np.asarray(cs["conductor_hist"], float)[b]
        q_counts = np.bincount(b[ok], minlength=FRACTION_BINS) + 0.5
        return p_class / q_counts[b]

    return resample_rectangles(rng, image.shape[:2], stats, classes, n, weigh, margin, candidates, avoid,
                               class_weights, pad)


def grow_rect(rect: Rect, pad: int, width: int, height: int) -> Rect:
    """`rect` grown by `pad` px on every side, inside a `width` x `height` image."""
    x1, y1, x2, y2 = rect
    return max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, width), min(y2 + pad, height)


def resample_rectangles(rng: np.random.Generator, image_hw: tuple[int, int], stats: dict[str, Any],
                        classes: Sequence[str], n: int, weigh, margin: int = 4, candidates: int = 64,
                        avoid: Sequence[Rect] = (), class_weights: Sequence[float] | None = None,
                        pad: int = 0) -> list[tuple[str, Rect]]:
    """The sampler's loop: per defect a class, a real size (jittered) and `candidates`
    uniform places, one picked with weight `weigh(class_stats, xs, ys, rw, rh, ok)` among
    those clear of the rectangles already placed (sampling-importance-resampling).

    `pad`: the caller grows each rectangle by `pad` px of surface on every side (inside the
    image), the ring a real defect drawn in it keeps untouched, as matched placement's
    rectangles do: each is kept `margin + pad` from the others (held grown). The draws,
    and the places drawn, are the same for any pad."""
    h, w = image_hw
    placed: list[tuple[str, Rect]] = []
    taken = list(avoid)  # rectangles already on the image (a redraw keeps clear of the others)
    for _ in range(n):
        cls = draw_class(rng, classes, class_weights)
        cs = class_stats(stats, cls)
        sizes = cs["sizes"]
        bw, bh = sizes[int(rng.integers(len(sizes)))]
        jitter = np.exp(rng.normal(0.0, SIZE_JITTER, 2))
        rw = int(np.clip(round(bw * jitter[0]), MIN_SIDE, w))
        rh = int(np.clip(round(bh * jitter[1]), MIN_SIDE, h))
        xs = rng.integers(0, w - rw + 1, candidates)
        ys = rng.integers(0, h - rh + 1, candidates)
        pick = rng.random()  # one uniform draw decides among the weighted candidates
        ok = np.ones(candidates, bool)
        for px1, py1, px2, py2 in taken:
            # overlap with the margin: the grown rectangles intersect
            gap = margin + pad
            ok &= ~((xs < px2 + gap) & (xs + rw > px1 - gap) & (ys < py2 + gap) & (ys + rh > py1 - gap))
        if not ok.any():
            continue
        weights = np.where(ok, weigh(cs, xs, ys, rw, rh, ok), 0.0)
        cdf = np.cumsum(weights / weights.sum())
        i = int(min(np.searchsorted(cdf, pick, side="right"), candidates - 1))
        while not ok[i]:  # rounding at the top of the cdf: step back to a valid candidate
            i -= 1
        x, y = int(xs[i]), int(ys[i])
        placed.append((cls, (x, y, x + rw, y + rh)))
        taken.append(grow_rect((x, y, x + rw, y + rh), pad, w, h))
    return placed
