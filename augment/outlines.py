"""A real defect's own outline, where the annotation gives one (polygons, instance masks,
mask files beside the images): reading it per box, filling the image without it, and new
shapes made from it.

    masks = annotated_masks(dataset, entry)      # per box: HxW bool or None (box-only sources)
    surface = fill_outlines(image, instance_mask(dataset, entry))   # the image without its defects
    shape = deform_mask(real_shape, rng)         # scaled, stretched, rotated, elastically warped
    shape, shading = deform_structure(real_shape, real_shading, rng)   # the same warp on its shading
    shading = shading_map(image, surface, mask)  # how much darker the defect is than the filled surface

The library keeps the outline as a defect's changed mask and structure, and its shading
(library.py); MIDG's training paints on the filled image from the shading (trainset.py) and
generation deforms outline and shading together (painting.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from midg.datasets.errors import DatasetError
from midg.datasets.images import read_mask
from midg.datasets.layout import Dataset


def annotated_masks(dataset: Dataset, entry: Any) -> list[np.ndarray | None]:
    """Per box of `entry`, the defect's own annotated mask (HxW bool, whole image), or None.

    Read from what the importers keep: meta.json `instance_masks` (a PNG where value k+1 is
    the k-th box: YOLO segmentation), LabelMe polygons (`provenance.files[...].polygons`,
    matched to a box of the same class by their extent) and mask files beside the images
    (`provenance.files[...].mask`, under `provenance.root`, binarised as the import did;
    the caller cuts it to each box). None where no mask is found (box-only sources, a
    moved source folder): the box is all that is known.
    """
    meta = dataset.meta or {}
    n, size = len(entry.boxes), (entry.height, entry.width)
    values = instance_mask(dataset, entry)
    if values is not None:
        return [_non_empty(values == k + 1) for k in range(n)]
    prov = meta.get("provenance") if isinstance(meta.get("provenance"), dict) else {}
    record = (prov.get("files") or {}).get(entry.file)
    if not isinstance(record, dict):
        return [None] * n
    if record.get("polygons"):
        return [_polygon_for(box, record["polygons"], dataset.names, size) for box in entry.boxes]
    if record.get("mask") and prov.get("root"):
        path = Path(prov["root"]) / record["mask"]
        masks_meta = meta.get("masks") or {}
        if path.is_file():
            values = read_mask(path)
            if values.shape == size:
                cut = int(masks_meta.get("mask_threshold") or 0) if masks_meta.get("class_from") != "value" else 0
                return [_non_empty(values > cut)] * n
    return [None] * n


def _non_empty(mask: np.ndarray) -> np.ndarray | None:
    return mask if mask.any() else None


def _polygon_for(box, polygons: list, names: list[str], size: tuple[int, int]) -> np.ndarray | None:
    """The polygon of `box`'s class whose extent (clipped to the image) is the box (1 px slack)."""
    h, w = size
    for poly in polygons:
        if not isinstance(poly, dict) or str(poly.get("label", "")).strip() != names[box.cls]:
            continue
        pts = np.asarray(poly.get("points") or [], np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
            continue
        x1, y1 = max(pts[:, 0].min(), 0), max(pts[:, 1].min(), 0)
        x2, y2 = min(pts[:, 0].max(), w), min(pts[:, 1].max(), h)
        if max(abs(x1 - box.x1), abs(y1 - box.y1), abs(x2 - box.x2), abs(y2 - box.y2)) <= 1.0:
            mask = np.zeros(size, np.uint8)
            cv2.fillPoly(mask, [np.rint(pts).astype(np.int32)], 1)
            return _non_empty(mask > 0)
    return None


def fill_outlines(image: np.ndarray, instances: np.ndarray, margin: int = 2) -> np.ndarray:
    """The image with every annotated outline (grown by `margin` px: annotators draw tight)
    filled from its surroundings by OpenCV's Telea inpainting: the surface without its defects."""
    holes = cv2.dilate((instances > 0).astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8))
    return cv2.inpaint(np.ascontiguousarray(image), holes, 3, cv2.INPAINT_TELEA)


def instance_mask(dataset: Dataset, entry) -> np.ndarray | None:
    """The image's instance mask (meta.json `instance_masks`: pixel value k+1 is the k-th
    box's polygon, as importers of polygon labels write it), or None when it has none."""
    rel = (dataset.meta.get("instance_masks") or {}).get(entry.file)
    if not isinstance(rel, str):
        return None
    mask = read_mask(dataset.path(rel))
    if mask.shape[:2] != (entry.height, entry.width):
        raise DatasetError(dataset.path(rel), f"instance mask is {mask.shape[1]}x{mask.shape[0]}, "
                                              f"its image {entry.file} is {entry.width}x{entry.height}")
    return mask


# ---------------------------------------------------------------- new shapes from real ones


