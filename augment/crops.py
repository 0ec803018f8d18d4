"""Context crops: the generator works on a window around each rectangle, resized to a
fixed size, so cost does not grow with image size and many defects batch together.

A rectangle `rect` is [x1, y1, x2, y2] in pixels, x2/y2 exclusive (numpy slices).
The window is the rectangle grown by `context` times its size (at least `min_window`
pixels a side), square, shifted to stay inside the image. Crops are float32 in [0, 1],
CxSxS (C = 1 grayscale or 3 RGB); the hole mask is 1 inside the rectangle.
"""

from __future__ import annotations

import cv2
import numpy as np


def context_window(rect, image_hw, context: float = 2.0, min_window: int = 32) -> tuple[int, int, int, int]:
    """Square window [x1, y1, x2, y2] around `rect`, `context` times its longer side."""
    h, w = image_hw
    x1, y1, x2, y2 = rect
    side = int(round(max(x2 - x1, y2 - y1) * context))
    side = max(side, min_window)
    side = min(side, h, w)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    wx1 = int(round(cx - side / 2))
    wy1 = int(round(cy - side / 2))
    wx1 = min(max(wx1, 0), w - side)
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
    x1, y1, x2, y2 = window
    patch = image[y1:y2, x1:x2]
    patch = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if patch.shape[0] > size else cv2.INTER_LINEAR)
    return to_chw(patch)


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
    patch = from_chw(crop)
    patch = cv2.resize(patch, (side, side), interpolation=cv2.INTER_LINEAR)
    out = image.copy()
    out[y1:y2, x1:x2] = patch[y1 - wy1:y2 - wy1, x1 - wx1:x2 - wx1]
    return out
