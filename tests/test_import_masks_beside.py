"""Masks beside their images (CLASS/Imgs/NAME.jpg + NAME.png, NAME_mask.png, ...): which
rule paired them, the class from a folder, soft masks thresholded, all-zero masks as normals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from data_builders import write_image
from midg.datasets.check import check_dataset
from midg.datasets.errors import ConfigError, DatasetError, MidgError
from midg.datasets.folder import MaskSplit, boxes_from_mask, import_masks_beside, pair_masks_beside
from midg.pipelines.cli import app

NO_SPLIT = MaskSplit(val=0.0, test=0.0)


def soft_mask(path: Path, h: int, w: int, rect: tuple[int, int, int, int] | None) -> Path:
    """A rectangle of 255 with an anti-aliased rim of 100 (below the threshold) and 200 (above)."""
    m = np.zeros((h, w), np.uint8)
    if rect is not None:
        x1, y1, x2, y2 = rect
        m[y1 - 1:y2 + 1, x1 - 1:x2 + 1] = 100
        m[y1:y2, x1:x2] = 200
        m[y1 + 1:y2 - 1, x1 + 1:x2 - 1] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(m).save(path)
    return path


def write_beside(root: Path) -> Path:
    """CLASS/Imgs/NAME.jpg beside NAME.png (COD10K-like), a _mask and a _gt pair, a clean image."""
    write_image(root / "crack" / "Imgs" / "a.jpg", 32, 40, seed=1, channels=3)
    soft_mask(root / "crack" / "Imgs" / "a.png", 32, 40, (5, 6, 15, 20))
    write_image(root / "hole" / "Imgs" / "b.jpg", 30, 30, seed=2, channels=3)
    soft_mask(root / "hole" / "Imgs" / "b_mask.png", 30, 30, (2, 2, 10, 10))
    write_image(root / "hole" / "Imgs" / "a.png", 30, 30, seed=3)  # same stem as crack's a.jpg: renamed
    soft_mask(root / "hole" / "Imgs" / "a_gt.png", 30, 30, (20, 20, 28, 29))
    write_image(root / "crack" / "Imgs" / "clean.jpg", 32, 40, seed=4, channels=3)
    soft_mask(root / "crack" / "Imgs" / "clean.png", 32, 40, None)  # all zero: a normal
    return root


def test_pairing_rules(tmp_path):
    pairs, rules = pair_masks_beside(write_beside(tmp_path / "src"))
    got = {p.relative_to(tmp_path / "src").as_posix(): (m.name if m else None, r) for p, m, r in pairs}
    assert got == {"crack/Imgs/a.jpg": ("a.png", "same stem, .png"),
                   "crack/Imgs/clean.jpg": ("clean.png", "same stem, .png"),
                   "hole/Imgs/a.png": ("a_gt.png", "suffix _gt"),
                   "hole/Imgs/b.jpg": ("b_mask.png", "suffix _mask")}
    assert rules == {"same stem, .png": 2, "suffix _gt": 1, "suffix _mask": 1}


def test_grandparent_classes_thresholds_and_normals(tmp_path):
    notes = []
    ds = import_masks_beside(write_beside(tmp_path / "src"), tmp_path / "out", class_from="grandparent",
                             split=NO_SPLIT, report=notes.append)
    check_dataset(tmp_path / "out")
    assert ds.names == ["crack", "hole"]
    boxes = {Path(e.file).name: [(b.cls, *b.xyxy()) for b in e.boxes] for e in ds.images("train")}
    # the rim of 200 counts, the rim of 100 does not: one box per object, not one per grey value
    assert boxes["a.jpg"] == [(0, 5, 6, 15, 20)]
    assert boxes["b.jpg"] == [(1, 2, 2, 10, 10)]
    assert sorted(boxes) == ["a.jpg", "b.jpg", "hole_Imgs_a.png"]  # the second a.* gets its folders as prefix
    assert boxes["hole_Imgs_a.png"] == [(1, 20, 20, 28, 29)]
    # clean.jpg's mask is empty inside a folder of defect images: an unlabelled defect, not a normal
    assert ds.normals == []
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["masks"]["rules"]["suffix _mask"] == 1
    assert meta["masks"]["unlabelled_defect_images"] == [{"image": "crack/Imgs/clean.jpg", "why": "empty mask"}]
    assert any("suffix _gt (1)" in n for n in notes)
    assert any("1 defect image(s) without a usable mask (skipped" in n and "crack/Imgs/clean.jpg" in n for n in notes)
    as_normal = import_masks_beside(tmp_path / "src", tmp_path / "n", class_from="grandparent", split=NO_SPLIT,
                                    empty_mask="normal")
    assert [Path(p).name for p in as_normal.normals] == ["clean.jpg"]
    # a lower threshold takes the faint rim too
    low = import_masks_beside(tmp_path / "src", tmp_path / "low", class_from="grandparent", split=NO_SPLIT,
                              mask_threshold=50)
    assert [b.xyxy() for b in {Path(e.file).name: e for e in low.images("train")}["a.jpg"].boxes] == [[4, 5, 16, 21]]


def test_parent_and_map(tmp_path):
    src = write_beside(tmp_path / "src")
    ds = import_masks_beside(src, tmp_path / "p", class_from="parent", split=NO_SPLIT)
    assert ds.names == ["crack", "hole"]  # the image-folder level (Imgs) is never the class
    cmap = tmp_path / "map.yaml"
    cmap.write_text("crack: defect\nhole: defect\n")
    ds = import_masks_beside(src, tmp_path / "m", class_from="map", class_map=cmap, split=NO_SPLIT)
    assert ds.names == ["defect"] and sum(len(e.boxes) for e in ds.images("train")) == 3
    with pytest.raises(ConfigError, match="--class-from map needs --class-map"):
        import_masks_beside(src, tmp_path / "x", class_from="map")


def test_cli_same_folder_twice_is_beside_mode(tmp_path):
    # Before: "two image files share the stem 'a'" for an image and its mask in one folder.
    src = tmp_path / "flat"
    write_image(src / "a.jpg", 20, 20, seed=1, channels=3)
    soft_mask(src / "a.png", 20, 20, (3, 3, 9, 9))
    result = CliRunner().invoke(app, ["data", "import", "masks", str(src), str(src), str(tmp_path / "out"),
                                      "--val-frac", "0", "--test-frac", "0"])
    assert result.exit_code == 0, result.output
    assert "same stem, .png (1)" in result.output
    assert check_dataset(tmp_path / "out").names == ["flat"]


def test_bad_input(tmp_path):
    src = tmp_path / "src"
    write_image(src / "c" / "a.jpg", 20, 20, seed=1)
    soft_mask(src / "c" / "a.png", 10, 20, (1, 1, 5, 5))
    out = tmp_path / "o" / "out"
    out.parent.mkdir()
    result = CliRunner().invoke(app, ["data", "import", "masks", str(src), str(out)])
    assert isinstance(result.exception, MidgError)
    assert "a.png: mask is 20x10 but image a.jpg is 20x20" in str(result.exception)
    assert list(out.parent.iterdir()) == []
    (src / "c" / "a.png").unlink()
    write_image(src / "c" / "a.bmp", 20, 20, seed=2)
    with pytest.raises(DatasetError, match="share the stem 'a'.*neither is a PNG mask"):
        import_masks_beside(src, out)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(4, 24), w=st.integers(4, 24), data=st.data())
def test_threshold_never_splits_a_soft_blob(h, w, data):
    x1 = data.draw(st.integers(1, w - 3)); y1 = data.draw(st.integers(1, h - 3))
    x2 = data.draw(st.integers(x1 + 2, w - 1)); y2 = data.draw(st.integers(y1 + 2, h - 1))
    m = np.zeros((h, w), np.uint8)
    m[y1 - 1:y2 + 1, x1 - 1:x2 + 1] = data.draw(st.integers(1, 127))  # faint rim
    m[y1:y2, x1:x2] = data.draw(st.integers(128, 255))
    boxes, _ = boxes_from_mask((m > 127).astype(np.uint8), {1: 0}, Path("m.png"))
    assert [b.xyxy() for b in boxes] == [[x1, y1, x2, y2]]
