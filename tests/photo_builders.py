"""A small constructed textured colour photo set without templates, for the photo paths.

Threaded-looking stripes (a bright flank band per period) under noise and a soft shading
ramp; pits are dark reddish-brown ellipses, and they sit only on the bright flank bands
(where BSData's pits sit), which lets a placement model be checked against a known truth.
Annotations are polygons kept as instance masks (meta.json `instance_masks`), as
`benchmarks/bsdata.py prepare` and `midg data import yolo` write them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from midg.datasets.boxes import Box
from midg.datasets.imports import _write_instance_mask
from midg.datasets.layout import DatasetWriter

PERIOD = 24  # pixels between thread flanks
FLANK = (4, 16)  # rows of each period that are bright flank (where pits sit)


def surface(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """HxWx3 uint8 RGB: stripes, shading and sensor noise; a new phase per image."""
    y = (np.arange(height)[:, None] + rng.integers(0, PERIOD)) % PERIOD
    flank = ((y >= FLANK[0]) & (y < FLANK[1])).astype(np.float32)
    base = 70 + 90 * flank + 25 * np.linspace(0, 1, width)[None, :]
    img = np.repeat(base[..., None], 3, axis=2) * np.array([1.0, 0.97, 0.9])
    img = img + rng.normal(0, 6, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def pit(rng: np.random.Generator, image: np.ndarray) -> list[list[float]]:
    """Paint one dark ellipse centred on a flank band; return its polygon."""
    h, w = image.shape[:2]
    gray = image.mean(axis=2)
    for _ in range(200):
        cx, cy = int(rng.integers(12, w - 12)), int(rng.integers(7, h - 7))
        if gray[cy, max(0, cx - 3):cx + 3].mean() > 150:  # on a flank
            break
    ax, ay = int(rng.integers(6, 11)), int(rng.integers(3, 6))
    angle = float(rng.uniform(0, 180))
    poly = cv2.ellipse2Poly((cx, cy), (ax, ay), int(angle), 0, 360, 30)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [poly], 1)
    m = mask.astype(bool)
    image[m] = (image[m] * np.array([0.45, 0.35, 0.3])).astype(np.uint8)
    return [[float(x), float(y)] for x, y in poly]


def write_photo_set(root: Path, n_train: int = 8, n_normals: int = 12, size: tuple[int, int] = (128, 80),
                    seed: int = 0, n_val: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    w, h = size
    masks = {}
    with DatasetWriter(root, ["pitting"], source="photo-test", seed=seed) as writer:
        for i in range(n_train + n_val):
            split = "train" if i < n_train else "val"
            img = surface(rng, w, h)
            polys = [pit(rng, img) for _ in range(1 + i % 2)]
            boxes = []
            for poly in polys:
                xs, ys = [p[0] for p in poly], [p[1] for p in poly]
                boxes.append(Box(0, max(0.0, min(xs)), max(0.0, min(ys)), min(float(w), max(xs) + 1),
                                 min(float(h), max(ys) + 1)))
            rel = writer.add_image(split, f"d{i:02d}", array=img, boxes=boxes)
            masks[rel] = _write_instance_mask(writer, split, f"d{i:02d}.png", polys, w, h)
        for i in range(n_normals):
            writer.add_normal(f"n{i:02d}", array=surface(rng, w, h))
        writer.update_meta(instance_masks=masks)
    return root
