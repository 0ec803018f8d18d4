"""Placement without templates: new defects go where the surface looks like the real
defects' surroundings (on BSData pits sit on the thread flanks, not on the background).

    model = fit_surface_model(dataset)                  # JSON-able; stats.json["surface"]
    r = ratio_map(image, model)                         # HxW: how much likelier a defect is here
    rects = sample_surface_rectangles(rng, image, stats, model, ["pitting"], n=2)

The surface is described per pixel at the defects' own scale (a box filter of the median
real box's shorter side): local brightness, local contrast (standard deviation) and
gradient energy of the grey image. Each feature is cut into quantile bins over the
training images; the model is the smoothed ratio p(cell | under a real defect) / p(cell)
over the joint cells, times, for colour images, the same ratio over the joint cells of the
local colour (R - G and G - B): BSData's pits sit on grey-khaki steel, and without colour
MIDG put a fifth of them on pink, out-of-focus background the real pits avoid (the
classifier of C2ST was surest of exactly those: BENCHMARKS.md, BSData),
measured on the defect images with their defects filled in from the surroundings when
outlines exist (what a normal image shows there), else with the box as it is. Sampling is
the conductor sampler's (masks.py) with this ratio in place of the conductor fraction:
uniform candidates, one picked with weight r(centre) (sampling-importance-resampling), so
the picked places follow the real defects' distribution over the surface.
No network, no template: a few histograms fitted from the N annotated images.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

from .masks import Rect, resample_rectangles, to_gray

BINS = 6  # quantile bins per feature (BINS**3 cells)
SMOOTHING = 1.0  # one pseudo-box spread over the cells: an unseen surface stays possible, just unlikely
MAX_PIXELS = 200_000  # background pixels sampled per image for the p(bin) histogram
FORMAT = "midg-surface-placement-1"


def surface_features(image: np.ndarray, scale: int) -> np.ndarray:
    """HxWx3 float32: local mean, local standard deviation and gradient energy of the grey
    image, each over a `scale` x `scale` box."""
    g = to_gray(image).astype(np.float32)
    k = (max(1, int(scale)),) * 2
    mean = cv2.blur(g, k)
    std = np.sqrt(np.maximum(cv2.blur(g * g, k) - mean * mean, 0.0))
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
    energy = cv2.blur(np.sqrt(gx * gx + gy * gy), k)
    return np.stack([mean, std, energy], axis=-1)


def colour_features(image: np.ndarray, scale: int) -> np.ndarray | None:
    """HxWx2 float32: local mean of R - G and of G - B (RGB in [0, 255]) over a `scale` box;
    None for a grey image (or RGB with equal channels, grey stored as colour)."""
    if image.ndim != 3 or image.shape[2] < 3:
        return None
    rgb = image[..., :3].astype(np.float32)
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return None
    k = (max(1, int(scale)),) * 2
    return np.stack([cv2.blur(rgb[..., 0] - rgb[..., 1], k), cv2.blur(rgb[..., 1] - rgb[..., 2], k)], axis=-1)


def _ratio_table(feats: Sequence[np.ndarray], boxes: Sequence[Sequence[Rect]], rng: np.random.Generator
                 ) -> tuple[list[list[float]], np.ndarray]:
    """Quantile bin edges per feature and the smoothed ratio p(cell | under a real defect) /
    p(cell) over the joint cells (each real box weighs 1), scaled to a maximum of 1."""
    nf = feats[0].shape[-1]
    cells_n = BINS ** nf
    sample = np.concatenate([f.reshape(-1, nf)[rng.integers(0, f.shape[0] * f.shape[1],
                                                            min(MAX_PIXELS, f.shape[0] * f.shape[1]))]
                             for f in feats])
    edges = [np.quantile(sample[:, j], np.linspace(0, 1, BINS + 1)[1:-1]).tolist() for j in range(nf)]
    everywhere = np.zeros(cells_n)
    under = np.zeros(cells_n)
    for f, bs in zip(feats, boxes):
        cells = _cells(f, edges)
        everywhere += np.bincount(cells.ravel(), minlength=cells_n)
        for x1, y1, x2, y2 in bs:
            under += np.bincount(cells[y1:y2, x1:x2].ravel(), minlength=cells_n) / max(1, (x2 - x1) * (y2 - y1))
    p_under = (under + SMOOTHING / cells_n) / (under.sum() + SMOOTHING)
    p_all = (everywhere + 1.0) / (everywhere.sum() + cells_n)
    ratio = p_under / p_all
    return edges, ratio / ratio.max()


def _cells(features: np.ndarray, edges: Sequence[Sequence[float]]) -> np.ndarray:
    idx = np.zeros(features.shape[:-1], np.int64)
    for f in range(features.shape[-1]):
        idx = idx * BINS + np.searchsorted(np.asarray(edges[f]), features[..., f], side="right")
    return idx


def fit_surface_model(images: Sequence[np.ndarray], boxes: Sequence[Sequence[Rect]], scale: int,
                      seed: int = 0) -> dict[str, Any]:
    """The ratio table from defect images (their defects already filled in, when outlines
    exist) and their integer boxes, plus a colour table ("colour") when every image is in
    colour. Deterministic for a given seed. (A joint table over the three grey features: on
    BSData N=50 seed 0 it told held-out pits from random pixels with ROC AUC 0.81, a product
    of per-feature ratios 0.72.)"""
    rng = np.random.default_rng(seed)
    edges, ratio = _ratio_table([surface_features(im, scale) for im in images], boxes, rng)
    model = {"format": FORMAT, "scale": int(scale), "bins": BINS, "edges": edges,
             "ratio": [round(float(v), 6) for v in ratio]}
    colour = [colour_features(im, scale) for im in images]
    if colour and all(c is not None for c in colour):
        c_edges, c_ratio = _ratio_table(colour, boxes, rng)
        model["colour"] = {"edges": c_edges, "ratio": [round(float(v), 6) for v in c_ratio]}
    return model


def ratio_map(image: np.ndarray, model: dict[str, Any]) -> np.ndarray:
    """HxW float32: the model's ratio at every pixel of `image` (at most 1); times its colour
    table's where the model has one and the image is in colour."""
    cells = _cells(surface_features(image, model["scale"]), model["edges"])
    ratio = np.asarray(model["ratio"], np.float32)[cells]
    colour = colour_features(image, model["scale"]) if "colour" in model else None
    if colour is not None:
        ratio = ratio * np.asarray(model["colour"]["ratio"], np.float32)[_cells(colour, model["colour"]["edges"])]
    return ratio


