"""data.yaml `path:` resolved as ultralytics users write it, and segmentation labels:
boxes from the polygons, the polygons kept as instance masks (masks/{split}/{stem}.png)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from data_builders import write_image
from midg.datasets.check import check_dataset
from midg.datasets.errors import DatasetError
from midg.datasets.imports import import_yolo
from midg.datasets.yolo import parse_label_text


def _set(root: Path, path_line: str, label: str = "0 0.5 0.5 0.4 0.4\n") -> Path:
    write_image(root / "images" / "train" / "a.png", 20, 40, seed=1)
    (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "train" / "a.txt").write_text(label)
    (root / "data.yaml").write_text(f"{path_line}train: images/train\nnames: [crack]\n")
    return root


@pytest.mark.parametrize("how", ["absolute", "cwd", "yaml_folder", "own_name"])
def test_path_rules(tmp_path, monkeypatch, how):
    root = tmp_path / "dataset"
    line = {"absolute": f"path: {root}\n", "cwd": "path: dataset\n", "yaml_folder": "path: .\n",
            "own_name": "path: dataset\n"}[how]
    _set(root, line)
    monkeypatch.chdir(tmp_path if how == "cwd" else tmp_path / "dataset" / "images")
    ds = import_yolo(root, tmp_path / "out")
    assert len(ds.images("train")) == 1


def test_path_missing_lists_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = _set(tmp_path / "ds", "path: nowhere\n")
    with pytest.raises(DatasetError, match=r"data\.yaml:1: path: 'nowhere' is not a folder \(tried .*ds/nowhere, .*nowhere\)"):
        import_yolo(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_segmentation_and_mixed_labels(tmp_path):
    # a triangle polygon, then a plain box: one file, both kinds
    root = _set(tmp_path / "seg", "task: segment\n", "0 0.25 0.1 0.75 0.1 0.5 0.9\n0 0.05 0.5 0.1 0.2\n")
    ds = import_yolo(root, tmp_path / "out")
    check_dataset(tmp_path / "out")
    (e,) = ds.images("train")
    assert [np.round(b.xyxy(), 3).tolist() for b in e.boxes] == [[10, 2, 30, 18], [0, 8, 4, 12]]
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["instance_masks"] == {"images/train/a.png": "masks/train/a.png"}
    mask = np.asarray(Image.open(tmp_path / "out" / "masks" / "train" / "a.png"))
    assert mask.shape == (20, 40) and set(np.unique(mask)) == {0, 1}  # the box line leaves no pixels
    ys, xs = np.nonzero(mask == 1)
    assert xs.min() >= 10 and xs.max() <= 30 and ys.min() >= 2 and ys.max() <= 18


def test_bad_polygon_names_line(tmp_path):
    root = _set(tmp_path / "bad", "", "0 0.1 0.1 0.2 0.2\n0 0.1 0.1 0.2 0.1 0.3 1.5\n")
    with pytest.raises(DatasetError, match=r"a\.txt:2: polygon coordinates outside"):
        import_yolo(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@settings(max_examples=150, deadline=None)
@given(pts=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=3, max_size=12),
       w=st.integers(1, 500), h=st.integers(1, 500))
def test_polygon_box_is_its_extent(pts, w, h):
    line = "0 " + " ".join(f"{x} {y}" for x, y in pts)
    xs, ys = [x for x, _ in pts], [y for _, y in pts]
    if max(xs) == min(xs) or max(ys) == min(ys):
        with pytest.raises(DatasetError, match="no area"):
            parse_label_text(line, "p.txt", 1, w, h)
        return
    polys: list = []
    (b,) = parse_label_text(line, "p.txt", 1, w, h, polys)
    assert 0 <= b.x1 < b.x2 <= w and 0 <= b.y1 < b.y2 <= h
    assert len(polys) == 1 and len(polys[0]) == len(pts)
    assert b.x1 == pytest.approx(min(xs) * w) and b.y2 == pytest.approx(max(ys) * h)
