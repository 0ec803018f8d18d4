"""Tiny paired boards for the generation tests: bright tracks on a dark substrate, with
'pin-hole' defects (dark dots) always on conductor and 'copper' defects (bright blobs)
always on bare substrate, so a sampler that learns placement has something to learn."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from midg.datasets.boxes import Box
from midg.datasets.layout import DEFECT_CLASSES, DatasetWriter

SUBSTRATE, COPPER = 40, 200


def board(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    img = np.full((size, size), SUBSTRATE, np.uint8)
    for _ in range(4):
        t = int(rng.integers(8, 16))
        p = int(rng.integers(0, size - t))
        if rng.random() < 0.5:
            img[p:p + t, :] = COPPER
        else:
            img[:, p:p + t] = COPPER
    noise = rng.integers(-3, 4, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def _spot(rng, img, want_copper: bool, value: int) -> tuple[int, int, int, int] | None:
    size = img.shape[0]
    for _ in range(200):
        r = int(rng.integers(2, 4))
        cx, cy = (int(v) for v in rng.integers(r + 2, size - r - 2, 2))
        window = img[cy - r - 1:cy + r + 2, cx - r - 1:cx + r + 2]
        if ((window > 120).all() if want_copper else (window < 120).all()):
            cv2.circle(img, (cx, cy), r, value, -1)
            return cx - r - 1, cy - r - 1, cx + r + 2, cy + r + 2
    return None


def make_paired_dataset(out: Path, n_images: int = 12, seed: int = 0, size: int = 96) -> Path:
    rng = np.random.default_rng(seed)
    pin, cop = DEFECT_CLASSES.index("pin-hole"), DEFECT_CLASSES.index("copper")
    with DatasetWriter(out, DEFECT_CLASSES, source="test-boards", seed=seed) as w:
        for i in range(n_images):
            temp = board(rng, size)
            test = temp.copy()
            boxes = []
            for _ in range(2):
                r = _spot(rng, test, True, SUBSTRATE)
                if r:
                    boxes.append(Box(pin, *r))
                r = _spot(rng, test, False, COPPER)
                if r:
                    boxes.append(Box(cop, *r))
            tname = w.add_normal(f"b{i:03d}_temp", array=temp)
            w.add_image("train", f"b{i:03d}", array=test, boxes=boxes, template=tname)
    return out


def make_normals(out: Path, n: int = 6, seed: int = 1, size: int = 96) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(str(out / f"n{i:02d}.png"), board(rng, size))
    return out


class FakeGenerator:
    """Stands in for MIDGGenerator where a trained one is not needed: inpaints the hole with
    the crop's mean, draws an ellipse outline at a noise-jittered place, and paints the
    region enclosed by the edges with the class' intensity (dark pin-holes, bright copper)."""

    VALUES = {"pin-hole": 0.1, "copper": 0.85}

    def __init__(self, classes=DEFECT_CLASSES, crop_size: int = 32, channels: int = 1):
        self.config = {"classes": list(classes), "crop_size": crop_size, "channels": channels,
                       "context": 2.0, "min_window": 16}
        self.calls = {"inpaint": [], "draw_edges": [], "paint": []}

    def inpaint(self, crops, holes):
        import torch

        self.calls["inpaint"].append(crops.shape[0])
        keep = 1 - holes
        mean = (crops * keep).sum((2, 3), keepdim=True) / keep.sum((2, 3), keepdim=True).clamp(min=1)
        return torch.where(holes > 0.5, mean.expand_as(crops), crops)

    def draw_edges(self, inpainted, holes, class_ids, generator):
        import torch

        self.calls["draw_edges"].append(inpainted.shape[0])
        b, _, s, _ = holes.shape
        jitter = torch.rand((b, 2), generator=generator).numpy()
        out = np.zeros((b, 1, s, s), np.float32)
        for i in range(b):
            ys, xs = np.nonzero(holes[i, 0].numpy() > 0.5)
            x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            ax, ay = max(1, (x2 - x1) // 3), max(1, (y2 - y1) // 3)
            cx = int(x1 + ax + jitter[i, 0] * max(0, (x2 - x1) - 2 * ax))
            cy = int(y1 + ay + jitter[i, 1] * max(0, (y2 - y1) - 2 * ay))
            cv2.ellipse(out[i, 0], (cx, cy), (ax, ay), 0, 0, 360, 1.0, 1)
        return torch.from_numpy(out) * holes

    def paint(self, inpainted, edges, holes, class_ids):
        import torch

        self.calls["paint"].append(inpainted.shape[0])
        out = inpainted.clone()
        for i in range(inpainted.shape[0]):
            e = (edges[i, 0].numpy() > 0.5).astype(np.uint8)
            contours, _ = cv2.findContours(e, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            region = np.zeros_like(e)
            cv2.drawContours(region, contours, -1, 1, -1)
            region = torch.from_numpy(region.astype(bool)) & (holes[i, 0] > 0.5)
            value = self.VALUES.get(self.config["classes"][int(class_ids[i])], 0.5)
            out[i][:, region] = value
        return out