def check_model(model: Any) -> bool:
    """The keys and shapes `ratio_map` reads (a stats.json from elsewhere may lack them)."""
    return (isinstance(model, dict) and model.get("format") == FORMAT and isinstance(model.get("scale"), int)
            and model.get("bins") == BINS and isinstance(model.get("edges"), list) and len(model["edges"]) == 3
            and all(isinstance(e, list) and len(e) == BINS - 1 for e in model["edges"])
            and isinstance(model.get("ratio"), list) and len(model["ratio"]) == BINS ** 3
            and ("colour" not in model or _check_colour(model["colour"])))


def _check_colour(part: Any) -> bool:
    return (isinstance(part, dict) and isinstance(part.get("edges"), list) and len(part["edges"]) == 2
            and all(isinstance(e, list) and len(e) == BINS - 1 for e in part["edges"])
            and isinstance(part.get("ratio"), list) and len(part["ratio"]) == BINS ** 2)


def sample_surface_rectangles(rng: np.random.Generator, image: np.ndarray, stats: dict[str, Any],
                              model: dict[str, Any], classes: Sequence[str], n: int, margin: int = 4,
                              candidates: int = 64, avoid: Sequence[Rect] = (),
                              class_weights: Sequence[float] | None = None, pad: int = 0) -> list[tuple[str, Rect]]:
    """Up to `n` (class, rect) pairs, as `masks.sample_rectangles` (same sizes, the same
    randomness per iteration), each place picked with weight ratio(centre)."""
    ratio = ratio_map(image, model)

    def weigh(cs, xs, ys, rw, rh, ok):
        return ratio[ys + rh // 2, xs + rw // 2].astype(np.float64) + 1e-9

    return resample_rectangles(rng, image.shape[:2], stats, classes, n, weigh, margin, candidates, avoid,
                               class_weights, pad)


def placement_auc(model: dict[str, Any], images: Sequence[np.ndarray], boxes: Sequence[Sequence[Rect]],
                  seed: int = 0, per_image: int = 200) -> float:
    """How well the ratio tells real defect centres from random pixels of the same images
    (ROC AUC; 0.5: no better than uniform placement). For held-out images."""
    rng = np.random.default_rng(seed)
    pos, neg = [], []
    for im, bs in zip(images, boxes):
        r = ratio_map(im, model)
        h, w = r.shape
        pos += [float(r[(y1 + y2) // 2, (x1 + x2) // 2]) for x1, y1, x2, y2 in bs]
        neg += r[rng.integers(0, h, per_image), rng.integers(0, w, per_image)].astype(float).tolist()
    pos_a, neg_a = np.asarray(pos), np.asarray(neg)
    greater = (pos_a[:, None] > neg_a[None, :]).mean()
    ties = (pos_a[:, None] == neg_a[None, :]).mean()
    return float(greater + 0.5 * ties)
