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

from .masks import conductor_integral, sample_rectangles, to_gray

TRANSFORMS = 8  # the dihedral group of the square: 4 rotations, each mirrored or not
NEAR_WEIGHT = 4.0  # extra weight of the pixels within NEAR_PX of the defect's changed pixels
NEAR_PX = 3
TOLERANCE = 0.02  # places within this mismatch of the best one are equally good
ACCEPT = 0.08  # a best mismatch at or under this ends the search over entries
TRIES = 4  # entries tried per defect before the best of them is taken
PAD = 4  # the painted rectangle: the real box and this much untouched surface around it

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


def mismatch_map(surface: np.ndarray, template: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """Weighted share of disagreeing pixels for every place of `template` on `surface`
    ((H-h+1)x(W-w+1) float32; all maps 0/1). sum w (S - T)^2 = sum w S - 2 sum w T S + sum w T
    for 0/1 maps: two correlations."""
    near = cv2.dilate(changed, np.ones((2 * NEAR_PX + 1, 2 * NEAR_PX + 1), np.uint8))
    w = (1.0 + NEAR_WEIGHT * near).astype(np.float32)
    s = surface.astype(np.float32)
    wt = w * template.astype(np.float32)
    a = cv2.matchTemplate(s, w, cv2.TM_CCORR)
    b = cv2.matchTemplate(s, wt, cv2.TM_CCORR)
    return np.clip((a - 2.0 * b + float(wt.sum())) / float(w.sum()), 0.0, 1.0)


def _free(scores: np.ndarray, h: int, w: int, taken: Sequence[Rect], margin: int) -> np.ndarray:
    """`scores` with +inf at every place whose rectangle (grown by `margin`) meets a taken one."""
    out = scores.copy()
    for px1, py1, px2, py2 in taken:
        xa, xb = max(px1 - margin - w + 1, 0), max(px2 + margin, 0)
        ya, yb = max(py1 - margin - h + 1, 0), max(py2 + margin, 0)
        out[ya:yb, xa:xb] = np.inf
    return out


def best_places(surface: np.ndarray, library, index: int, threshold: float, taken: Sequence[Rect],
                margin: int) -> tuple[float, list[tuple[int, np.ndarray, int]], tuple[int, int]] | None:
    """(best mismatch, [(transform, flat indices of its places within TOLERANCE of the best,
    its map's width)], the entry's (h, w)) over the 8 orientations of one entry; None when
    the entry fits nowhere free."""
    template, changed = entry_surface(library, index, threshold)
    H, W = surface.shape
    maps = []
    for t in range(TRANSFORMS):
        tt, ct = dihedral(template, t), dihedral(changed, t)
        h, w = tt.shape
        if h > H or w > W:
            continue
        maps.append((t, _free(mismatch_map(surface, tt, ct), h, w, taken, margin)))
    maps = [(t, m) for t, m in maps if np.isfinite(m).any()]
    if not maps:
        return None
    best = min(float(m[np.isfinite(m)].min()) for _, m in maps)
    places = [(t, np.flatnonzero(m <= best + TOLERANCE), m.shape[1]) for t, m in maps]
    return best, places, template.shape


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
                       avoid: Sequence[Rect] = (), pad: int = PAD) -> list[Placed]:
    """Up to `n` placed defects on `image`, classes drawn uniformly from `classes`.

    Each: up to TRIES entries of the class (paired ones only), the first whose best
    mismatch is at most ACCEPT, else the best of them; then one place drawn uniformly
    from its near-best ones. A class without paired entries, or whose entries fit nowhere
    (an image smaller than the real boxes), is placed by the sampler.
    Fewer come back when nothing fits between the rectangles already placed.
    """
    threshold = surface_threshold(image)
    surface = (to_gray(image) > threshold).astype(np.uint8)
    integral = conductor_integral(image)
    taken = list(avoid)
    placed: list[Placed] = []
    for _ in range(n):
        cls = classes[int(rng.integers(len(classes)))]
        pool = [int(i) for i in library.indices_of(class_index[cls]) if library.paired[i]]
        chosen = None
        for _try in range(TRIES if pool else 0):
            index = pool[int(rng.integers(len(pool)))]
            found = best_places(surface, library, index, threshold, taken, margin + pad)
            if found is not None and (chosen is None or found[0] < chosen[1][0]):
                chosen = (index, found)
            if chosen is not None and chosen[1][0] <= ACCEPT:
                break
        if chosen is None:  # no paired entry of the class, or none fits the image: the sampler places it
            got = sample_rectangles(rng, image, stats, [cls], 1, margin=margin, integral=integral, avoid=taken)
            if got:
                placed.append(Placed(cls, tuple(int(v) for v in got[0][1])))
                taken.append(placed[-1].rect)
            continue
        index, (mismatch, places, (h, w)) = chosen
        t, x, y = _draw_place(rng, places)
        th, tw = (w, h) if t % 2 else (h, w)  # a quarter turn swaps the sides
        H, W = surface.shape
        rect = (max(x - pad, 0), max(y - pad, 0), min(x + tw + pad, W), min(y + th + pad, H))
        placed.append(Placed(cls, rect, (x, y, x + tw, y + th), index, t, round(mismatch, 4)))
        taken.append(placed[-1].rect)
    return placed
