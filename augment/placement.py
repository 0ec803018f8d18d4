"""Matched placement: put a real defect where the normal's surface looks like the surface
it sat on.

    placed = matched_rectangles(rng, image, stats, ["open", "short"], 3, library, class_index)
    # -> [Placed("open", (x1, y1, x2, y2), entry=17, transform=5, mismatch=0.01), ...]

The conductor-fraction sampler (`masks.py`) puts a rectangle where the *share* of
conductor is typical of the class, so an "open" lands on copper, but not *across* a trace
the way the real open was: half of its structure then falls on bare substrate, where
cutting copper changes nothing, and the defect comes out small, misplaced and easy to
tell from real ones (DeepPCB, learned library structure: the changed extent of synthetic
opens was 14 px against 30 px for real ones).

A paired library entry knows the surface under the real defect: its template is the
defect patch with the changed pixels put back to the other level (on a two-level surface
a changed pixel is exactly a flipped one). Here we draw an entry of the class, slide its
template's conductor map over the normal's in the 8 dihedral orientations, and choose
uniformly among the places that match best (weighted mismatch, the pixels next to the
defect weighing more: they are the trace it cuts or bridges). The rectangle is the real
box at its real size; the entry and orientation travel with it, so the structure (MIDG
`--edges library`) or the pasted pixels (copy-paste) sit on the traces they fit. The
rectangle a generator may paint in is that box grown by PAD px of untouched surface: a real
defect often reaches its annotator's box, and a rectangle's border should lie in the
surroundings (as the seam score's real reference is measured PAD px outside real boxes).
A structure that fills its whole rectangle (the edge block's own) gets no pad (`pad=0`).
Unpaired entries (no template: their surface is unknown) fall back to the sampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from .masks import conductor_integral, draw_class, grow_rect, sample_rectangles, to_gray

TRANSFORMS = 8  # the dihedral group of the square: 4 rotations, each mirrored or not
NEAR_WEIGHT = 4.0  # extra weight of the pixels within NEAR_PX of the defect's changed pixels
NEAR_PX = 3
TOLERANCE = 0.02  # places within this mismatch of the best one are equally good
ACCEPT = 0.08  # a best mismatch at or under this ends the search over entries
TRIES = 4  # entries tried per defect before the best of them is taken
PAD = 4  # the painted rectangle: the real box and this much untouched surface around it
COARSE = 4  # the search runs on the maps shrunk this much, then refines the best places at full size
CANDIDATES = 48  # coarse places refined (over all orientations), each +-COARSE px at full size

Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class Placed:
    cls: str
    rect: Rect  # where the defect may be painted (matched: the real box grown by PAD, inside the image)
    box: Rect | None = None  # matched: the real box of the entry, in its orientation, at the place found
    entry: int | None = None  # library entry whose surface the place matches (None: the sampler placed it)
    transform: int = 0  # dihedral orientation of that entry (see `dihedral`)
    mismatch: float | None = None  # weighted share of the entry's template pixels the normal disagrees with


def dihedral(a: np.ndarray, t: int) -> np.ndarray:
    """`a` (HxW or HxWxC) rotated by t mod 4 quarter turns, then mirrored left-right if t >= 4."""
    out = np.rot90(a, t % 4)
    return np.ascontiguousarray(out[:, ::-1] if t >= 4 else out)


def surface_threshold(image: np.ndarray) -> float:
    """The grey level between the normal's two sides (Otsu), as `masks.conductor_map` splits them."""
    t, _ = cv2.threshold(to_gray(image), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t)


