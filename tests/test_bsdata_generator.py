"""The BSData generator benchmark's target check: each target flips with its own figure."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bsdata_generator  # noqa: E402


def _summary(**midg):
    base = {"c2st": 0.70, "fd": 50.0, "seam": 1.25}
    base.update(midg)
    return {"midg_annotated": base, "copypaste_annotated": {"c2st": 0.80, "fd": 60.0, "seam": 1.30},
            "copypaste_surface_annotated": {"c2st": 0.65, "fd": 60.0, "seam": 1.30},
            "real_reference": {"c2st": 0.52, "fd": 20.0, "seam": 1.10}}


def test_all_targets_met_when_midg_beats_every_bound():
    assert all(t["met"] for t in bsdata_generator.targets(_summary()).values())


@pytest.mark.parametrize("change, broken", [
    ({"c2st": 0.76}, {"c2st_at_most_0.75"}),
    ({"c2st": 0.80}, {"c2st_at_most_0.75", "c2st_below_copypaste"}),
    ({"seam": 1.33}, {"seam_at_most_copypaste", "seam_within_1.2x_real"}),
    ({"seam": 1.29}, set()),
    ({"seam": 1.321}, {"seam_at_most_copypaste", "seam_within_1.2x_real"}),
    ({"fd": 60.0}, {"fd_below_copypaste"}),
    ({"c2st": None}, {"c2st_at_most_0.75", "c2st_below_copypaste"}),
])
def test_each_target_fails_on_its_own_figure(change, broken):
    got = {k for k, t in bsdata_generator.targets(_summary(**change)).items() if not t["met"]}
    assert got == broken


def test_targets_read_the_named_copypaste_arm():
    vs_default = bsdata_generator.targets(_summary())
    vs_same_place = bsdata_generator.targets(_summary(), "copypaste_surface_annotated")
    assert vs_default["c2st_below_copypaste"]["met"] and not vs_same_place["c2st_below_copypaste"]["met"]


def test_the_summary_carries_each_arms_edge_contrast(tmp_path):
    """add_edge_contrast on a real set with outlines and a generated set painted into it."""
    import json

    import cv2
    import numpy as np

    from midg.datasets.boxes import Box
    from midg.datasets.images import read_image
    from midg.datasets.layout import DatasetWriter, load_dataset
    from photo_builders import write_photo_set

    real = write_photo_set(tmp_path / "real", n_train=4)
    real_ds = load_dataset(real)
    defects = []
    with DatasetWriter(tmp_path / "syn", ["pitting"], source="t", seed=0) as w:
        for i, e in enumerate(real_ds.images("train")):
            image = read_image(real_ds.path(e.file)).copy()
            m = np.zeros(image.shape[:2], np.uint8)
            cv2.ellipse(m, (40, 40), (8, 5), 0.0, 0, 360, 1, -1)
            image[m > 0] = image[m > 0] // 3
            rel = w.add_image("train", f"g{i}", array=image, boxes=[Box(0, 32, 35, 49, 46)])
            defects.append({"image": rel, "normal": e.file, "rect": [26, 29, 55, 52], "box": [32, 35, 49, 46]})
        w.update_meta(defects=defects)
    summary = {"real_reference": {}, "midg_annotated": {}}
    bsdata_generator.add_edge_contrast(summary, real, {"midg_annotated": tmp_path / "syn"})
    ref, got = summary["real_reference"]["edge_contrast"], summary["midg_annotated"]
    assert ref is not None and got["edge_contrast"] is not None
    assert got["edge_gap"] == abs(got["edge_contrast"] - ref)
    json.dumps(summary)  # JSON-ready
