"""Edge contrast (augment/metrics/edge_contrast.py), the check on a defect's own edge that
the seam score cannot make once every rectangle keeps a ring of untouched surface.
Constructed flaws on textured colour surfaces (tests/textured_builders.py): pits made like
the reference (a soft darkening) score like it; a pit pasted from another surface with a
hard mask reads steeper, a blurred blob softer. On datasets: the real reference comes
from the outlines, a generated set's regions from what changed against its canvases.

    .venv/bin/python -m pytest tests/test_edge_contrast.py -q
"""

from __future__ import annotations

import cv2
import numpy as np

from midg.augment.metrics.edge_contrast import (edge_contrast, edge_gap, real_edge_contrast, summarise, synthetic_edge_contrast,
                                                within_real_bracket)
from midg.datasets.boxes import Box
from midg.datasets.layout import DatasetWriter, load_dataset
from photo_builders import write_photo_set
from textured_builders import textured_surface


def _ellipse(rng) -> np.ndarray:
    m = np.zeros((96, 96), np.uint8)
    cv2.ellipse(m, (48, 48), (int(rng.integers(7, 12)), int(rng.integers(5, 9))), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return m


def _soft_pit(rng, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """RGB surface with a darkening whose alpha is the mask blurred by sigma; (image, mask)."""
    surface, m = textured_surface(rng), _ellipse(rng)
    alpha = cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigma)
    return np.clip(surface * (1 - 0.6 * alpha[..., None]), 0, 255).astype(np.uint8), m


def _hard_paste(rng) -> tuple[np.ndarray, np.ndarray]:
    """Another surface, darkened, cut out with the binary mask: the flaw."""
    surface, other, m = textured_surface(rng), textured_surface(rng), _ellipse(rng)
    return np.where(m[..., None] > 0, np.clip(other * 0.4, 0, 255), surface).astype(np.uint8), m


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _set(make, seed: int, n: int = 30) -> dict:
    rng = np.random.default_rng(seed)
    return summarise([edge_contrast(_gray(im), m) for im, m in (make(rng) for _ in range(n))])


def test_edge_contrast_tells_a_hard_cut_and_a_blur_from_real_like_edges():
    real = _set(lambda r: _soft_pit(r, 1.0), 0)
    alike = _set(lambda r: _soft_pit(r, 1.0), 1)
    blurred = _set(lambda r: _soft_pit(r, 3.5), 2)
    hard = _set(_hard_paste, 3)
    assert edge_gap(alike, real) < 0.2
    assert hard["mean_log"] > real["mean_log"] + 0.25 and edge_gap(hard, real) > 2 * edge_gap(alike, real)
    assert blurred["mean_log"] < real["mean_log"] - 0.4
    assert real["n"] == 30 and real["median"] > 1.0  # a real-like pit's edge is steeper than its surroundings


def test_edge_contrast_is_none_without_a_region_or_room():
    gray = np.random.default_rng(0).random((20, 20)).astype(np.float32)
    assert edge_contrast(gray, np.zeros((20, 20), bool)) is None
    assert edge_contrast(gray, np.ones((20, 20), bool)) is None  # no surroundings to compare with
    assert edge_gap({"n": 0}, {"n": 3, "mean_log": 0.0}) is None


def test_on_datasets_real_outlines_and_generated_changes(tmp_path):
    real_ds = load_dataset(write_photo_set(tmp_path / "real", n_train=6))
    ref = real_edge_contrast(real_ds)
    assert ref["n"] == sum(len(e.boxes) for e in real_ds.images("train"))  # every outline scored
    # a generated set: pits painted into the real images, hard-cut (the flaw) or soft, meta as `midg generate` writes it
    rng = np.random.default_rng(5)
    sets = {}
    for name in ("hard", "soft"):
        defects = []
        with DatasetWriter(tmp_path / name, ["pitting"], source="t", seed=0) as w:
            for i, e in enumerate(real_ds.images("train")):
                from midg.datasets.images import read_image

                image = read_image(real_ds.path(e.file)).copy()
                h, wd = image.shape[:2]
                m = np.zeros((h, wd), np.uint8)
                cx, cy = 30 + 12 * (i % 3), 40
                cv2.ellipse(m, (cx, cy), (9, 6), 20.0, 0, 360, 1, -1)
                if name == "hard":
                    image = np.where(m[..., None] > 0, (textured_surface(rng, max(h, wd))[:h, :wd] * 0.4).astype(np.uint8), image)
                else:
                    a = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 1.0)
                    image = np.clip(image * (1 - 0.6 * a[..., None]), 0, 255).astype(np.uint8)
                ys, xs = np.nonzero(m)
                box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
                rel = w.add_image("train", f"g{i}", array=image, boxes=[Box(0, *box)])
                defects.append({"image": rel, "normal": e.file, "rect": [box[0] - 6, box[1] - 6, box[2] + 6, box[3] + 6],
                                "box": box, "class": "pitting"})
            w.update_meta(defects=defects)
        sets[name] = synthetic_edge_contrast(load_dataset(tmp_path / name), real_ds)
    assert sets["hard"]["n"] == sets["soft"]["n"] == 6
    assert sets["hard"]["mean_log"] > sets["soft"]["mean_log"] + 0.25


