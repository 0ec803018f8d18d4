"""Labels for generated defects: the tight box of what changed inside the rectangle.

    box, n_changed = derive_box(normal, generated, rect)   # box: (x1, y1, x2, y2) or None

A pixel changed when |after - before| (largest over channels) exceeds `threshold` grey
levels. Connected components smaller than `min_component_px` are dropped as noise
(resampling ripples, a stray pixel); a component count, not an opening, so thin real
defects (a one-pixel open or spur) survive. Then:
  - cleaned change not empty          -> its tight box
  - only noise, but >= min_changed_px -> the tight box of the raw change (something is there)
  - fewer than min_changed_px changed -> None: the generation is dropped (and redrawn).

This is the one definition of "changed" in the project: the library learns the real
labels' margin with it (library._box_margin), the metrics measure with it, and boxes of
generated defects come from it. `restore_outside` then puts every pixel of the rectangle
outside the box back to the normal's, bit for bit, so no visible change is ever unlabelled.
"""

from __future__ import annotations

import cv2
import numpy as np

Rect = tuple[int, int, int, int]

THRESHOLD = 24  # grey levels: above JPEG/resize noise, below any visible defect contrast
MIN_CHANGED_PX = 6  # fewer changed pixels than this: nothing a detector could learn from
MIN_COMPONENT_PX = 3  # changed blobs smaller than this are noise


def changed_pixels(before: np.ndarray, after: np.ndarray, rect: Rect, threshold: int = THRESHOLD) -> np.ndarray:
    """HxW (rectangle-sized) uint8 0/1 map of pixels that changed inside `rect`."""
    x1, y1, x2, y2 = rect
    a = before[y1:y2, x1:x2].astype(np.int16)
    b = after[y1:y2, x1:x2].astype(np.int16)
    diff = np.abs(b - a)
    if diff.ndim == 3:
        diff = diff.max(axis=2)
    return (diff > threshold).astype(np.uint8)


def drop_small_components(mask: np.ndarray, min_component_px: int = MIN_COMPONENT_PX) -> np.ndarray:
    if min_component_px <= 1 or not mask.any():
        return mask
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = np.zeros(n, np.uint8)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_component_px
    return keep[labels]


def derive_box(before: np.ndarray, after: np.ndarray, rect: Rect, min_changed_px: int = MIN_CHANGED_PX,
               threshold: int = THRESHOLD, min_component_px: int = MIN_COMPONENT_PX) -> tuple[Rect | None, int]:
    """(box in image pixels, x2/y2 exclusive, or None when dropped; raw changed-pixel count)."""
    raw = changed_pixels(before, after, rect, threshold)
    n_changed = int(raw.sum())
    if n_changed < min_changed_px:
        return None, n_changed
    cleaned = drop_small_components(raw, min_component_px)
    x1, y1, x2, y2 = rect
    if not cleaned.any():
        cleaned = raw
    ys, xs = np.nonzero(cleaned)
    return (x1 + int(xs.min()), y1 + int(ys.min()), x1 + int(xs.max()) + 1, y1 + int(ys.max()) + 1), n_changed


def restore_outside(normal: np.ndarray, image: np.ndarray, rect: Rect, box: Rect | None) -> None:
    """In place: every pixel of `rect` outside `box` (all of it when box is None) becomes
    the normal's pixel again. `box` may be fractional (a grown box): pixels it only
    partly covers are kept."""
    x1, y1, x2, y2 = rect
    keep = np.zeros((y2 - y1, x2 - x1), bool)
    if box is not None:
        bx1, by1 = max(int(np.floor(box[0])), x1), max(int(np.floor(box[1])), y1)
        bx2, by2 = min(int(np.ceil(box[2])), x2), min(int(np.ceil(box[3])), y2)
        keep[by1 - y1:by2 - y1, bx1 - x1:bx2 - x1] = True
    region = image[y1:y2, x1:x2]
    region[~keep] = normal[y1:y2, x1:x2][~keep]


def fade_inside(normal: np.ndarray, image: np.ndarray, rect: Rect, box, px: int) -> None:
    """In place: inside `box` (clipped to `rect`, whole pixels as restore_outside keeps them)
    the change from `normal` fades out over its last `px` pixels, 1/(px+1) of it left on the
    border row, all of it `px` rows in: a change that reaches the box's edge shows no
    straight cut there. Pixels outside the box are not touched."""
    x1, y1, x2, y2 = rect
    bx1, by1 = max(int(np.floor(box[0])), x1), max(int(np.floor(box[1])), y1)
    bx2, by2 = min(int(np.ceil(box[2])), x2), min(int(np.ceil(box[3])), y2)
    if px <= 0 or bx2 <= bx1 or by2 <= by1:
        return
    h, w = by2 - by1, bx2 - bx1
    dy, dx = np.minimum(np.arange(h), np.arange(h)[::-1]), np.minimum(np.arange(w), np.arange(w)[::-1])
    ramp = np.clip((np.minimum(dy[:, None], dx[None, :]) + 1) / (px + 1), 0.0, 1.0).astype(np.float32)
    base = normal[by1:by2, bx1:bx2].astype(np.float32)
    now = image[by1:by2, bx1:bx2].astype(np.float32)
    ramp = ramp[..., None] if now.ndim == 3 else ramp
    image[by1:by2, bx1:bx2] = np.clip(np.rint(base + ramp * (now - base)), 0, 255).astype(image.dtype)
