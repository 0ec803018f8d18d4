"""Defect crops: a square context window around every box, resized to one size.

Every metric of `midg evaluate-generator` looks at defects through these crops, so real
and synthetic sets are compared at the same scale whatever their image sizes. A crop is
float32 CxSxS in [0, 1] (C = 1 grayscale or 3 RGB, chosen once for all sets), cut with
the generator's own `context_window`, so the metrics see what the generator sees.

    crops = defect_crops(load_dataset("data/demo"), ("test",), class_names, channels=1, size=32)
    crops.x.shape   # (N, 1, 32, 32); crops.y: class indices into class_names
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from midg.datasets.boxes import Box
from midg.datasets.errors import DatasetError
from midg.datasets.images import read_image
from midg.datasets.layout import Dataset, ImageEntry

from ..crops import context_window, extract_crop

# How the crops used are written into metrics.json: one string per crop (strings keep
# `dvc metrics show` free of thousands of coordinates). The image path comes last so a
# name with spaces still splits cleanly with `str.split(maxsplit=5)`.
CROP_FORMAT = "class x1 y1 x2 y2 image"


@dataclass(frozen=True)
class CropRef:
    image: str  # path relative to its dataset root
    box: Box
    split: str


@dataclass
class CropSet:
    x: np.ndarray  # (N, C, S, S) float32 in [0, 1]
    y: np.ndarray  # (N,) int64 class index into the shared class list
    refs: list[CropRef]

    def __len__(self) -> int:
        return len(self.refs)

    def take(self, idx: Sequence[int] | np.ndarray) -> "CropSet":
        idx = np.asarray(idx, dtype=np.int64)
        return CropSet(self.x[idx], self.y[idx], [self.refs[i] for i in idx])

    def describe(self, names: Sequence[str]) -> list[str]:
        """The crops as metrics.json lists them (see CROP_FORMAT)."""
        return [f"{names[y]} {r.box.x1:g} {r.box.y1:g} {r.box.x2:g} {r.box.y2:g} {r.image}"
                for r, y in zip(self.refs, self.y.tolist())]

    def per_class(self, n_classes: int) -> list[int]:
        return np.bincount(self.y, minlength=n_classes).tolist()


def empty_cropset(channels: int, size: int) -> CropSet:
    return CropSet(np.zeros((0, channels, size, size), np.float32), np.zeros(0, np.int64), [])


def concat(sets: Sequence[CropSet]) -> CropSet:
    sets = [s for s in sets if len(s)]
    if not sets:
        raise ValueError("concat needs at least one non-empty crop set")
    return CropSet(np.concatenate([s.x for s in sets]), np.concatenate([s.y for s in sets]),
                   [r for s in sets for r in s.refs])


def class_map(dataset: Dataset, class_names: Sequence[str]) -> list[int]:
    """Index of each of the dataset's classes in `class_names` (matched by name)."""
    missing = [n for n in dataset.names if n not in class_names]
    if missing:
        raise DatasetError(dataset.root / "data.yaml",
                           f"classes {missing} are not classes of the real dataset ({list(class_names)})")
    return [list(class_names).index(n) for n in dataset.names]


def dataset_channels(dataset: Dataset, sample: int = 16) -> int:
    """3 when any of the first `sample` images has colour, else 1 (0 when there are none).

    An RGB file whose three channels are equal counts as grey: DeepPCB holds a few such
    JPEGs among its greyscale ones, and they must not turn the whole comparison to RGB.
    """
    entries = [e for split in dataset.splits for e in dataset.images(split)][:sample]
    if not entries:
        return 0
    for entry in entries:
        image = read_image(dataset.path(entry.file))
        if image.ndim == 3 and not (np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])):
            return 3
    return 1


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1 and image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if channels == 3 and image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    return image