def entry_surface(library, index: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(conductor map of the real template, changed mask), both HxW uint8 0/1 at the real box size.

    The template is not stored: on a two-level surface the defect flipped exactly its
    changed pixels, so the template's conductor map is the patch's XOR the changed mask.
    """
    patch, changed, _ = library.entry(index)
    conductor = (to_gray(patch) > threshold).astype(np.uint8) ^ changed.astype(np.uint8)
    bh, bw = (int(v) for v in library.box_hw[index])
    if conductor.shape != (bh, bw):  # stored downscaled (a box bigger than the library's crop size)
        conductor = cv2.resize(conductor, (bw, bh), interpolation=cv2.INTER_NEAREST)
        changed = cv2.resize(np.ascontiguousarray(changed, np.uint8), (bw, bh), interpolation=cv2.INTER_NEAREST)
    return conductor, np.ascontiguousarray(changed, np.uint8)


def _weights(changed: np.ndarray) -> np.ndarray:
    near = cv2.dilate(changed, np.ones((2 * NEAR_PX + 1, 2 * NEAR_PX + 1), np.uint8))
    return (1.0 + NEAR_WEIGHT * near).astype(np.float32)


@dataclass(frozen=True)
class _Kernel:
    """One oriented template and its weights, with what every place's score reuses."""
    template: np.ndarray  # T (float32)
    w: np.ndarray  # weights W
    wt: np.ndarray  # W T
    wtt: float  # sum W T^2
    w_sum: float  # sum W
    signed: np.ndarray  # W (1 - 2T): on a 0/1 surface (S^2 = S), sum W S^2 - 2 sum W T S in one correlation

    @staticmethod
    def of(template: np.ndarray, w: np.ndarray) -> "_Kernel":
        wt = w * template
        return _Kernel(template, w, wt, float((wt * template).sum()), float(w.sum()), w - 2.0 * wt)


def _mismatch(surface: np.ndarray, surface_sq: np.ndarray, k: _Kernel) -> np.ndarray:
    """sum w (S - T)^2 / sum w for every place: three correlations (S may be fractional)."""
    a = cv2.matchTemplate(surface_sq, k.w, cv2.TM_CCORR)
    b = cv2.matchTemplate(surface, k.wt, cv2.TM_CCORR)
    return np.clip((a - 2.0 * b + k.wtt) / k.w_sum, 0.0, 1.0)


def _mismatch_binary(surface: np.ndarray, k: _Kernel) -> np.ndarray:
    """`_mismatch` of a 0/1 surface with one correlation instead of two, bit for bit the same
    where every sum comes out exact: a window at most 2 COARSE px larger than the template,
    which OpenCV correlates through a double-precision DFT (the refinement's windows; a whole
    map goes through its single-precision path and rounds differently). tests/test_fast_paths.py."""
    return np.clip((cv2.matchTemplate(surface, k.signed, cv2.TM_CCORR) + k.wtt) / k.w_sum, 0.0, 1.0)


def mismatch_map(surface: np.ndarray, template: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """Weighted share of disagreeing pixels for every place of `template` on `surface`
    ((H-h+1)x(W-w+1) float32; all maps 0/1), the pixels within NEAR_PX of the changed ones
    weighing 1 + NEAR_WEIGHT."""
    s = surface.astype(np.float32)
    return _mismatch(s, s, _Kernel.of(template.astype(np.float32), _weights(changed)))


def _shrink(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over f x f blocks of a float32 map (the trailing rows and columns that make no
    whole block dropped), by OpenCV's area resize: on the maps shrunk here (0/1 surfaces and
    templates, 1/5 weights) every block sum is exact, so it is NumPy's block mean bit for bit,
    5-7 times faster (tests/test_fast_paths.py)."""
    h, w = (a.shape[0] // f) * f, (a.shape[1] // f) * f
    if h == 0 or w == 0:  # no whole block
        return np.zeros((h // f, w // f), np.float32)
    return cv2.resize(a[:h, :w], (w // f, h // f), interpolation=cv2.INTER_AREA)


def _overlaps(xs: np.ndarray, ys: np.ndarray, h: int, w: int, taken: Sequence[Rect], margin: int) -> np.ndarray:
    """Places (top-left xs, ys) of an h x w rectangle that meet a taken one grown by `margin`."""
    hit = np.zeros(xs.shape, bool)
    for px1, py1, px2, py2 in taken:
        hit |= (xs < px2 + margin) & (xs + w > px1 - margin) & (ys < py2 + margin) & (ys + h > py1 - margin)
    return hit


def best_places(surface: np.ndarray, library, index: int, threshold: float, taken: Sequence[Rect],
                margin: int, shrunk: np.ndarray | None = None
                ) -> tuple[float, list[tuple[int, np.ndarray, int]], tuple[int, int]] | None:
    """(best mismatch, [(transform, flat indices of its places within TOLERANCE of the best,
    its full map's width)], the entry's (h, w)) over the 8 orientations of one entry; None
    when the entry fits nowhere free.

    Coarse to fine: every place is scored on the maps shrunk COARSE times (block means), the
    CANDIDATES best (over all orientations) are scored exactly at full size within +-COARSE
    px. `shrunk`: the surface already shrunk COARSE times (one per image, reused). A full search of a 640 px board costs about 50 matchTemplate calls of 4 ms per
    defect; this one, 16 calls of 0.1 ms and the small exact ones.
    """
    template, changed = entry_surface(library, index, threshold)
    H, W = surface.shape
    s_full = surface if surface.dtype == np.float32 else surface.astype(np.float32)
    f = COARSE if min(template.shape) >= 2 * COARSE and min(H, W) >= 8 * COARSE else 1
    if f > 1:
        if shrunk is None:
            shrunk = _shrink(s_full, f)
        s_coarse = shrunk
    else:
        s_coarse = s_full
    s_coarse_sq = s_coarse * s_coarse
    coarse = []  # (score, transform, x, y) of coarse places
    oriented = {}
    template32 = template.astype(np.float32)
    weights = _weights(changed)  # a square dilation: turning the weights is weighting the turned mask
    for t in range(TRANSFORMS):
        tt, wt = dihedral(template32, t), dihedral(weights, t)
        h, w = tt.shape
        if h > H or w > W:
            continue
        full = _Kernel.of(tt, wt)
        oriented[t] = (full, h, w)
        m = _mismatch(s_coarse, s_coarse_sq, _Kernel.of(_shrink(tt, f), _shrink(wt, f)) if f > 1 else full)
        for px1, py1, px2, py2 in taken:  # coarse places whose rectangle surely meets a taken one
            xa, xb = max(-(-(px1 - margin - w + 1) // f) + 1, 0), max((px2 + margin) // f - 1, 0)
            ya, yb = max(-(-(py1 - margin - h + 1) // f) + 1, 0), max((py2 + margin) // f - 1, 0)
            m[ya:yb, xa:xb] = np.inf
        flat = m.ravel()
        top = np.argpartition(flat, CANDIDATES)[:CANDIDATES] if f > 1 and flat.size > CANDIDATES else np.arange(flat.size)
        top = top[np.isfinite(flat[top])]
        ys, xs = np.divmod(top, m.shape[1])
        coarse.append((flat[top], np.full(top.size, t), xs, ys))
    if not coarse:
        return None
    scores = np.concatenate([c[0] for c in coarse])
    if not scores.size:
        return None
    ts, cxs, cys = (np.concatenate([c[i] for c in coarse]) for i in (1, 2, 3))
    order = np.lexsort((cxs, cys, ts, scores))  # by score, ties in a fixed order
    keep = order[:CANDIDATES] if f > 1 else order
    exact: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # transform -> (flat indices of its free places, mismatch)
    for t in np.unique(ts[keep]):
        kernel, h, w = oriented[int(t)]
        mw, mh = W - w + 1, H - h + 1
        sel = keep[ts[keep] == t]
        if f == 1:  # the full search was exact already
            xs, ys, vals = cxs[sel], cys[sel], scores[sel]
        else:
            xs, ys, vals = _refined(s_full, kernel, cxs[sel], cys[sel], f, mw, mh)
        ok = ~_overlaps(xs, ys, h, w, taken, margin)
        flat, vals = (ys[ok] * mw + xs[ok])[::-1], vals[ok][::-1]  # a place seen twice: its last value counts
        flat, first = np.unique(flat, return_index=True)
        exact[int(t)] = (flat.astype(np.int64), vals[first])
    found = [float(vals.min()) for _, vals in exact.values() if vals.size]
    if not found:
        return None
    best = min(found)
    places = []
    for t, (flat, vals) in exact.items():
        near = flat[vals.astype(np.float64) <= best + TOLERANCE]
        if near.size:
            places.append((t, near, W - oriented[t][2] + 1))
    return best, places, template.shape


def _refined(surface: np.ndarray, kernel: _Kernel, cxs: np.ndarray, cys: np.ndarray, f: int, mw: int,
             mh: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xs, ys, mismatch) of the full-size places within +-f px of each coarse candidate
    (cxs, cys) that lie on the 0/1 `surface`, each bit for bit `_mismatch_binary` of the
    candidate's own small window (a place two candidates share may come twice: the later
    value is the one-window-each refinement's last).

    Candidates whose places overlap or touch share one correlation over their common window
    when it is smaller than their windows together (about a third of the places were refined
    twice). That changes no value where every sum is exact: the correlation of a 0/1 surface
    with W (1 - 2T) is an integer below 2^24, which OpenCV's own correlation (a double-precision
    DFT) gives exactly whatever the window, up to a ~1e-14 residue at an exact 0 that adding
    sum W T^2 >= 1 rounds away. OpenCV takes its single-precision IPP path instead for a
    window over 4 times the template's area: off for the shared windows, and a template whose
    own windows already took it (8 x 8 px), or one without conductor (sum W T^2 = 0), keeps
    one window per candidate. tests/test_fast_paths.py."""
    h, w = kernel.template.shape
    x0s, x1s = np.maximum(cxs * f - f, 0), np.minimum(cxs * f + f, mw - 1)  # each candidate's places
    y0s, y1s = np.maximum(cys * f - f, 0), np.minimum(cys * f + f, mh - 1)
    exact = kernel.wtt > 0 and 4 * h * w > (h + 2 * f) * (w + 2 * f)
    groups = _touching_groups(x0s, y0s, x1s, y1s) if exact else [np.array([i]) for i in range(len(cxs))]
    xs, ys, vals = [], [], []
    for members in groups:
        bx0, by0, bx1, by1 = x0s[members].min(), y0s[members].min(), x1s[members].max(), y1s[members].max()
        apart = int(((x1s[members] - x0s[members] + w) * (y1s[members] - y0s[members] + h)).sum())
        if len(members) > 1 and (bx1 - bx0 + w) * (by1 - by0 + h) < apart:
            use_ipp = cv2.ipp.useIPP()
            cv2.ipp.setUseIPP(False)
            try:
                m = _mismatch_binary(surface[by0:by1 + h, bx0:bx1 + w], kernel)
            finally:
                cv2.ipp.setUseIPP(use_ipp)
            wanted = np.zeros(m.shape, bool)
            for i in members.tolist():
                wanted[y0s[i] - by0:y1s[i] - by0 + 1, x0s[i] - bx0:x1s[i] - bx0 + 1] = True
            gy, gx = np.nonzero(wanted)
            xs.append(gx + bx0), ys.append(gy + by0), vals.append(m[gy, gx])
            continue
        for i in members.tolist():
            m = _mismatch_binary(surface[y0s[i]:y1s[i] + h, x0s[i]:x1s[i] + w], kernel)
            gy, gx = np.divmod(np.arange(m.size), m.shape[1])
            xs.append(gx + x0s[i]), ys.append(gy + y0s[i]), vals.append(m.ravel())
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(vals)


def _touching_groups(x0s: np.ndarray, y0s: np.ndarray, x1s: np.ndarray, y1s: np.ndarray) -> list[np.ndarray]:
    """Indices of the boxes (inclusive corners) that overlap or touch, directly or through
    others, one array per group."""
    meets = ((x0s[:, None] <= x1s[None, :] + 1) & (x0s[None, :] <= x1s[:, None] + 1)
             & (y0s[:, None] <= y1s[None, :] + 1) & (y0s[None, :] <= y1s[:, None] + 1))
    label = np.arange(len(x0s))
    while True:  # every box takes the smallest label among the boxes it meets, until none changes
        spread = np.where(meets, label[None, :], len(label)).min(axis=1)
        if np.array_equal(spread, label):
            break
        label = spread
    return [np.flatnonzero(label == g) for g in np.unique(label)]


def _draw_place(rng: np.random.Generator, places: list[tuple[int, np.ndarray, int]]) -> tuple[int, int, int]:
    """(transform, x, y): one of the near-best places, uniformly."""
    k = int(rng.integers(sum(len(flat) for _, flat, _ in places)))
    for t, flat, width in places:
        if k < len(flat):
            y, x = divmod(int(flat[k]), width)
            return t, x, y
        k -= len(flat)
    raise AssertionError("unreachable: k is below the total count")


def matched_rectangles(rng: np.random.Generator, image: np.ndarray, stats: dict[str, Any], classes: Sequence[str],
                       n: int, library, class_index: dict[str, int], margin: int = 4,
                       avoid: Sequence[Rect] = (), pad: int = PAD,
                       class_weights: Sequence[float] | None = None) -> list[Placed]:
    """Up to `n` placed defects on `image`, classes drawn from `classes` (uniformly, or by `class_weights`).

    Each: up to TRIES entries of the class (paired ones only), the first whose best
    mismatch is at most ACCEPT, else the best of them; then one place drawn uniformly
    from its near-best ones. A class without paired entries, or whose entries fit nowhere
    (an image smaller than the real boxes), is placed by the sampler.
    Fewer come back when nothing fits between the rectangles already placed.
    """
    threshold = surface_threshold(image)
    surface = (to_gray(image) > threshold).astype(np.float32)
    shrunk = _shrink(surface, COARSE)
    integral = None  # the sampler's, made when a defect first falls back to it
    taken = list(avoid)
    placed: list[Placed] = []
    for _ in range(n):
        cls = draw_class(rng, classes, class_weights)
        of_class = library.indices_of(class_index[cls])
        pool = of_class[np.asarray(library.paired)[of_class] != 0].tolist()  # the paired ones, in order
        chosen = None
        for _try in range(TRIES if pool else 0):
            index = pool[int(rng.integers(len(pool)))]
            found = best_places(surface, library, index, threshold, taken, margin + pad, shrunk)
            if found is not None and (chosen is None or found[0] < chosen[1][0]):
                chosen = (index, found)
            if chosen is not None and chosen[1][0] <= ACCEPT:
                break
        if chosen is None:  # no paired entry of the class, or none fits the image: the sampler places it
            integral = conductor_integral(image) if integral is None else integral
            got = sample_rectangles(rng, image, stats, [cls], 1, margin=margin, integral=integral, avoid=taken)
            if got:
                placed.append(Placed(cls, tuple(int(v) for v in got[0][1])))
                taken.append(placed[-1].rect)
            continue
        index, (mismatch, places, (h, w)) = chosen
        t, x, y = _draw_place(rng, places)
        th, tw = (w, h) if t % 2 else (h, w)  # a quarter turn swaps the sides
        H, W = surface.shape
        box = (x, y, x + tw, y + th)
        placed.append(Placed(cls, grow_rect(box, pad, W, H), box, index, t, round(mismatch, 4)))
        taken.append(placed[-1].rect)
    return placed
