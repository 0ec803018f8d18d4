"""Edge contrast: does a defect's own boundary look like a real defect's?

The seam score looks at a painted rectangle's border; once a defect keeps a ring of
untouched surface inside its rectangle (augment/planning.py), that border is untouched
for every method and the score reads about 1 by construction. What is left to see is the
defect's own edge: a pasted pit cut out with a hard mask, a blurred blob.

Per defect, on gray in [0, 1]: the mean gradient magnitude (Sobel) on the region's
boundary band (1 px either side) over the mean gradient on its shoulders, 2-3 px from the
edge outside and inside: how much of the change happens right at the edge. A surface's
own edges (a thread, a stripe) cross band and shoulders alike and cancel; normalising by
the surroundings alone (a ring 3-6 px out) did not: on a striped surface a hard-cut paste
then scored barely above a soft pit. A real defect's region is its annotated outline (meta.json
`instance_masks`); a synthetic one's is what changed against the image it was painted
into (augment/boxes.py's one definition of "changed"). A set is compared with the real
defects by the mean log score: |mean log synthetic - mean log real| (0 = real-like edges;
a steeper edge than real shows as a higher mean log, a softer one as lower).

    edge_contrast(gray, region)                        # one defect
    real_edge_contrast(real_ds)                        # the reference, from the outlines
    synthetic_edge_contrast(syn_ds, real_ds)           # regions against the canvases
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from midg.datasets.images import read_image
from midg.datasets.layout import Dataset

from ..boxes import changed_pixels, drop_small_components
from ..outlines import fill_outlines, instance_mask

BAND_PX = 1  # the boundary band: this many px either side of the region's edge
RING_PX = (2, 3)  # the shoulders: this many px from the region's edge, outside and inside
FILL_MARGIN_PX = 2  # outlines.fill_outlines' default margin
WINDOW_PX = 10  # each defect is scored in its box (or rectangle) grown by this much


def _disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def gradient(gray: np.ndarray) -> np.ndarray:
    """HxW gradient magnitude of gray (float, [0, 1]); Sobel scaled so a unit step reads ~1."""
    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 4.0
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 4.0
    return np.sqrt(gx * gx + gy * gy)


def edge_contrast(gray: np.ndarray, region: np.ndarray, eps: float = 2 / 255) -> float | None:
    """Mean gradient on `region`'s boundary band over the mean gradient on its shoulders
    (RING_PX from the edge, outside and inside). `gray`: HxW float in [0, 1]; `region`:
    HxW bool/0-1 of the same size. None: an empty region, or no surroundings in view."""
    r = (np.asarray(region) > 0).astype(np.uint8)
    if not r.any():
        return None
    grown = lambda k: cv2.dilate(r, _disk(k)) > 0  # noqa: E731
    shrunk = lambda k: cv2.erode(r, _disk(k), borderValue=0) > 0  # noqa: E731
    band = grown(BAND_PX) & ~shrunk(BAND_PX)
    # the edge's shoulders, RING_PX from it on both sides: a surface's own edges (a thread,
    # a stripe) cross band and shoulders alike and cancel; the defect's edge is in the band
    outside = grown(RING_PX[1]) & ~grown(RING_PX[0] - 1)
    ring = outside | (shrunk(RING_PX[0] - 1) & ~shrunk(RING_PX[1]))
    if not band.any() or not outside.any():  # no surroundings in view: nothing to tell an edge from
        return None
    g = gradient(gray)
    return float((g[band].mean() + eps) / (g[ring].mean() + eps))


def summarise(scores: list[float]) -> dict[str, Any]:
    if not scores:
        return {"n": 0}
    logs = np.log(np.asarray(scores, np.float64))
    return {"n": len(scores), "median": float(np.median(scores)), "mean_log": float(logs.mean()),
            "sd_log": float(logs.std())}


def _window(box, w: int, h: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    return (max(0, int(np.floor(x1)) - WINDOW_PX), max(0, int(np.floor(y1)) - WINDOW_PX),
            min(w, int(np.ceil(x2)) + WINDOW_PX), min(h, int(np.ceil(y2)) + WINDOW_PX))


def _gray(image: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return g.astype(np.float32) / 255.0


def real_edge_contrast(dataset: Dataset, splits=("train",), region: str = "outline") -> dict[str, Any]:
    """The reference: every annotated defect of `splits` (images without an instance mask
    are skipped; a set with none has no reference: n = 0).

    Where a real defect's edge is drawn decides its score, and neither choice is a synthetic
    defect's (what changed against its canvas): "outline" (the default) scores the annotated
    outline, which annotators draw a little outside the pit, so real edges read soft;
    "changed" scores what differs from the image filled over its outlines, where the fill's
    own errors on a textured surface add steep edges, so they read steep. Real-like pits
    painted into canvases score between the two (tests/test_edge_contrast.py); on BSData
    (59fdd1c) the two references read 0.42 and 0.62 in mean log. Quote both: a set outside
    the bracket is off, one inside it is not shown to be."""
    if region not in ("changed", "outline"):
        raise ValueError(f"region must be changed or outline, got {region!r}")
    scores = []
    for split in splits:
        for e in dataset.images(split):
            inst = instance_mask(dataset, e)
            if inst is None:
                continue
            image = read_image(dataset.path(e.file))
            gray = _gray(image)
            h, w = gray.shape
            surface = fill_outlines(image, inst) if region == "changed" else None
            for k, b in enumerate(e.boxes):
                x1, y1, x2, y2 = _window(b.xyxy(), w, h)
                own = inst[y1:y2, x1:x2] == k + 1
                if region == "changed":
                    # what changed near this outline only (the fill's margin and 1 px): never a neighbour's pit
                    near = cv2.dilate(own.astype(np.uint8), _disk(FILL_MARGIN_PX + 1)) > 0
                    own = (drop_small_components(changed_pixels(surface, image, (x1, y1, x2, y2))) > 0) & near
                s = edge_contrast(gray[y1:y2, x1:x2], own)
                if s is not None:
                    scores.append(s)
    return summarise(scores)


def synthetic_edge_contrast(dataset: Dataset, canvases: Dataset) -> dict[str, Any]:
    """Every kept defect of a generated set (meta.json `defects`), its region what changed
    in its rectangle against the image it was painted into (`normal`, a path in
    `canvases`: the dataset generation read)."""
    scores, missing, unnamed = [], 0, 0
    by_image: dict[str, list[dict]] = {}
    for d in dataset.meta.get("defects") or []:
        if d.get("box") is None:
            continue
        if not d.get("normal") or not d.get("rect"):  # no canvas named: nothing to tell the change from
            unnamed += 1
            continue
        by_image.setdefault(d["image"], []).append(d)
    normals = {Path(n).name: n for n in canvases.normals}  # a normals canvas is named by file name
    for image_rel, defects in sorted(by_image.items()):
        rel = defects[0]["normal"]
        source = canvases.path(rel) if canvases.path(rel).exists() else canvases.path(normals.get(Path(rel).name, rel))
        if not source.exists():
            missing += 1
            continue
        after, before = read_image(dataset.path(image_rel)), read_image(source)
        gray = _gray(after)
        h, w = gray.shape
        for d in defects:
            rx1, ry1, rx2, ry2 = (int(v) for v in d["rect"])
            region = np.zeros((h, w), np.uint8)
            region[ry1:ry2, rx1:rx2] = drop_small_components(changed_pixels(before, after, (rx1, ry1, rx2, ry2)))
            x1, y1, x2, y2 = _window((rx1, ry1, rx2, ry2), w, h)
            s = edge_contrast(gray[y1:y2, x1:x2], region[y1:y2, x1:x2])
            if s is not None:
                scores.append(s)
    out = summarise(scores)
    if missing:
        out["images_without_their_canvas"] = missing
    if unnamed:
        out["defects_without_a_canvas"] = unnamed
    return out


def edge_gap(synthetic: dict[str, Any], real: dict[str, Any]) -> float | None:
    """|mean log synthetic - mean log real|: 0 = edges like the real defects'."""
    if not synthetic.get("n") or not real.get("n"):
        return None
    return abs(synthetic["mean_log"] - real["mean_log"])


def within_real_bracket(synthetic: dict[str, Any], outline: dict[str, Any], changed: dict[str, Any]) -> bool:
    """Whether a set's mean log score lies between the two real references (real_edge_contrast's
    "outline" and "changed"): inside, its edges are not shown to differ from real ones."""
    if not synthetic.get("n") or not outline.get("n") or not changed.get("n"):
        return False
    lo, hi = sorted((outline["mean_log"], changed["mean_log"]))
    return lo <= synthetic["mean_log"] <= hi