def pixel_rect(box: Box | Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The smallest integer rectangle covering a (float) box, clipped to the image."""
    x1, y1, x2, y2 = box.xyxy() if isinstance(box, Box) else box
    rx1, ry1 = max(0, int(math.floor(x1))), max(0, int(math.floor(y1)))
    rx2, ry2 = min(width, int(math.ceil(x2))), min(height, int(math.ceil(y2)))
    return rx1, ry1, max(rx2, rx1 + 1), max(ry2, ry1 + 1)


def carried_boxes(dataset: Dataset) -> dict[str, np.ndarray]:
    """image -> Kx4 xyxy: the real labels an annotated canvas carried into a synthetic set
    (meta.json `canvases[].real_boxes`; `midg generate --canvas annotated`). The generator
    did not make them, so no metric of what it made may count them; a real set has none."""
    out: dict[str, np.ndarray] = {}
    for c in (dataset.meta or {}).get("canvases") or []:
        if c.get("real_boxes"):
            out[c["image"]] = np.asarray([b[1:5] for b in c["real_boxes"]], np.float64)
    return out


def _carried(box: Box, carried: np.ndarray | None) -> bool:
    # the labels went through YOLO/COCO files: equal to well under a pixel, not bit for bit
    return carried is not None and bool((np.abs(carried - np.asarray(box.xyxy())).max(axis=1) < 0.05).any())


def annotated_images(dataset: Dataset, splits: Sequence[str], channels: int) -> Iterator[tuple[str, ImageEntry, np.ndarray]]:
    """(split, entry, image in `channels`) for every image with boxes, the entry's boxes
    without those carried over from an annotated canvas (`carried_boxes`); a size that
    disagrees with the annotation is an error naming the file."""
    carried = carried_boxes(dataset)
    for split in splits:
        for entry in dataset.images(split):
            if entry.file in carried:
                entry = dataclasses.replace(entry, boxes=tuple(b for b in entry.boxes
                                                               if not _carried(b, carried[entry.file])))
            if not entry.boxes:
                continue
            image = to_channels(read_image(dataset.path(entry.file)), channels)
            h, w = image.shape[:2]
            if (w, h) != (entry.width, entry.height):
                raise DatasetError(dataset.path(entry.file), f"image is {w}x{h} but its annotation says {entry.width}x{entry.height}")
            yield split, entry, image


def defect_crops(dataset: Dataset, splits: Sequence[str], class_names: Sequence[str], *, channels: int,
                 size: int = 32, context: float = 1.5, min_window: int = 24) -> CropSet:
    """One crop per box of the given splits, classes mapped onto `class_names` by name."""
    cmap = class_map(dataset, class_names)
    xs, ys, refs = [], [], []
    for split, entry, image in annotated_images(dataset, splits, channels):
        h, w = image.shape[:2]
        for box in entry.boxes:
            window = context_window(pixel_rect(box, w, h), (h, w), context=context, min_window=min_window)
            xs.append(extract_crop(image, window, size))
            ys.append(cmap[box.cls])
            refs.append(CropRef(entry.file, box, split))
    if not xs:
        return empty_cropset(channels, size)
    return CropSet(np.stack(xs).astype(np.float32), np.asarray(ys, np.int64), refs)


def surface_crops(dataset: Dataset, splits: Sequence[str], *, channels: int, seed: int, size: int = 32,
                  context: float = 1.5, min_window: int = 24, tries: int = 20) -> CropSet:
    """Per box, a crop of the same geometry around a box of the same size moved to a random
    place of the same image that overlaps no box: the surface the defects sit on, without them.

    One-class sources have no class for a reference CNN to learn: "defect or surface" is
    the in-domain task whose features FD and KID then read. Boxes with no free place in
    `tries` draws are skipped. Labelled class 0; seeded."""
    rng = np.random.default_rng(seed)
    xs, refs = [], []
    for split, entry, image in annotated_images(dataset, splits, channels):
        h, w = image.shape[:2]
        taken = [pixel_rect(b, w, h) for b in entry.boxes]
        for box in entry.boxes:
            bx1, by1, bx2, by2 = pixel_rect(box, w, h)
            bw, bh = bx2 - bx1, by2 - by1
            if bw >= w or bh >= h:
                continue
            for _ in range(tries):
                x1, y1 = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
                if not any(x1 < tx2 and tx1 < x1 + bw and y1 < ty2 and ty1 < y1 + bh for tx1, ty1, tx2, ty2 in taken):
                    window = context_window((x1, y1, x1 + bw, y1 + bh), (h, w), context=context, min_window=min_window)
                    xs.append(extract_crop(image, window, size))
                    refs.append(CropRef(entry.file, Box(0, x1, y1, x1 + bw, y1 + bh), split))
                    break
    if not xs:
        return empty_cropset(channels, size)
    return CropSet(np.stack(xs).astype(np.float32), np.zeros(len(xs), np.int64), refs)


def cap_per_class(crops: CropSet, max_per_class: int, rng: np.random.Generator) -> CropSet:
    """At most `max_per_class` crops of each class, drawn at random (order kept)."""
    if max_per_class <= 0:
        return crops
    keep = []
    for c in np.unique(crops.y):
        idx = np.flatnonzero(crops.y == c)
        if len(idx) > max_per_class:
            idx = np.sort(rng.choice(idx, max_per_class, replace=False))
        keep.append(idx)
    return crops.take(np.sort(np.concatenate(keep))) if keep else crops


def stratified_halves(y: np.ndarray, rng: np.random.Generator, first_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two disjoint parts of `y`, each class split `first_share` : rest."""
    a, b = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(len(idx) * first_share))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        a.append(idx[:k])
        b.append(idx[k:])
    cat = lambda parts: np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)  # noqa: E731
    return cat(a), cat(b)


