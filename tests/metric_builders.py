"""Tiny procedural boards for the generator-metric tests: a grey substrate with bright
traces, and three defect classes that look different (bright disks, dark squares,
bright diagonal scratches)."""

from __future__ import annotations

import cv2
import numpy as np

from midg.augment.metrics.evaluate import EvalConfig
from midg.datasets.boxes import Box

NAMES = ["blob", "hole", "scratch"]
TINY = EvalConfig(width=8, epochs=3, min_steps=60, kid_subsets=10, max_rects=60, inpaint_crop_size=32)


def make_board(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A grey board: noisy substrate and a few bright traces."""
    board = rng.normal(60, 6, (size, size))
    for _ in range(3):
        pos, width = rng.integers(0, size - 8), rng.integers(3, 7)
        if rng.random() < 0.5:
            board[pos:pos + width, :] = rng.normal(190, 6, (width, size))
        else:
            board[:, pos:pos + width] = rng.normal(190, 6, (size, width))
    return np.clip(board, 0, 255).astype(np.uint8)


def draw_defect(board: np.ndarray, cls: int, rng: np.random.Generator, margin: int = 14, half: int | None = None) -> Box:
    """Draw a defect of class `cls` in place (in the left or right `half` if given); return its tight box."""
    h, w = board.shape
    lo, hi = (margin, w - margin) if half is None else ((margin, w // 2 - margin) if half == 0 else (w // 2 + margin, w - margin))
    cx, cy = int(rng.integers(lo, hi)), int(rng.integers(margin, h - margin))
    mask = np.zeros_like(board)
    if cls == 0:  # blob: bright disk
        cv2.circle(mask, (cx, cy), int(rng.integers(4, 8)), 1, thickness=-1)
        value = 235
    elif cls == 1:  # hole: dark square
        s = int(rng.integers(3, 6))
        mask[cy - s:cy + s, cx - s:cx + s] = 1
        value = 5
    else:  # scratch: bright diagonal line
        d = int(rng.integers(5, 9))
        sign = 1 if rng.random() < 0.5 else -1
        cv2.line(mask, (cx - d, cy - sign * d), (cx + d, cy + sign * d), 1, thickness=2)
        value = 225
    board[mask > 0] = value
    ys, xs = np.nonzero(mask)
    return Box(cls, float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