@dataclass(frozen=True)
class Deformation:
    """How far `deform_mask` moves a real shape away from itself."""
    scale: tuple[float, float] = (0.75, 1.3)  # area-preserving aspect is kept; both sides scaled by one factor
    stretch: float = 0.2  # one side scaled by up to (1 +- stretch) more: rounder or longer shapes
    rotation: float = 180.0  # degrees, uniform in [-rotation, rotation]
    elastic: float = 0.12  # displacement of the warp, in units of the shape's mean side
    smoothness: float = 0.25  # the warp's Gaussian sigma, in units of the shape's mean side

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0 < lo <= hi or not 0 <= self.stretch < 1 or self.elastic < 0 or self.smoothness <= 0:
            raise ValueError(f"deformation needs 0 < scale[0] <= scale[1], 0 <= stretch < 1, elastic >= 0 and "
                             f"smoothness > 0, got {self}")


def deform_mask(mask: np.ndarray, rng: np.random.Generator, deformation: Deformation = Deformation()) -> np.ndarray:
    """A new HxW 0/1 shape from a real one: scaled, stretched, rotated about its centre and
    elastically warped (a smooth random displacement field), cropped to its extent. Same
    rng state, same shape. A shape the warp would erase is returned as it came."""
    return deform_structure(mask, None, rng, deformation)[0]


def deform_structure(mask: np.ndarray, values: np.ndarray | None, rng: np.random.Generator,
                     deformation: Deformation = Deformation()) -> tuple[np.ndarray, np.ndarray | None]:
    """`deform_mask` of `mask`, and the same warp applied to `values` (an HxW float map over
    the mask, e.g. its shading: bilinear, 0 outside the new shape); the rng draws are
    deform_mask's, so a mask deforms the same with or without values."""
    mask = (np.asarray(mask) > 0).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return mask, values
    crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    mask = mask[crop]
    values = np.asarray(values, np.float32)[crop] if values is not None else None
    h, w = mask.shape
    d = deformation
    s = rng.uniform(*d.scale)
    st = 1.0 + rng.uniform(-d.stretch, d.stretch)
    sx, sy = s * st, s / st
    angle = rng.uniform(-d.rotation, d.rotation)
    side = 0.5 * (w * sx + h * sy)
    # the canvas holds the scaled shape at any angle, plus the warp's reach
    pad = int(np.ceil(d.elastic * side)) + 2
    diag = int(np.ceil(np.hypot(w * sx, h * sy))) + 2 * pad
    forward = cv2.getRotationMatrix2D((0.0, 0.0), angle, 1.0) @ np.diag([sx, sy, 1.0])
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    # the shape's centre to the canvas centre, by whole pixels (no rotation: no resampling blur)
    forward[:, 2] = np.round((diag - 1) / 2 - forward[:, :2] @ centre)

    def warp(a: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(a.astype(np.float32), forward, (diag, diag), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    soft = warp(mask)
    moved = warp(values * mask) if values is not None else None
    if d.elastic > 0:
        sigma = max(1.0, d.smoothness * side)
        field = rng.standard_normal((2, diag, diag)).astype(np.float32)
        field = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in field])
        field *= d.elastic * side / max(float(np.abs(field).max()), 1e-6)
        gx, gy = np.meshgrid(np.arange(diag, dtype=np.float32), np.arange(diag, dtype=np.float32))

        def remap(a: np.ndarray) -> np.ndarray:
            return cv2.remap(a, gx + field[0], gy + field[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0)

        soft = remap(soft)
        moved = remap(moved) if moved is not None else None
    out = (soft > 0.5).astype(np.uint8)
    ys, xs = np.nonzero(out)
    if ys.size == 0:
        return mask, values
    crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    if moved is not None:
        # the warped values were weighted by the warped mask's coverage: divide it back out
        moved = np.where(out > 0, moved / np.maximum(soft, 1e-6), 0.0).astype(np.float32)
        moved = np.ascontiguousarray(moved[crop])
    return np.ascontiguousarray(out[crop]), moved


# ---------------------------------------------------------------- the shading a structure carries

SHADING_FLOOR = 0.55  # inside the outline a shading map is >= this (> 0.5: the outline reads as a mask)
SHADING_PERCENTILES = (2.0, 98.0)  # the darkness range of one defect that the map stretches to [floor, 1]


def shading_map(image: np.ndarray, filled: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """HxW float32: 0 outside `mask`; inside, in [SHADING_FLOOR, 1], where the defect is
    darker than the surface filled in without it (`fill_outlines`), relative to the defect's
    own range: 1 its darkest pixels, the floor its brightest (specular rims). The structure
    MIDG paints photographs from: the filled outline alone leaves the defect module nothing
    to follow inside it, and with a few dozen pits to learn from it paints their mean, a flat
    dark blob. Stretched per defect because an absolute scale left the pattern inside a pit
    (core, rim, grain) in about a tenth of the map's range (BSData: inner IQR 0.82-0.91),
    which the defect module smoothed away; how dark a pit is overall the module reads from
    the surface it paints on."""
    def grey(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float32)
        return a.mean(axis=2) if a.ndim == 3 else a

    inside = np.asarray(mask) > 0
    darker = (grey(filled) - grey(image)) / 255.0
    level = np.ones(darker.shape, np.float32)
    if inside.sum() >= 4:
        lo, hi = np.percentile(darker[inside], SHADING_PERCENTILES)
        if hi - lo > 1e-3:
            level = np.clip((darker - lo) / (hi - lo), 0.0, 1.0)
    return np.where(inside, SHADING_FLOOR + (1.0 - SHADING_FLOOR) * level, 0.0).astype(np.float32)
