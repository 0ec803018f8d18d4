"""The label-convention check earns its trust on constructed annotators: one who always
leaves the same margin (the learned convention reproduces the box; tight boxes are flagged),
and one whose margins vary box to box (the median margin misses some boxes)."""

from __future__ import annotations

import cv2
import numpy as np

from midg.augment.metrics.fidelity import label_convention
from midg.datasets.boxes import Box
from midg.datasets.layout import DatasetWriter, load_dataset


def _annotated(root, margins_of, n_images=6, seed=0):
    """Paired boards, one bright blob per image; the box leaves margins_of(rng) (shares of
    the box: left, top, right, bottom) around the blob, as an annotator would."""
    rng = np.random.default_rng(seed)
    with DatasetWriter(root, ["blob"], source="t") as w:
        for i in range(n_images):
            temp = np.full((200, 200), 30, np.uint8)
            test = temp.copy()
            x, y, bw, bh = int(rng.integers(80, 100)), int(rng.integers(80, 100)), int(rng.integers(10, 20)), int(rng.integers(10, 20))
            cv2.rectangle(test, (x, y), (x + bw - 1, y + bh - 1), 220, -1)
            l, t, r, b = margins_of(rng)
            W, H = bw / (1 - l - r), bh / (1 - t - b)
            box = Box(0, x - l * W, y - t * H, x + bw + r * W, y + bh + b * H)
            tname = w.add_normal(f"t{i}", array=temp)
            w.add_image("train", f"i{i}", array=test, boxes=[box], template=tname)
    return load_dataset(root)


def test_a_consistent_annotator_is_reproduced_and_tight_boxes_are_flagged(tmp_path):
    ds = _annotated(tmp_path / "same", lambda rng: (0.3, 0.3, 0.3, 0.3))
    r = label_convention(ds, {"blob": [0.3, 0.3, 0.3, 0.3]})
    assert r["learned"]["n"] == 6 and r["learned"]["median_iou"] > 0.9
    assert r["tight"]["median_iou"] < 0.25 and r["tight"]["share_iou_50"] == 0.0  # (1 - 0.6)^2 = 0.16
    assert r["per_class"]["blob"]["learned"]["share_iou_50"] == 1.0


def test_an_inconsistent_annotator_defeats_the_median_margin(tmp_path):
    ds = _annotated(tmp_path / "varied", lambda rng: tuple(rng.choice([0.02, 0.3], 4)), n_images=20, seed=1)
    r = label_convention(ds, {"blob": [0.2, 0.2, 0.2, 0.2]})
    assert r["learned"]["share_iou_50"] < 0.9 and r["learned"]["median_iou"] < 0.85