def resolve_path(rel: str, *roots: Path | None) -> Path | None:
    """A path recorded in a meta.json: absolute, or relative to one of `roots`."""
    p = Path(rel)
    if p.is_absolute():
        return p if p.is_file() else None
    for root in roots:
        if root is not None and (Path(root) / p).is_file():
            return Path(root) / p
    return None


# --------------------------------------------------------------------------- C2ST crops
# The crops above are cut around the label box and resized: a generator's tells sit on the
# border of the rectangle it painted, which is often larger than the box of what changed,
# and resizing smooths one-pixel tells away. C2ST therefore looks at its own crops: the
# whole painted rectangle plus a margin, at native resolution, in a fixed canvas.

C2ST_CROP_RULE = ("painted rect (synthetic) or label box scaled by the set's median rect/box ratio (real), "
                  "grown by margin a side; native pixels: a canvas-sized window centred on it, "
                  "or the grown square resized to the canvas with INTER_AREA when bigger")


@dataclass(frozen=True)
class NativeCropConfig:
    canvas: int = 64  # side of every C2ST crop (pixels)
    margin: float = 0.25  # the region is grown by this share of its side, a side ...
    min_margin: int = 8  # ... but at least this many pixels


def grown_region(region: Sequence[float], margin: float, min_margin: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = region
    mx, my = max(margin * (x2 - x1), min_margin), max(margin * (y2 - y1), min_margin)
    return x1 - mx, y1 - my, x2 + mx, y2 + my


def native_crop(image: np.ndarray, region: Sequence[float], cfg: NativeCropConfig) -> np.ndarray:
    """CxSxS float32 crop (S = cfg.canvas) showing all of `region` grown by the margin.

    Where the grown region fits in the canvas, the crop is the canvas-sized window of the
    image centred on it, pixel for pixel (nothing is resampled, so one-pixel tells stay);
    a bigger region becomes the square around it resized with INTER_AREA. Real and
    synthetic crops go through this same function, so neither the resizing nor the
    padding (reflection, only for images smaller than the canvas) can tell them apart.
    """
    h, w = image.shape[:2]
    gx1, gy1, gx2, gy2 = grown_region(region, cfg.margin, cfg.min_margin)
    side = max(cfg.canvas, int(math.ceil(max(gx2 - gx1, gy2 - gy1))))
    if side > min(h, w):  # pad with a reflection so the window fits in the image
        p = side - min(h, w)
        image = cv2.copyMakeBorder(image, p, p, p, p, cv2.BORDER_REFLECT_101)
        gx1, gy1, gx2, gy2 = gx1 + p, gy1 + p, gx2 + p, gy2 + p
        h, w = image.shape[:2]
    cx, cy = (gx1 + gx2) / 2, (gy1 + gy2) / 2
    wx1 = min(max(int(round(cx - side / 2)), 0), w - side)
    wy1 = min(max(int(round(cy - side / 2)), 0), h - side)
    patch = image[wy1:wy1 + side, wx1:wx1 + side]
    if side > cfg.canvas:
        patch = cv2.resize(patch, (cfg.canvas, cfg.canvas), interpolation=cv2.INTER_AREA)
    arr = patch.astype(np.float32) / 255.0
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _box_key(image: str, xyxy: Sequence[float]) -> tuple:
    return (image, *(round(float(v), 3) for v in xyxy))


def meta_rects(dataset: Dataset) -> dict[tuple, list[float]]:
    """{(image, box corners): painted rect} from a synthetic set's meta.json `defects`."""
    out = {}
    for d in dataset.meta.get("defects", []) or []:
        if isinstance(d, dict) and "rect" in d and "box" in d and "image" in d and d["box"] is not None:
            out[_box_key(d["image"], d["box"])] = [float(v) for v in d["rect"]]
    return out


def rect_box_ratio(dataset: Dataset) -> tuple[float, float]:
    """Median painted-rect side over label-box side (x, y) of a synthetic set, at least 1.

    Real defects have no painted rectangle; their box scaled by this ratio (about its
    centre) gives real crops the size distribution of the synthetic ones, so the amount
    of board a crop shows (and whether it is resized) is no tell. 1 without meta rects.
    """
    rx, ry = [], []
    for d in dataset.meta.get("defects", []) or []:
        if not (isinstance(d, dict) and d.get("rect") and d.get("box")):
            continue
        (x1, y1, x2, y2), (bx1, by1, bx2, by2) = d["rect"], d["box"]
        if bx2 > bx1 and by2 > by1:
            rx.append((x2 - x1) / (bx2 - bx1))
            ry.append((y2 - y1) / (by2 - by1))
    if not rx:
        return (1.0, 1.0)
    return (max(1.0, float(np.median(rx))), max(1.0, float(np.median(ry))))


def on_template(image: np.ndarray, template: np.ndarray, boxes: Sequence[Box], threshold: int) -> np.ndarray:
    """The template with each box's real defect put in: the pixels that changed (the one
    definition of "changed", augment/boxes.py) take the defect image's values, every other
    pixel stays the template's. A perfect copy of the defect on the surface a generator
    paints on, for paired sources (their templates are the normals)."""
    from ..boxes import changed_pixels, drop_small_components

    out = template.copy()
    h, w = image.shape[:2]
    for b in boxes:
        x1, y1 = max(int(math.floor(b.x1)), 0), max(int(math.floor(b.y1)), 0)
        x2, y2 = min(int(math.ceil(b.x2)), w), min(int(math.ceil(b.y2)), h)
        if x2 <= x1 or y2 <= y1:
            continue
        changed = drop_small_components(changed_pixels(template, image, (x1, y1, x2, y2), threshold)) > 0
        out[y1:y2, x1:x2][changed] = image[y1:y2, x1:x2][changed]
    return out


def template_defect_crops(dataset: Dataset, splits: Sequence[str], class_names: Sequence[str], *, channels: int,
                          threshold: int, cfg: NativeCropConfig = NativeCropConfig(),
                          box_scale: tuple[float, float] = (1.0, 1.0)) -> CropSet:
    """`native_defect_crops` of the real boxes, cut from `on_template` images: the real
    defects on their own templates. Images without an aligned template are left out."""
    cmap = class_map(dataset, class_names)
    sx, sy = box_scale
    xs, ys, refs = [], [], []
    for split in splits:
        for entry in dataset.images(split):
            if not entry.boxes or entry.template is None:
                continue
            image = to_channels(read_image(dataset.path(entry.file)), channels)
            template = to_channels(read_image(dataset.path(entry.template)), channels)
            if template.shape != image.shape:
                continue  # not aligned: nothing to put the defect on
            composed = on_template(image, template, entry.boxes, threshold)
            for box in entry.boxes:
                cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
                hw, hh = (box.x2 - box.x1) * sx / 2, (box.y2 - box.y1) * sy / 2
                xs.append(native_crop(composed, [cx - hw, cy - hh, cx + hw, cy + hh], cfg))
                ys.append(cmap[box.cls])
                refs.append(CropRef(entry.file, box, split))
    if not xs:
        return empty_cropset(channels, cfg.canvas)
    return CropSet(np.stack(xs).astype(np.float32), np.asarray(ys, np.int64), refs)


def native_defect_crops(dataset: Dataset, splits: Sequence[str], class_names: Sequence[str], *, channels: int,
                        cfg: NativeCropConfig = NativeCropConfig(), box_scale: tuple[float, float] = (1.0, 1.0),
                        use_rects: bool = True) -> CropSet:
    """One native crop (see `native_crop`) per box of the given splits.

    The region of a box is its painted rectangle when the set's meta.json lists one for
    it (`use_rects`), else the box scaled by `box_scale` about its centre.
    """
    cmap = class_map(dataset, class_names)
    rects = meta_rects(dataset) if use_rects else {}
    sx, sy = box_scale
    xs, ys, refs = [], [], []
    for split, entry, image in annotated_images(dataset, splits, channels):
        for box in entry.boxes:
            region = rects.get(_box_key(entry.file, box.xyxy()))
            if region is None:
                cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
                hw, hh = (box.x2 - box.x1) * sx / 2, (box.y2 - box.y1) * sy / 2
                region = [cx - hw, cy - hh, cx + hw, cy + hh]
            xs.append(native_crop(image, region, cfg))
            ys.append(cmap[box.cls])
            refs.append(CropRef(entry.file, box, split))
    if not xs:
        return empty_cropset(channels, cfg.canvas)
    return CropSet(np.stack(xs).astype(np.float32), np.asarray(ys, np.int64), refs)
