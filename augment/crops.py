"""Context crops: the generator works on a window around each rectangle, at a fixed crop
size, so cost does not grow with image size and many defects batch together.

Native resolution where the window allows: given `native=S` (the networks' crop size), a
window that would be at most S pixels a side is widened to exactly S, so the crop is the
image's own pixels (scale 1, no resize round trip that would blur a near-binary surface
into a tell). Only rectangles too big for that are downscaled.
A window may reach past the image border (an image smaller than the window, a rectangle
as long as the image): the part outside is filled by replicating the border, so every
rectangle fits in a square window whatever the image size.

A rectangle `rect` is [x1, y1, x2, y2] in pixels, x2/y2 exclusive (numpy slices).
The window is the rectangle grown by `context` times its size (at least `min_window`
pixels a side), square, shifted to stay inside the image. Crops are float32 in [0, 1],
CxSxS (C = 1 grayscale or 3 RGB); the hole mask is 1 inside the rectangle.
"""

from __future__ import annotations

import cv2
import numpy as np


def context_window(rect, image_hw, context: float = 2.0, min_window: int = 32,
                   native: int | None = None) -> tuple[int, int, int, int]:
    """Square window [x1, y1, x2, y2] around `rect`, `context` times its longer side (at
    least `min_window`; exactly `native` when that is no smaller). Shifted to stay inside
    the image where the image is big enough; it always contains the rectangle."""
    h, w = image_hw
    x1, y1, x2, y2 = rect
    longer = max(x2 - x1, y2 - y1)
    side = int(round(longer * context))
    side = max(side, min_window)
    if native is not None and side <= native:
        side = native
    # never smaller than the rectangle; never bigger than the image unless the rectangle is
    side = max(min(side, h, w), longer)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    wx1 = int(round(cx - side / 2))
    wy1 = int(round(cy - side / 2))
    if side <= w:
        wx1 = min(max(wx1, 0), w - side)
    if side <= h:
        wy1 = min(max(wy1, 0), h - side)
    # the rectangle must fit in the window even when it is longer than side/context
    wx1 = min(wx1, x1)
    wy1 = min(wy1, y1)
    wx1 = max(wx1, x2 - side)
    wy1 = max(wy1, y2 - side)
    return wx1, wy1, wx1 + side, wy1 + side


def to_chw(image: np.ndarray) -> np.ndarray:
    arr = image.astype(np.float32) / 255.0
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def from_chw(crop: np.ndarray) -> np.ndarray:
    arr = np.clip(np.rint(crop * 255.0), 0, 255).astype(np.uint8)
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def extract_crop(image: np.ndarray, window, size: int) -> np.ndarray:
    """The window of `image` (HxW or HxWx3 uint8) as a CxSxS float32 crop in [0, 1]."""
    patch = window_pixels(image, window)
    if patch.shape[0] != size:
        patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if patch.shape[0] > size else cv2.INTER_LINEAR)
    return to_chw(patch)


def window_pixels(image: np.ndarray, window) -> np.ndarray:
    """The window's pixels of `image`, the border replicated where it reaches outside."""
    x1, y1, x2, y2 = window
    h, w = image.shape[:2]
    if x1 >= 0 and y1 >= 0 and x2 <= w and y2 <= h:
        return image[y1:y2, x1:x2]
    top, left, bottom, right = max(0, -y1), max(0, -x1), max(0, y2 - h), max(0, x2 - w)
    inside = image[max(y1, 0):min(y2, h), max(x1, 0):min(x2, w)]
    return cv2.copyMakeBorder(inside, top, bottom, left, right, cv2.BORDER_REPLICATE)


def hole_mask(rect, window, size: int) -> np.ndarray:
    """1xSxS float32 mask, 1 where the rectangle lies inside the resized window."""
    x1, y1, x2, y2 = rect
    wx1, wy1, wx2, wy2 = window
    scale = size / (wx2 - wx1)
    m = np.zeros((1, size, size), np.float32)
    ya, yb = int(np.floor((y1 - wy1) * scale)), int(np.ceil((y2 - wy1) * scale))
    xa, xb = int(np.floor((x1 - wx1) * scale)), int(np.ceil((x2 - wx1) * scale))
    m[0, max(ya, 0):min(yb, size), max(xa, 0):min(xb, size)] = 1.0
    return m


def paste_back(image: np.ndarray, crop: np.ndarray, window, rect) -> np.ndarray:
    """A copy of `image` whose pixels inside `rect` come from `crop`; all others untouched.

    The crop is resized back to the window and only the rectangle is written, so every
    pixel outside it stays bit-identical to the input image.
    """
    x1, y1, x2, y2 = rect
    wx1, wy1, wx2, wy2 = window
    side = wx2 - wx1
    patch = window_patch(crop, side)
    out = image.copy()
    out[y1:y2, x1:x2] = patch[y1 - wy1:y2 - wy1, x1 - wx1:x2 - wx1]
    return out


def change_patch(painted: np.ndarray, crop: np.ndarray, window: np.ndarray) -> np.ndarray:
    """The window's own pixels (HxW[xC] uint8, side x side) plus the painting's change
    (`painted` - `crop`, both CxSxS in [0, 1]) resized to the window: where the window is
    larger than S the surface keeps its native detail, and only what the painting changed
    is resampled (`window_patch` resamples the whole painted crop, blurring the surface).
    Equal to `window_patch(painted, side)` when S == side."""
    side = window.shape[0]
    if crop.shape[-1] == side:
        return window_patch(painted, side)
    change = painted.astype(np.float32) - crop.astype(np.float32)
    change = change[0] if change.shape[0] == 1 else change.transpose(1, 2, 0)
    change = cv2.resize(change, (side, side), interpolation=cv2.INTER_LINEAR).reshape(window.shape)
    return np.clip(np.rint(window.astype(np.float32) + 255.0 * change), 0, 255).astype(np.uint8)


def window_patch(crop: np.ndarray, side: int) -> np.ndarray:
    """A CxSxS crop back as a side x side uint8 image (no resize when S == side)."""
    patch = from_chw(crop)
    if patch.shape[0] != side:
        patch = cv2.resize(patch, (side, side), interpolation=cv2.INTER_LINEAR)
    return patch
