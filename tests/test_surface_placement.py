"""Placement without templates (augment/surface_placement.py): fitted from the annotated
images' surface, it finds where the constructed pits sit (on the bright flank bands) on
images it never saw, a flat model does not, and sampling follows it. Paired sources get
no surface model (their placement is unchanged).

    .venv/bin/python -m pytest tests/test_surface_placement.py -x -q
"""

from __future__ import annotations

import numpy as np

from helpers_generate import make_paired_dataset
from midg.augment import surface_placement as sp
from midg.augment.library import fit_defect_stats
from midg.augment.trainset import outward_rect
from midg.datasets.images import read_image
from midg.datasets.layout import load_dataset
from photo_builders import write_photo_set


def _images_and_boxes(ds):
    ims, boxes = [], []
    for e in ds.images("train"):
        ims.append(read_image(ds.path(e.file)))
        boxes.append([outward_rect(b, e.width, e.height) for b in e.boxes])
    return ims, boxes


def _on_flank(image: np.ndarray, x: int, y: int) -> bool:
    """The constructed flank bands are the bright rows (the phase differs per image)."""
    return image[y, :].mean() > image.mean()


def test_surface_model_finds_the_pits_surface_on_unseen_images(tmp_path):
    train = load_dataset(write_photo_set(tmp_path / "a", n_train=24, seed=0))
    held_out = load_dataset(write_photo_set(tmp_path / "b", n_train=10, seed=1))
    stats = fit_defect_stats(train)
    model = stats["surface"]
    assert sp.check_model(model)
    ims, boxes = _images_and_boxes(held_out)
    auc = sp.placement_auc(model, ims, boxes)
    flat = {**{k: v for k, v in model.items() if k != "colour"}, "ratio": [1.0] * len(model["ratio"])}
    assert auc > 0.62 and abs(sp.placement_auc(flat, ims, boxes) - 0.5) < 1e-9
    # sampling follows the model: centres land on flank rows more often than a flat model's do
    normal = ims[0]

    def flank_share(m) -> float:
        rng = np.random.default_rng(0)
        hits = [_on_flank(normal, (x1 + x2) // 2, (y1 + y2) // 2) for _ in range(300)
                for _, (x1, y1, x2, y2) in sp.sample_surface_rectangles(rng, normal, stats, m, ["pitting"], 1)]
        return float(np.mean(hits))

    assert flank_share(model) > flank_share(flat) + 0.08, (flank_share(model), flank_share(flat))
    same = sp.sample_surface_rectangles(np.random.default_rng(3), normal, stats, model, ["pitting"], 3)
    assert same == sp.sample_surface_rectangles(np.random.default_rng(3), normal, stats, model, ["pitting"], 3)
    # pad: the same draws and sizes; the boxes kept apart so that each grown by pad (the ring
    # a real defect keeps clear) is still `margin` from the others
    from midg.augment.masks import grow_rect

    rng0, rng4 = np.random.default_rng(3), np.random.default_rng(3)
    unpadded = sp.sample_surface_rectangles(rng0, normal, stats, model, ["pitting"], 6)
    padded = sp.sample_surface_rectangles(rng4, normal, stats, model, ["pitting"], 6, pad=4)
    assert rng0.random() == rng4.random() and padded[0] == unpadded[0]
    h, w = normal.shape[:2]
    grown = [grow_rect(r, 4, w, h) for _, r in padded]
    for i, a in enumerate(grown):
        for b in grown[:i]:
            assert a[2] + 4 <= b[0] or b[2] + 4 <= a[0] or a[3] + 4 <= b[1] or b[3] + 4 <= a[1], (a, b)


def test_colour_keeps_defects_off_a_surface_that_differs_only_in_hue():
    """Left half grey-khaki, right half pink with the very same grey texture (the same
    luminance per pixel): every real defect sits on the left. The grey table cannot tell the
    halves apart; the colour table puts the right half far below."""
    rng = np.random.default_rng(0)
    images, boxes = [], []
    for _ in range(12):
        grey = np.clip(120 + 25 * rng.standard_normal((64, 128)), 0, 255)
        # offsets of zero luma (0.299 R + 0.587 G + 0.114 B, what to_gray weighs): the grey image is the same
        rgb = np.stack([grey + 10, grey, grey - 26.2], axis=-1)  # khaki
        rgb[:, 64:] = np.stack([grey + 20, grey - 12, grey + 9.3], axis=-1)[:, 64:]  # pink
        images.append(np.clip(rgb, 0, 255).astype(np.uint8))
        x, y = int(rng.integers(4, 48)), int(rng.integers(4, 48))
        boxes.append([(x, y, x + 10, y + 10)])
    model = sp.fit_surface_model(images, boxes, scale=8)
    assert sp.check_model(model) and "colour" in model
    grey_only = {k: v for k, v in model.items() if k != "colour"}
    test = images[0]
    left, right = sp.ratio_map(test, model)[:, 8:56].mean(), sp.ratio_map(test, model)[:, 72:120].mean()
    g_left, g_right = sp.ratio_map(test, grey_only)[:, 8:56].mean(), sp.ratio_map(test, grey_only)[:, 72:120].mean()
    assert abs(g_left - g_right) < 0.25 * max(g_left, g_right)  # grey alone: about the same
    assert left > 5 * right
    # grey images (or grey stored as RGB) get no colour table and the same grey table
    grey_images = [np.repeat(im.mean(-1, keepdims=True).astype(np.uint8), 3, -1) for im in images]
    assert "colour" not in sp.fit_surface_model(grey_images, boxes, scale=8)
    assert not sp.check_model({**model, "colour": {"edges": [[0.0]], "ratio": [1.0]}})


def test_paired_sources_get_no_surface_model(tmp_path):
    stats = fit_defect_stats(load_dataset(make_paired_dataset(tmp_path / "boards", n_images=4)))
    assert "surface" not in stats
    assert not sp.check_model({"format": sp.FORMAT})
