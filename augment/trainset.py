"""Training crops of the MIDG generator, preloaded in memory (defects are few: N ~ 100).

Two streams, stacked as float32 tensors:
  defect stream, one item per real defect box of the train split:
    rect   = the box rounded outward to whole pixels
    window = context_window(rect, (h, w), cfg.context, cfg.min_window)
    image  = crop of the defect image (the defect module's target), hole = hole_mask,
    edges  = real structure inside the hole (augment/edgemaps.py: the filled mask of what
             the defect changed when a template exists), class id
    background = the aligned template's crop (paired sources: the REAL background the
             defect module paints on, as it paints on the real normal at generation);
             unpaired images annotated with outlines (instance masks): the image with its
             pits filled by OpenCV's inpainting (Telea) inside the outlines grown by
             SHAPE_MARGIN px, so the module paints on the real surroundings, as it does at
             generation, and the edges are the outline carrying the pit's shading
             (outlines.shading_map; generator.outline_structure "filled": the filled outline);
             zeros and paired = 0 otherwise (the model then paints on its own inpainting)
  inpainting stream (the inpainting block's supervision):
    paired: the same window of the aligned template (entry.template) is the target
    self-supervised: random rectangles, sized like the real boxes, on normal images;
                     the normal itself is the target; with outline annotations the hole is
                     a real outline, deformed (outlines.deform_mask), not its rectangle
Batches are drawn with a torch.Generator (its state goes into train_state, so a resumed
run draws the same batches) and augmented with the 8 flips/90-degree rotations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from midg.datasets.errors import DatasetError
from midg.datasets.images import channels_of, read_image
from midg.datasets.layout import Dataset

from .config import GeneratorConfig
from .crops import context_window, extract_crop, hole_mask
from .edgemaps import defect_edges
from .outlines import deform_mask, fill_outlines, instance_mask, shading_map

SHAPE_MARGIN = 2  # px the annotated outline is grown by before the pit is filled (annotators draw tight)


@dataclass
class TrainingSet:
    channels: int
    names: list[str]
    # defect stream
    image: torch.Tensor  # [N, C, S, S]
    hole: torch.Tensor  # [N, 1, S, S]
    edges: torch.Tensor  # [N, 1, S, S]
    class_ids: torch.Tensor  # [N] int64
    background: torch.Tensor  # [N, C, S, S] template crop (paired) or zeros
    paired: torch.Tensor  # [N] float32: 1 where background holds a real template crop
    # inpainting stream
    inp_image: torch.Tensor  # [M, C, S, S] input context (hole region is ignored by the net)
    inp_hole: torch.Tensor  # [M, 1, S, S]
    inp_target: torch.Tensor  # [M, C, S, S]
    n_paired: int  # the first n_paired inpainting items come from templates
    box_sizes: list[tuple[int, int]]  # (w, h) of every real box, pixels

    def __len__(self) -> int:
        return self.image.shape[0]

    def to(self, device: torch.device) -> "TrainingSet":
        """Move the crops (to the GPU: batches are then gathered there, no copies per step)."""
        for name in ("image", "hole", "edges", "class_ids", "background", "paired", "inp_image", "inp_hole",
                     "inp_target"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def summary(self) -> dict:
        per_class = torch.bincount(self.class_ids, minlength=len(self.names)).tolist()
        return {"defect_crops": len(self), "per_class": dict(zip(self.names, per_class)),
                "inpaint_crops": self.inp_image.shape[0], "paired": self.n_paired,
                "self_supervised": self.inp_image.shape[0] - self.n_paired, "channels": self.channels}


def outward_rect(box, width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1 = max(int(math.floor(box.x1)), 0), max(int(math.floor(box.y1)), 0)
    x2, y2 = min(int(math.ceil(box.x2)), width), min(int(math.ceil(box.y2)), height)
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def _as_channels(image: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1:
        return image if image.ndim == 2 else np.rint(image.mean(axis=2)).astype(np.uint8)
    return image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    """A 0/1 mask dilated by `px` pixels (a (2px+1)-square), on a canvas grown to hold it."""
    if px <= 0:
        return mask
    padded = np.pad(mask, px)
    return cv2.dilate(padded, np.ones((2 * px + 1, 2 * px + 1), np.uint8))


def build_training_set(dataset: Dataset, cfg: GeneratorConfig) -> TrainingSet:
    """Cut every training crop once; deterministic for a given dataset and cfg.seed."""
    entries = [e for e in dataset.images("train") if e.boxes]
    if not entries:
        raise DatasetError(dataset.root, "the train split has no defect boxes: nothing to learn from")
    images = {e.file: read_image(dataset.path(e.file)) for e in entries}
    templates = {e.template: read_image(dataset.path(e.template)) for e in entries if e.template}
    channels = channels_of([*images.values(), *templates.values()])
    s = cfg.crop_size

    d_image, d_hole, d_edges, d_cls, d_back, d_paired = [], [], [], [], [], []
    p_image, p_hole, p_target = [], [], []
    box_sizes, outlines = [], []
    for e in entries:
        img = _as_channels(images[e.file], channels)
        h, w = img.shape[:2]
        tmpl = _as_channels(templates[e.template], channels) if e.template else None
        if tmpl is not None and tmpl.shape[:2] != (h, w):
            raise DatasetError(dataset.path(e.template), f"template is {tmpl.shape[1]}x{tmpl.shape[0]}, "
                                                         f"its defect image {e.file} is {w}x{h}")
        instances = instance_mask(dataset, e) if tmpl is None else None
        filled = fill_outlines(img, instances, SHAPE_MARGIN) if instances is not None else None
        shading = (shading_map(img, filled, instances > 0) if filled is not None and cfg.outline_structure == "shading"
                   else None)
        for k, box in enumerate(e.boxes):
            rect = outward_rect(box, w, h)
            box_sizes.append((rect[2] - rect[0], rect[3] - rect[1]))
            window = context_window(rect, (h, w), cfg.context, cfg.min_window, native=s)
            crop = extract_crop(img, window, s)
            hole = hole_mask(rect, window, s)
            tmpl_crop = extract_crop(tmpl, window, s) if tmpl is not None else None
            outline = (instances == k + 1).astype(np.uint8) if instances is not None else None
            if outline is not None and outline.any():
                outlines.append(outline[rect[1]:rect[3], rect[0]:rect[2]])
                if shading is not None:  # the outline carrying the pit's shading (what generation reads)
                    structure = np.rint(shading * outline * 255).astype(np.uint8)
                    d_edges.append(extract_crop(structure, window, s) * hole)
                else:
                    d_edges.append((extract_crop(outline * 255, window, s) > 0.5).astype(np.float32) * hole)
                d_back.append(extract_crop(filled, window, s))  # a pseudo-template: never an inpainting target
                d_paired.append(1.0)
            else:
                d_edges.append(defect_edges(crop, hole, tmpl_crop))
                d_back.append(tmpl_crop if tmpl_crop is not None else np.zeros_like(crop))
                d_paired.append(1.0 if tmpl_crop is not None else 0.0)
            d_image.append(crop)
            d_hole.append(hole)
            d_cls.append(box.cls)
            if tmpl_crop is not None:
                p_image.append(crop)
                p_hole.append(hole)
                p_target.append(tmpl_crop)

    n_paired = len(p_image)
    rng = np.random.default_rng(cfg.seed)
    if dataset.normals and cfg.self_supervised > 0:
        picks = sorted(rng.integers(len(dataset.normals), size=cfg.self_supervised).tolist())
        cache: dict[int, np.ndarray] = {}
        for idx in picks:
            if idx not in cache:
                cache = {idx: _as_channels(read_image(dataset.path(dataset.normals[idx])), channels)}
            normal = cache[idx]
            h, w = normal.shape[:2]
            if outlines:  # a real outline, deformed, grown as the pits' fill is
                shape = grow(deform_mask(outlines[int(rng.integers(len(outlines)))], rng), SHAPE_MARGIN)
                bh, bw = shape.shape
            else:
                bw, bh = box_sizes[int(rng.integers(len(box_sizes)))]
            bw, bh = min(bw, w), min(bh, h)
            x1, y1 = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
            rect = (x1, y1, x1 + bw, y1 + bh)
            window = context_window(rect, (h, w), cfg.context, cfg.min_window, native=s)
            crop = extract_crop(normal, window, s)
            p_image.append(crop)
            if outlines:
                canvas = np.zeros((h, w), np.uint8)
                canvas[y1:y1 + bh, x1:x1 + bw] = shape[:bh, :bw] * 255
                p_hole.append((extract_crop(canvas, window, s) > 0.5).astype(np.float32))
            else:
                p_hole.append(hole_mask(rect, window, s))
            p_target.append(crop)
    if not p_image:
        raise DatasetError(dataset.root, "no inpainting supervision: the defect images have no templates "
                                         "and the dataset has no normals/ (or generator.self_supervised is 0)")

    def t(arrs):
        return torch.from_numpy(np.stack(arrs)).float()

    return TrainingSet(channels=channels, names=list(dataset.names), image=t(d_image), hole=t(d_hole),
                       edges=t(d_edges), class_ids=torch.tensor(d_cls, dtype=torch.int64),
                       background=t(d_back), paired=torch.tensor(d_paired, dtype=torch.float32),
                       inp_image=t(p_image), inp_hole=t(p_hole), inp_target=t(p_target),
                       n_paired=n_paired, box_sizes=box_sizes)


def dihedral(x: torch.Tensor, ks: torch.Tensor) -> torch.Tensor:
    """Per-sample flip/rotation of square [B, C, S, S]: ks[i] in 0..7 (rotate ks % 4 quarter
    turns, then flip left-right when ks >= 4). All eight variants are made and gathered,
    so there is no data-dependent branching (no device sync on a GPU)."""
    turns = [torch.rot90(x, k, dims=(2, 3)) for k in range(4)]
    variants = torch.stack(turns + [torch.flip(t, dims=(3,)) for t in turns])  # [8, B, C, S, S]
    return variants[ks.to(x.device), torch.arange(x.shape[0], device=x.device)]


def sample_batch(ts: TrainingSet, batch_size: int, rng: torch.Generator) -> dict[str, torch.Tensor]:
    """A random augmented batch of both streams; all draws from `rng` (a CPU generator, so a
    seed gives the same batches on any device), gathered wherever the tensors live."""
    dev = ts.image.device
    di = torch.randint(len(ts), (batch_size,), generator=rng).to(dev)
    pi = torch.randint(ts.inp_image.shape[0], (batch_size,), generator=rng).to(dev)
    dk = torch.randint(8, (batch_size,), generator=rng).to(dev)
    pk = torch.randint(8, (batch_size,), generator=rng).to(dev)
    return {
        "image": dihedral(ts.image[di], dk), "hole": dihedral(ts.hole[di], dk),
        "edges": dihedral(ts.edges[di], dk), "class_ids": ts.class_ids[di],
        "background": dihedral(ts.background[di], dk), "paired": ts.paired[di],
        "inp_image": dihedral(ts.inp_image[pi], pk), "inp_hole": dihedral(ts.inp_hole[pi], pk),
        "inp_target": dihedral(ts.inp_target[pi], pk),
    }


def preview_batch(ts: TrainingSet, per_class: int = 1) -> dict[str, torch.Tensor]:
    """Fixed, unaugmented items for the training sample grid: the first `per_class` of
    every class present (inpainting stream: the first items, paired ones first)."""
    idx = []
    for c in range(len(ts.names)):
        idx += (ts.class_ids == c).nonzero().flatten()[:per_class].tolist()
    di = torch.tensor(idx, dtype=torch.int64)
    pi = torch.arange(len(idx)) % ts.inp_image.shape[0]
    return {"image": ts.image[di], "hole": ts.hole[di], "edges": ts.edges[di], "class_ids": ts.class_ids[di],
            "background": ts.background[di], "paired": ts.paired[di],
            "inp_image": ts.inp_image[pi], "inp_hole": ts.inp_hole[pi], "inp_target": ts.inp_target[pi]}
