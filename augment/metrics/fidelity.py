"""Pixel-level fidelity: boxes, shapes and inpainting fill (seams: seams.py).

- Box fidelity: a synthetic set's meta.json lists every defect with its normal image,
  rectangle and derived box. The truth is what changed: pixels that differ from the normal
  by more than `threshold` grey levels inside the rectangle (specks under `min_area` pixels
  ignored). The IoU of the derived box with the tight box of that region says whether the
  labels a detector learns from are where the defect is. On a real dataset with aligned
  templates the same check of the annotated boxes is the reference.
- Shape fidelity: for defects drawn from a user's `--shape`, the IoU between the shape
  (resized to the rectangle, filled) and the changed pixels.
- Inpainting fidelity: on real images with an aligned defect-free template, a rectangle
  around each defect is filled from its surroundings and compared with the template there
  (PSNR, SSIM over the hole's pixels), for the checkpoint and for OpenCV's Telea and
  Navier-Stokes inpainting as baselines. Computed on crops at the generator's crop size.
- Seam score: in seams.py.

    box_fidelity(load_dataset("data/synthetic/midg"), normal_roots=[Path("data/demo")])
    ssim(a, b)            # a, b: HxW or HxWxC floats in [0, 1]; 1.0 when identical
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
from rich.progress import Progress

from midg.datasets.boxes import Box, iou
from midg.datasets.errors import DatasetError
from midg.datasets.images import read_image
from midg.datasets.layout import Dataset

from ..boxes import MIN_COMPONENT_PX, THRESHOLD, changed_pixels, drop_small_components
from ..crops import context_window, extract_crop, from_chw, hole_mask
from .classifier import progress_wanted
from .crops import pixel_rect, resolve_path, to_channels

PSNR_CAP_DB = 100.0  # identical fills have infinite PSNR; averages use this cap instead

# --------------------------------------------------------------------------- PSNR / SSIM


def psnr(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels, or those where `mask` is set; inf if equal."""
    diff = (np.asarray(pred, np.float64) - np.asarray(truth, np.float64)) ** 2
    if mask is not None:
        diff = diff[np.broadcast_to(mask.astype(bool), diff.shape)]
    mse = float(diff.mean())
    return math.inf if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, sigma: float = 1.5) -> np.ndarray:
    """Structural similarity per pixel (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5,
    K1 = 0.01, K2 = 0.03, population (not sample) covariances, mirrored borders.

    `a`, `b`: HxW or HxWxC; a colour image gives one map per channel (HxWxC).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs equal shapes, got {a.shape} and {b.shape}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), sigma, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """Mean SSIM over all pixels, or over those where `mask` (HxW) is set.

    scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)` has the same map but leaves a 5-pixel border out of
    its full-image mean; here every pixel counts (a hole may touch the crop's edge).
    """
    m = ssim_map(a, b, data_range)
    if mask is None:
        return float(m.mean())
    sel = mask.astype(bool)
    return float(m[sel].mean()) if m.ndim == 2 else float(m[sel, :].mean())


# --------------------------------------------------------------------------- changed pixels


def changed_mask(image: np.ndarray, normal: np.ndarray, rect: Sequence[int], threshold: int = THRESHOLD,
                 min_area: int = MIN_COMPONENT_PX) -> np.ndarray:
    """Boolean mask (rect-sized) of pixels inside `rect` that differ from `normal` by more
    than `threshold` grey levels in any channel; connected specks under `min_area` dropped."""
    # the generator's own definition of "changed", so box fidelity measures the same thing
    return drop_small_components(changed_pixels(normal, image, tuple(rect), threshold), min_area).astype(bool)


def tight_box(mask: np.ndarray, offset: tuple[int, int] = (0, 0), cls: int = 0) -> Box | None:
    """The tight box (x2/y2 exclusive) of a boolean mask, shifted by `offset` = (x, y)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    ox, oy = offset
    return Box(cls, float(xs.min() + ox), float(ys.min() + oy), float(xs.max() + 1 + ox), float(ys.max() + 1 + oy))


def box_iou_with_change(box: Box, changed: np.ndarray, rect: Sequence[int]) -> float:
    """IoU of `box` with the tight box of the changed pixels in `rect` (0 when nothing changed)."""
    truth = tight_box(changed, (rect[0], rect[1]), box.cls)
    return iou(box, truth) if truth is not None else 0.0


class _ImageCache:
    """A few decoded images: defects of one image, and their shared normal, are read once."""

    def __init__(self, size: int = 8):
        self.size = size
        self.items: OrderedDict[Path, np.ndarray] = OrderedDict()

    def get(self, path: Path, channels: int | None = None) -> np.ndarray:
        key = Path(path)
        if key not in self.items:
            self.items[key] = read_image(key)
            if len(self.items) > self.size:
                self.items.popitem(last=False)
        self.items.move_to_end(key)
        img = self.items[key]
        return to_channels(img, channels) if channels else img


def _iou_summary(ious: list[float]) -> dict[str, Any]:
    arr = np.asarray(ious, np.float64)
    if not len(arr):
        return {"mean_iou": None, "median_iou": None, "share_iou_50": None, "share_iou_75": None, "n": 0}
    return {"mean_iou": float(arr.mean()), "median_iou": float(np.median(arr)), "share_iou_50": float((arr >= 0.5).mean()),
            "share_iou_75": float((arr >= 0.75).mean()), "n": int(len(arr))}


def meta_defects(dataset: Dataset) -> list[dict[str, Any]]:
    """The `defects` list of a synthetic set's meta.json (empty when there is none), checked."""
    defects = dataset.meta.get("defects", [])
    where = dataset.root / "meta.json"
    if not isinstance(defects, list):
        raise DatasetError(where, "'defects' must be a list")
    for i, d in enumerate(defects):
        if not isinstance(d, dict) or "image" not in d or "rect" not in d:
            raise DatasetError(where, f"defects[{i}] needs at least 'image' and 'rect'")
        rect = d["rect"]
        if not (isinstance(rect, list) and len(rect) == 4 and all(isinstance(v, (int, float)) for v in rect)):
            raise DatasetError(where, f"defects[{i}].rect must be [x1, y1, x2, y2], got {rect!r}")
    return defects


def dropped_count(dataset: Dataset) -> int:
    dropped = dataset.meta.get("dropped", 0)
    if isinstance(dropped, list):
        return len(dropped)
    if isinstance(dropped, dict):  # e.g. {"count": n, ...} or per-class counts
        if isinstance(dropped.get("count"), int):
            return dropped["count"]
        return int(sum(v for v in dropped.values() if isinstance(v, int)))
    return int(dropped) if isinstance(dropped, (int, float)) else 0


def _int_rect(rect: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    return pixel_rect(list(rect), width, height)


def _defect_box(d: dict[str, Any], names: Sequence[str]) -> Box | None:
    box = d.get("box")
    if box is None:
        return None
    cls = d.get("class", 0)
    cls = names.index(cls) if isinstance(cls, str) and cls in names else (cls if isinstance(cls, int) else 0)
    return Box(cls, *map(float, box))


def box_fidelity(dataset: Dataset, normal_roots: Sequence[Path | None] = (), *, threshold: int = THRESHOLD,
                 min_area: int = MIN_COMPONENT_PX, max_defects: int = 0, seed: int = 0) -> dict[str, Any]:
    """Derived boxes of a synthetic set against what changed; share of dropped generations.

    Normals named in meta.json are found as absolute paths, or relative to the synthetic
    set, to the set's recorded `normals` folder, or to one of `normal_roots`.
    """
    defects = meta_defects(dataset)
    n_dropped = dropped_count(dataset)
    # `midg generate` lists dropped defects too (with "box": null); other writers may not
    listed_dropped = sum(1 for d in defects if d.get("box") is None)
    total = len(defects) + max(0, n_dropped - listed_dropped)
    out: dict[str, Any] = {"dropped": n_dropped, "dropped_share": n_dropped / total if total else None,
                           "threshold": threshold, "min_area": min_area}
    defects = [d for d in defects if d.get("box") is not None]
    if not defects:
        out.update(_iou_summary([]))
        out["note"] = "meta.json lists no defects"
        return out
    idx = np.arange(len(defects))
    if max_defects and len(idx) > max_defects:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_defects, replace=False))
    roots = _normal_roots(dataset, normal_roots)
    cache = _ImageCache()
    ious, coverage, missing = [], [], 0
    by_class: dict[str, list[float]] = {}
    for i in idx:
        d = defects[i]
        box = _defect_box(d, dataset.names)
        normal_path = resolve_path(str(d.get("normal", "")), *roots) if d.get("normal") else None
        if box is None or normal_path is None:
            missing += 1
            continue
        image = cache.get(dataset.path(d["image"]))
        normal = cache.get(normal_path, 1 if image.ndim == 2 else 3)  # a grey normal of an RGB-saved image
        if image.shape != normal.shape:
            raise DatasetError(normal_path, f"normal is {normal.shape[1]}x{normal.shape[0]} but {d['image']} is "
                                            f"{image.shape[1]}x{image.shape[0]}")
        rect = _int_rect(d["rect"], image.shape[1], image.shape[0])
        changed = changed_mask(image, normal, rect, threshold, min_area)
        ious.append(box_iou_with_change(box, changed, rect))
        if changed.any():  # share of the changed pixels that the box covers
            bx = _int_rect(box.xyxy(), image.shape[1], image.shape[0])
            inside = changed[max(bx[1] - rect[1], 0):max(bx[3] - rect[1], 0), max(bx[0] - rect[0], 0):max(bx[2] - rect[0], 0)]
            coverage.append(float(inside.sum() / changed.sum()))
        name = dataset.names[box.cls] if 0 <= box.cls < len(dataset.names) else str(box.cls)
        by_class.setdefault(name, []).append(ious[-1])
    out.update(_iou_summary(ious))
    out["mean_coverage"] = float(np.mean(coverage)) if coverage else None
    out["per_class"] = {k: _iou_summary(v)["mean_iou"] for k, v in sorted(by_class.items())}
    if missing:
        out["skipped"] = missing
        out["note"] = f"{missing} defects without a findable normal image were skipped"
    return out


def _recorded(dataset: Dataset, key: str) -> str | None:
    """`key` as a synthetic set's meta.json records it: top level, `params`, `generate` or
    `generate.params` (where `midg generate` writes its normals folder and shape)."""
    meta = dataset.meta
    gen = meta.get("generate") if isinstance(meta.get("generate"), dict) else {}
    for place in (meta, meta.get("params"), gen, gen.get("params")):
        if isinstance(place, dict) and isinstance(place.get(key), str):
            return place[key]
    return None


def _normal_roots(dataset: Dataset, extra: Sequence[Path | None]) -> list[Path]:
    """Where a defect's `normal` may live: the set itself, its recorded normals folder
    (as given, i.e. relative to the working directory, or to the set), then `extra`."""
    roots: list[Path] = [dataset.root]
    recorded = _recorded(dataset, "normals")
    if recorded:
        roots += [Path(recorded), dataset.root / recorded]
    roots.extend(Path(r) for r in extra if r is not None)
    return roots


def pair_box_fidelity(dataset: Dataset, *, threshold: int = THRESHOLD, min_area: int = MIN_COMPONENT_PX, margin: float = 0.25,
                      max_boxes: int = 0, seed: int = 0) -> dict[str, Any]:
    """The same IoU for a real dataset with aligned templates: each annotated box against the
    tight box of what differs from the template in the box grown by `margin` (and 4 px)."""
    items = paired_rects(dataset, max_rects=max_boxes, seed=seed)
    if not items:
        return {**_iou_summary([]), "note": "no images with an aligned template"}
    cache = _ImageCache()
    ious = []
    for entry, box in items:
        image = cache.get(dataset.path(entry.file))
        template = cache.get(dataset.path(entry.template), 1 if image.ndim == 2 else 3)
        if template.shape != image.shape:
            continue
        g = margin * max(box.width, box.height) + 4
        rect = _int_rect([box.x1 - g, box.y1 - g, box.x2 + g, box.y2 + g], image.shape[1], image.shape[0])
        ious.append(box_iou_with_change(box, changed_mask(image, template, rect, threshold, min_area), rect))
    return {**_iou_summary(ious), "threshold": threshold, "min_area": min_area}


def label_convention(dataset: Dataset, margins: dict[str, list[float] | None], *, threshold: int = THRESHOLD,
                     min_area: int = MIN_COMPONENT_PX, grow: float = 0.0) -> dict[str, Any]:
    """Does a labelling convention reproduce the annotators' boxes? On a real dataset with
    aligned templates, each annotated box is compared (IoU) with what the convention would
    draw around the same defect: `learned`, the tight box of what changed (looked for in
    the box grown by `grow`: 0 by default, since on DeepPCB a wider search picks up
    neighbouring defects and edge noise, median IoU 0.16 at 0.5) grown by the class's
    median margin (`margins`, stats.json box_margin), with no rectangle to clip it; and
    `tight`, what changed alone. A convention
    that matched the annotators would give IoU near 1; IoU under 0.5 is a label a
    detector scored at IoU 0.5 would count as wrong. Per class and over all."""
    from midg.augment.labelling import grow_box  # the generator's own rule

    by: dict[str, dict[str, list[float]]] = {}
    cache = _ImageCache()
    for entry, box in paired_rects(dataset):
        image = cache.get(dataset.path(entry.file))
        template = cache.get(dataset.path(entry.template), 1 if image.ndim == 2 else 3)
        if template.shape != image.shape:
            continue
        g = grow * max(box.width, box.height)
        rect = _int_rect([box.x1 - g, box.y1 - g, box.x2 + g, box.y2 + g], image.shape[1], image.shape[0])
        tight = tight_box(changed_mask(image, template, rect, threshold, min_area), (rect[0], rect[1]), box.cls)
        if tight is None:
            continue
        name = dataset.names[box.cls]
        grown = grow_box((tight.x1, tight.y1, tight.x2, tight.y2), (-10**9, -10**9, 10**9, 10**9), margins.get(name))
        per = by.setdefault(name, {"learned": [], "tight": []})
        per["learned"].append(iou(box, Box(box.cls, *map(float, grown))))
        per["tight"].append(iou(box, tight))
    out: dict[str, Any] = {"per_class": {}, "threshold": threshold, "min_area": min_area}
    for style in ("learned", "tight"):
        every = [v for per in by.values() for v in per[style]]
        out[style] = _iou_summary(every)
        for name, per in by.items():
            out["per_class"].setdefault(name, {})[style] = _iou_summary(per[style])
    return out


# --------------------------------------------------------------------------- shape fidelity


def shape_mask(shape: np.ndarray, width: int, height: int) -> np.ndarray:
    """A shape image as a filled boolean silhouette of `height` x `width`.

    As `midg generate --shape` reads it: the shape is the side brighter than the image's
    mid-grey (draw it bright on dark). Closed outlines are filled, so an outline and a
    solid shape give the same silhouette.
    """
    gray = shape if shape.ndim == 2 else cv2.cvtColor(shape, cv2.COLOR_RGB2GRAY)
    fg = gray > (int(gray.max()) + int(gray.min())) / 2
    fg = cv2.resize(fg.astype(np.uint8) * 255, (width, height), interpolation=cv2.INTER_AREA) > 127
    contours, _ = cv2.findContours(fg.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros((height, width), np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool) | fg


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def shape_fidelity(dataset: Dataset, normal_roots: Sequence[Path | None] = (), *, threshold: int = THRESHOLD,
                   min_area: int = MIN_COMPONENT_PX) -> dict[str, Any] | None:
    """IoU between each requested shape and the changed pixels, for defects with edges == "shape".

    The shape file comes from the defect's `shape` entry, or the set's recorded `shape`
    (see `_recorded`). None when the set has no shape-driven defects.
    """
    defects = [d for d in meta_defects(dataset) if d.get("edges") == "shape" and d.get("box") is not None]
    if not defects:
        return None
    default = _recorded(dataset, "shape")
    roots = _normal_roots(dataset, normal_roots)
    cache = _ImageCache()
    ious, missing = [], 0
    for d in defects:
        shape_rel = d.get("shape") or default
        shape_path = resolve_path(str(shape_rel), *roots, Path.cwd()) if shape_rel else None
        normal_path = resolve_path(str(d.get("normal", "")), *roots) if d.get("normal") else None
        if shape_path is None or normal_path is None:
            missing += 1
            continue
        image = cache.get(dataset.path(d["image"]))
        normal = cache.get(normal_path, 1 if image.ndim == 2 else 3)
        if image.shape != normal.shape:
            raise DatasetError(normal_path, f"normal is {normal.shape[1]}x{normal.shape[0]} but {d['image']} is "
                                            f"{image.shape[1]}x{image.shape[0]}")
        rect = _int_rect(d["rect"], image.shape[1], image.shape[0])
        changed = changed_mask(image, normal, rect, threshold, min_area)
        want = shape_mask(cache.get(shape_path), rect[2] - rect[0], rect[3] - rect[1])
        ious.append(mask_iou(want, changed))
    out: dict[str, Any] = {"mean_iou": float(np.mean(ious)) if ious else None, "n": len(ious)}
    if missing:
        out["skipped"] = missing
        out["note"] = f"{missing} shape defects without a findable shape or normal file were skipped"
    return out


# --------------------------------------------------------------------------- inpainting fidelity

# An inpainter takes crops (B, C, S, S) and holes (B, 1, S, S), float32 in [0, 1], and
# returns the filled crops (B, C, S, S); only the hole's pixels of its output are used.
Inpainter = Callable[[np.ndarray, np.ndarray], np.ndarray]


def opencv_inpainter(flag: int, radius: int = 3) -> Inpainter:
    """cv2.inpaint (INPAINT_TELEA or INPAINT_NS) as an Inpainter, on 8-bit crops."""

    def run(crops: np.ndarray, holes: np.ndarray) -> np.ndarray:
        out = np.empty_like(crops)
        for i in range(len(crops)):
            img = from_chw(crops[i])
            mask = (holes[i, 0] > 0.5).astype(np.uint8) * 255
            filled = cv2.inpaint(img, mask, radius, flag)
            out[i] = filled[None].astype(np.float32) / 255.0 if filled.ndim == 2 else filled.transpose(2, 0, 1) / 255.0
        return out

    return run


def _hwc(crop: np.ndarray) -> np.ndarray:
    """CxSxS -> SxS (one channel) or SxSxC, the layout ssim() takes."""
    return crop[0] if crop.shape[0] == 1 else crop.transpose(1, 2, 0)


def paired_rects(dataset: Dataset, *, max_rects: int = 0, seed: int = 0) -> list[tuple[Any, Box]]:
    """(image entry, box) for every box of an image with an aligned template (a seeded sample)."""
    items = [(e, b) for s in dataset.splits for e in dataset.images(s) if e.template for b in e.boxes]
    if max_rects and len(items) > max_rects:
        keep = np.sort(np.random.default_rng(seed).choice(len(items), max_rects, replace=False))
        items = [items[i] for i in keep]
    return items


def inpainting_fidelity(dataset: Dataset, inpainters: dict[str, Inpainter], *, size: int, channels: int,
                        context: float = 2.0, min_window: int = 32, grow: int = 2, max_rects: int = 0, seed: int = 0,
                        batch: int = 32, show_progress: bool = True) -> dict[str, Any]:
    """PSNR and SSIM inside the hole of each inpainter's fill against the aligned template.

    The hole is each annotated box grown by `grow` pixels (so the defect's soft edge is in
    it); the crop around it comes from the defect image (the defect is hidden by the
    hole), the truth from the template at the same place.
    """
    items = paired_rects(dataset, max_rects=max_rects, seed=seed)
    if not items:
        return {"n_rects": 0, "note": "the real dataset has no images with an aligned template"}
    cache = _ImageCache()
    crops, holes, truths = [], [], []
    for entry, box in items:
        image = cache.get(dataset.path(entry.file), channels)
        template = cache.get(dataset.path(entry.template), channels)
        h, w = image.shape[:2]
        if template.shape != image.shape:
            raise DatasetError(dataset.path(entry.template), f"template is {template.shape[1]}x{template.shape[0]}, "
                                                             f"its image {entry.file} is {w}x{h}")
        rect = pixel_rect([box.x1 - grow, box.y1 - grow, box.x2 + grow, box.y2 + grow], w, h)
        window = context_window(rect, (h, w), context=context, min_window=min_window)
        crops.append(extract_crop(image, window, size))
        holes.append(hole_mask(rect, window, size))
        truths.append(extract_crop(template, window, size))
    x, m, t = np.stack(crops), np.stack(holes), np.stack(truths)
    results: dict[str, Any] = {}
    with Progress(transient=True, disable=not progress_wanted(show_progress)) as progress:
        for name, fn in inpainters.items():
            task = progress.add_task(f"inpainting ({name})", total=len(x))
            fills = []
            for i in range(0, len(x), batch):
                fills.append(np.asarray(fn(x[i:i + batch], m[i:i + batch]), np.float32))
                progress.update(task, advance=len(fills[-1]))
            fill = np.clip(np.concatenate(fills), 0, 1)
            comp = m * fill + (1 - m) * x  # only the hole comes from the inpainter
            p, s = [], []
            for k in range(len(x)):
                hole = m[k, 0] > 0.5
                p.append(min(psnr(comp[k], t[k], hole[None]), PSNR_CAP_DB))
                s.append(ssim(_hwc(comp[k]), _hwc(t[k]), hole))
            results[name] = {"psnr": float(np.mean(p)), "ssim": float(np.mean(s))}
    return {"n_rects": len(x), "crop_size": size, "context": context, "grow": grow, "methods": results}


def defect_rects(dataset: Dataset) -> tuple[list[tuple[str, Sequence[float]]], str]:
    """The painted rectangles of a synthetic set (meta.json), else every labelled box."""
    defects = meta_defects(dataset)
    if defects:
        return [(d["image"], d["rect"]) for d in defects], "meta rects"
    return [(e.file, b.xyxy()) for s in dataset.splits for e in dataset.images(s) for b in e.boxes], "boxes"