def _soft_pits_set(root, canvases, rng, loose_px: int, hard: bool = False):
    """Soft dark pits (alpha: the ellipse blurred by 1 px) on striped photos (photo_builders),
    as a real set whose outlines are drawn `loose_px` outside the pit (annotators draw around
    a pit, not on its edge), or with canvases (`normal`) named as `midg generate` records them;
    `hard`: pits cut in with a binary mask, the flaw."""
    from midg.datasets.imports import _write_instance_mask
    from photo_builders import surface

    w, h = 128, 80
    defects, masks = [], {}
    with DatasetWriter(root, ["pitting"], source="t", seed=0) as wr:
        for i in range(12):
            if canvases is not None:
                rel_canvas = canvases.images("train")[i % len(canvases.images("train"))].file
                from midg.datasets.images import read_image

                image = read_image(canvases.path(rel_canvas)).copy()
            else:
                image = surface(rng, w, h)
            m = np.zeros((h, w), np.uint8)
            cx, cy, ax, ay = int(rng.integers(30, 98)), int(rng.integers(25, 55)), int(rng.integers(7, 11)), int(rng.integers(4, 7))
            cv2.ellipse(m, (cx, cy), (ax, ay), float(rng.uniform(0, 180)), 0, 360, 1, -1)
            if hard:
                image = np.where(m[..., None] > 0, (image * 0.35).astype(np.uint8), image)
            else:
                a = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 1.0)
                image = np.clip(image * (1 - 0.65 * a[..., None]), 0, 255).astype(np.uint8)
            outline = cv2.dilate(m, _disk_px(loose_px)) if loose_px else m
            ys, xs = np.nonzero(outline)
            box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
            rel = wr.add_image("train", f"p{i:02d}", array=image, boxes=[Box(0, *box)])
            if canvases is None:
                contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                poly = [[float(x), float(y)] for x, y in contours[0][:, 0]]
                masks[rel] = _write_instance_mask(wr, "train", f"p{i:02d}.png", [poly], w, h)
            else:
                defects.append({"image": rel, "normal": rel_canvas, "rect": [box[0] - 6, box[1] - 6, box[2] + 6, box[3] + 6],
                                "box": box, "class": "pitting"})
        wr.update_meta(**({"instance_masks": masks} if canvases is None else {"defects": defects}))
    return load_dataset(root)


def _disk_px(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def test_the_two_real_references_bracket_real_like_pits_and_a_hard_cut_stays_outside(tmp_path):
    """Real pits outlined 3 px loose (annotators draw around a pit) and the same kind of pits
    painted into canvases: on their outlines the real pits read softer than the painted ones,
    on what changed against the image filled over their outlines (the fill's errors on the
    stripes) steeper; the painted ones fall between, a hard cut above both."""
    rng = np.random.default_rng(11)
    real = _soft_pits_set(tmp_path / "real", None, rng, loose_px=3)
    canvases = _soft_pits_set(tmp_path / "canvas", None, np.random.default_rng(12), loose_px=0)
    painted = synthetic_edge_contrast(_soft_pits_set(tmp_path / "painted", canvases, rng, 0), canvases)
    hard = synthetic_edge_contrast(_soft_pits_set(tmp_path / "hard", canvases, rng, 0, hard=True), canvases)
    outline, changed = real_edge_contrast(real), real_edge_contrast(real, region="changed")
    assert changed["n"] == outline["n"] == painted["n"] == hard["n"] == 12
    assert outline["mean_log"] + 0.25 < painted["mean_log"] < changed["mean_log"] - 0.1
    assert hard["mean_log"] > changed["mean_log"] + 0.25
    assert within_real_bracket(painted, outline, changed) and not within_real_bracket(hard, outline, changed)
    assert not within_real_bracket(painted, outline, {"n": 0})  # one reference alone is no bracket
