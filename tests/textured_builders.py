"""A small constructed textured set in colour, for the unpaired (no-template) paths.

Photographs of textured surfaces (BSData's spindles, tiles) in miniature: every image is
its own colour-tinted surface of smooth colour blobs, oblique stripes of its own angle
and phase, and fine noise, so no two images share a texture and a rectangle moved from
one image to another shows its border. Defects are darkenings that keep the texture:
elliptical pits (class 0) and curved cracks (class 1); each comes with its own mask.
Seeded, a few milliseconds an image.

    rng = np.random.default_rng(0)
    image = textured_surface(rng)                     # 96 x 96 x 3 uint8
    box, mask = draw_pit(image, rng)                  # darkens in place; mask: HxW bool
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from midg.datasets.boxes import Box
from midg.datasets.layout import DatasetWriter

SIZE = 96
DARKEN = 0.4  # a defect keeps this share of the surface's brightness


def textured_surface(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """HxWx3 uint8: tint + smooth colour blobs + oblique stripes + fine noise."""
    blobs = cv2.resize(rng.normal(0, 1, (size // 8, size // 8, 3)), (size, size), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    angle, freq, phase = rng.uniform(0, math.pi), rng.uniform(0.5, 0.8), rng.uniform(0, 2 * math.pi)
    stripes = 28 * np.sin(freq * (xx * math.cos(angle) + yy * math.sin(angle)) + phase)
    tint = np.array([150.0, 128.0, 105.0]) + rng.normal(0, 10, 3)
    image = tint + 16 * blobs + stripes[..., None] + rng.normal(0, 5, (size, size, 3))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _darken(image: np.ndarray, mask: np.ndarray) -> None:
    image[mask] = np.rint(image[mask] * DARKEN).astype(np.uint8)


def _box(mask: np.ndarray, cls: int) -> Box:
    ys, xs = np.nonzero(mask)
    return Box(cls, float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def draw_pit(image: np.ndarray, rng: np.random.Generator, cls: int = 0, margin: int = 18,
             centre: tuple[int, int] | None = None) -> tuple[Box, np.ndarray]:
    """A dark tilted ellipse, in place; (its tight box, its mask)."""
    h, w = image.shape[:2]
    cx, cy = centre or (int(rng.integers(margin, w - margin)), int(rng.integers(margin, h - margin)))
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (cx, cy), (int(rng.integers(4, 8)), int(rng.integers(3, 6))), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    _darken(image, mask > 0)
    return _box(mask > 0, cls), mask > 0


def draw_crack(image: np.ndarray, rng: np.random.Generator, cls: int = 1, margin: int = 18,
               centre: tuple[int, int] | None = None) -> tuple[Box, np.ndarray]:
    """A dark curved stroke two pixels wide (a bent polyline), in place; (box, mask)."""
    h, w = image.shape[:2]
    cx, cy = centre or (int(rng.integers(margin, w - margin)), int(rng.integers(margin, h - margin)))
    length, bend, angle = rng.uniform(16, 26), rng.uniform(-6, 6), rng.uniform(0, math.pi)
    t = np.linspace(-0.5, 0.5, 12)
    along, across = t * length, bend * (1 - 4 * t ** 2)
    pts = np.stack([cx + along * math.cos(angle) - across * math.sin(angle),
                    cy + along * math.sin(angle) + across * math.cos(angle)], 1)
    mask = np.zeros((h, w), np.uint8)
    cv2.polylines(mask, [np.rint(pts).astype(np.int32)], False, 1, thickness=2)
    _darken(image, mask > 0)
    return _box(mask > 0, cls), mask > 0


DRAW = (draw_pit, draw_crack)


def defect_image(rng: np.random.Generator, classes: Sequence[int]) -> tuple[np.ndarray, list[Box], list[np.ndarray]]:
    """A fresh surface with one defect per entry of `classes`, the first in the left half,
    the second in the right half (so they never overlap); (image, boxes, masks)."""
    image = textured_surface(rng)
    boxes, masks = [], []
    for k, cls in enumerate(classes):
        cx = int(rng.integers(18, SIZE // 2 - 14)) + k * (SIZE // 2)
        box, mask = DRAW[cls](image, rng, cls=cls, centre=(cx, int(rng.integers(18, SIZE - 18))))
        boxes.append(box)
        masks.append(mask)
    return image, boxes, masks


def write_unpaired_real(out: Path, names: Sequence[str], n_train: int, n_test: int, seed: int,
                        n_normals: int = 0) -> None:
    """A real mask-annotated photo set as an importer writes it: defect images with boxes,
    no templates, an instance mask per image (meta.json `instance_masks`, value k+1 = the
    k-th box) and optionally unrelated defect-free `normals/`."""
    rng = np.random.default_rng(seed)
    instance_masks = {}
    with DatasetWriter(out, list(names), source="test-textured", seed=seed) as w:
        for split, n in (("train", n_train), ("test", n_test)):
            for i in range(n):
                classes = [(i + k) % len(names) for k in range(2)]
                image, boxes, masks = defect_image(rng, classes)
                rel = w.add_image(split, f"{split}_{i:03d}", array=image, boxes=boxes)
                inst = np.zeros(image.shape[:2], np.uint8)
                for k, m in enumerate(masks):
                    inst[m] = k + 1
                mask_rel = f"masks/{split}/{split}_{i:03d}.png"
                (w.tmp / mask_rel).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(w.tmp / mask_rel), inst)
                instance_masks[rel] = mask_rel
        for i in range(n_normals):
            w.add_normal(f"normal_{i:03d}", array=textured_surface(rng))
        w.update_meta(instance_masks=instance_masks)


def grown(box: Box, g: int, size: int = SIZE) -> list[int]:
    return [max(int(box.x1) - g, 0), max(int(box.y1) - g, 0), min(int(math.ceil(box.x2)) + g, size),
            min(int(math.ceil(box.y2)) + g, size)]


def write_flawed_synthetic(root: Path, names: Sequence[str], n: int, seed: int, grow: int = 6) -> None:
    """Three synthetic sets as `midg generate` writes them (meta.json defects with rects):

    - "faithful": fresh surfaces with defects drawn exactly as the real ones (the control);
    - "flat": the same images with each painted rectangle replaced by its mean colour (the
      flat fill MIDG painted on real tiles);
    - "foreign": the same surfaces with each rectangle replaced by the rectangle around a
      defect of ANOTHER image (another texture, a visible border: the box copy-paste).
    """
    rng = np.random.default_rng(seed)
    faithful = []
    for i in range(n):
        classes = [(i + k) % len(names) for k in range(2)]
        image, boxes, _ = defect_image(rng, classes)
        faithful.append((image, boxes, [grown(b, grow) for b in boxes]))
    for kind in ("faithful", "flat", "foreign"):
        defects = []
        with DatasetWriter(root / kind, list(names), source="test-textured-synthetic", seed=seed) as w:
            for i, (image, boxes, rects) in enumerate(faithful):
                out = image.copy()
                out_boxes = []
                for k, (box, rect) in enumerate(zip(boxes, rects)):
                    x1, y1, x2, y2 = rect
                    if kind == "flat":
                        out[y1:y2, x1:x2] = np.rint(image[y1:y2, x1:x2].reshape(-1, 3).mean(0)).astype(np.uint8)
                    elif kind == "foreign":
                        src, src_boxes, src_rects = faithful[(i + 1) % n]  # the same class sits at the same k
                        sx1, sy1, sx2, sy2 = src_rects[k]
                        piece = src[sy1:sy2, sx1:sx2]
                        ph, pw = min(y2 - y1, sy2 - sy1), min(x2 - x1, sx2 - sx1)
                        out[y1:y1 + ph, x1:x1 + pw] = piece[:ph, :pw]
                        rect = [x1, y1, x1 + pw, y1 + ph]
                        sb = src_boxes[k]  # the pasted defect's box, moved with its piece
                        box = Box(box.cls, max(sb.x1 - sx1 + x1, x1), max(sb.y1 - sy1 + y1, y1),
                                  min(sb.x2 - sx1 + x1, x1 + pw), min(sb.y2 - sy1 + y1, y1 + ph))
                    out_boxes.append(box)
                    defects.append({"image": f"images/train/s_{i:03d}.png", "rect": rect, "box": box.xyxy(),
                                    "class": names[box.cls]})
                w.add_image("train", f"s_{i:03d}", array=out, boxes=out_boxes)
            w.update_meta(method=kind, defects=defects)
