"""YOLO, COCO and image + mask importers: the boxes that go in come out, in both formats,
and what they write loads in pycocotools and ultralytics (offline)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_builders import (YOLO_IMAGES, YOLO_NAMES, write_coco_dataset, write_image, write_tiny_canonical,
                           write_yolo_dataset)
from midg.datasets.folder import MaskSplit, boxes_from_mask, import_masks
from midg.datasets.imports import import_coco, import_yolo, label_path_for
from midg.datasets.layout import load_dataset


def _boxes(entry) -> list[tuple]:
    return sorted((b.cls, *np.round(b.xyxy(), 1)) for b in entry.boxes)


def _by_name(ds, split) -> dict[str, object]:
    return {Path(e.file).name: e for e in ds.images(split)}


# ---------------------------------------------------------------- YOLO


@pytest.mark.parametrize("names_as", ["list", "dict", "str_dict"])
def test_yolo_import_keeps_every_box_and_flattens_names(tmp_path, names_as):
    src = write_yolo_dataset(tmp_path / "yolo", names_as=names_as)
    ds = import_yolo(src, tmp_path / "out")
    again = load_dataset(tmp_path / "out", check_images=True)
    assert again.counts() == ds.counts()
    assert ds.names == YOLO_NAMES
    train = _by_name(ds, "train")
    # sub/a.png shares a stem with a.png: it is named after its folder
    assert sorted(train) == ["a.png", "b.jpg", "bg.png", "c.png", "sub_a.png"]
    expected = {"a.png": "a.png", "b.jpg": "b.jpg", "bg.png": "bg.png", "c.png": "sub/c.png", "sub_a.png": "sub/a.png"}
    for out_name, src_name in expected.items():
        _, h, w, boxes = next(item for item in YOLO_IMAGES["train"] if item[0] == src_name)
        e = train[out_name]
        assert (e.width, e.height) == (w, h)
        assert _boxes(e) == sorted((b.cls, *np.round(b.xyxy(), 1)) for b in boxes)
        assert ds.path(e.file).read_bytes() == (src / "images" / "train" / src_name).read_bytes()
        assert ds.meta["provenance"]["files"][e.file] == f"images/train/{src_name}"
    assert train["bg.png"].boxes == ()
    assert [Path(e.file).name for e in ds.images("test")] == ["t.png"]  # from the .txt list
    assert ds.counts()["train"]["boxes"] == 5


def test_a_canonical_dataset_is_a_yolo_dataset_round_trip(tmp_path):
    """The canonical folder is itself an ultralytics dataset: importing it changes no box."""
    src = load_dataset(write_tiny_canonical(tmp_path / "tiny"))
    ds = import_yolo(src.root, tmp_path / "again")
    for split in ("train", "val", "test"):
        assert {n: _boxes(e) for n, e in _by_name(ds, split).items()} == {n: _boxes(e) for n, e in _by_name(src, split).items()}


def test_imported_datasets_pass_ultralytics_check_offline(tmp_path):
    from midg.detectors.offline import ultralytics_offline

    ultralytics_offline(tmp_path / "ultralytics_config")
    from ultralytics.data.utils import check_det_dataset, img2label_paths

    # our label lookup is ultralytics' rule
    for p in ["/d/images/train/a.jpg", "/d/images/x/images/b.png", "/d/pics/c.jpeg", "/d/images/sub/d.e.png"]:
        assert str(label_path_for(Path(p))) == img2label_paths([p])[0]

    ds = import_yolo(write_yolo_dataset(tmp_path / "yolo"), tmp_path / "out")
    with contextlib.redirect_stdout(io.StringIO()):
        info = check_det_dataset(str(ds.root / "data.yaml"), autodownload=False)
    assert info["nc"] == 2 and list(info["names"].values()) == YOLO_NAMES
    assert Path(info["train"]) == (ds.root / "images" / "train").resolve()
    assert Path(info["test"]) == (ds.root / "images" / "test").resolve()
    ann, images = write_coco_dataset(tmp_path / "coco")
    coco_ds = import_coco(ann, images, tmp_path / "from_coco", val_frac=0.5)
    with contextlib.redirect_stdout(io.StringIO()):
        info = check_det_dataset(str(coco_ds.root / "data.yaml"), autodownload=False)
    assert list(info["names"].values()) == ["crack", "hole"]


# ---------------------------------------------------------------- COCO


def test_coco_import_maps_categories_in_id_order_and_keeps_boxes(tmp_path):
    from pycocotools.coco import COCO

    ann, images = write_coco_dataset(tmp_path / "coco")
    ds = import_coco(ann, images, tmp_path / "out")
    assert ds.names == ["crack", "hole"]  # ids 3, 7 -> classes 0, 1
    train = _by_name(ds, "train")
    assert sorted(train) == ["1.png", "2.jpg", "3.png", "y_1.png"]
    assert _boxes(train["1.png"]) == [(0, 2, 2, 12, 10), (1, 20, 5, 35, 25)]
    assert _boxes(train["y_1.png"]) == [(1, 0, 0, 30, 30)]
    assert _boxes(train["3.png"]) == [(0, 5.5, 5.5, 9.5, 9.5)]
    assert train["2.jpg"].boxes == ()
    assert ds.meta["provenance"]["files"]["images/train/y_1.png"] == {"file_name": "y/1.png", "image_id": 11}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(ds.root / "annotations" / "train.json"))
    assert len(coco.getAnnIds()) == 4 and sorted(coco.getCatIds()) == [1, 2]
    load_dataset(ds.root, check_images=True)


def test_coco_val_frac_is_seeded(tmp_path):
    ann, images = write_coco_dataset(tmp_path / "coco")
    a = import_coco(ann, images, tmp_path / "a", val_frac=0.5, seed=0)
    b = import_coco(ann, images, tmp_path / "b", val_frac=0.5, seed=0)
    assert len(a.images("val")) == 2 and len(a.images("train")) == 2
    assert [e.file for e in a.images("val")] == [e.file for e in b.images("val")]
    assert (tmp_path / "a" / "annotations" / "val.json").read_bytes() == (tmp_path / "b" / "annotations" / "val.json").read_bytes()


def test_coco_to_test_split_and_bad_options(tmp_path):
    from midg.datasets.errors import ConfigError

    ann, images = write_coco_dataset(tmp_path / "coco")
    ds = import_coco(ann, images, tmp_path / "out", split="test")
    assert len(ds.images("test")) == 4 and not ds.images("train")
    with pytest.raises(ConfigError, match="cannot be used with --split test"):
        import_coco(ann, images, tmp_path / "x", split="test", val_frac=0.2)
    with pytest.raises(ConfigError, match="not one of"):
        import_coco(ann, images, tmp_path / "x", split="holdout")


# ---------------------------------------------------------------- image + mask folders


def _png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def test_boxes_from_mask_one_per_component_and_class():
    mask = np.zeros((20, 30), np.uint8)
    mask[2:5, 3:9] = 1  # component of class value 1
    mask[10:12, 10:11] = 1  # a second component of value 1
    mask[5:15, 20:25] = 2
    mask[15, 0] = 2  # a 1-pixel speck
    mask[5, 9] = 1  # touches the first component diagonally: 8-connected, one box
    boxes, dropped = boxes_from_mask(mask, {1: 0, 2: 1}, Path("m.png"), min_area=2)
    assert [(b.cls, b.xyxy()) for b in boxes] == [(0, [3, 2, 10, 6]), (0, [10, 10, 11, 12]), (1, [20, 5, 25, 15])]
    assert dropped == 1  # the speck
    boxes, dropped = boxes_from_mask(mask, {1: 0, 2: 1}, Path("m.png"))
    assert len(boxes) == 4 and dropped == 0


def test_masks_by_value_binary_indexed_and_class_map(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    for k in range(10):
        write_image(images / f"im{k}.jpg", 24, 32, seed=k)
    m = np.zeros((24, 32), np.uint8)
    m[2:6, 4:10] = 255
    _png(masks / "im0.png", m)
    ds = import_masks(images, masks, tmp_path / "binary", split=MaskSplit(val=0.2, test=0.2), seed=1)
    assert ds.names == ["defect"]
    assert [len(ds.images(s)) for s in ("train", "val", "test")] == [6, 2, 2]
    all_boxes = [(Path(e.file).name, _boxes(e)) for s in ("train", "val", "test") for e in ds.images(s) if e.boxes]
    assert all_boxes == [("im0.jpg", [(0, 4, 2, 10, 6)])]

    m2 = np.zeros((24, 32), np.uint8)
    m2[1:3, 1:3] = 1
    m2[10:20, 10:20] = 3
    _png(masks / "im0.png", m2)
    ds = import_masks(images, masks, tmp_path / "indexed")
    assert ds.names == ["class1", "class2", "class3"]
    e = next(e for s in ("train", "val", "test") for e in ds.images(s) if e.boxes)
    assert _boxes(e) == [(0, 1, 1, 3, 3), (2, 10, 10, 20, 20)]

    cmap = tmp_path / "classes.json"
    cmap.write_text(json.dumps({"1": "short", "3": "open"}))
    ds = import_masks(images, masks, tmp_path / "mapped", class_map=cmap)
    assert ds.names == ["short", "open"]
    e = next(e for s in ("train", "val", "test") for e in ds.images(s) if e.boxes)
    assert _boxes(e) == [(0, 1, 1, 3, 3), (1, 10, 10, 20, 20)]
    load_dataset(tmp_path / "mapped", check_images=True)


def test_masks_by_folder_with_normals_and_yaml_class_map(tmp_path):
    images, masks, normals = tmp_path / "images", tmp_path / "masks", tmp_path / "normals"
    write_image(images / "a.png", 20, 20, seed=1)
    write_image(images / "b.png", 20, 20, seed=2)
    write_image(normals / "clean.png", 20, 20, seed=3)
    m = np.zeros((20, 20), np.uint8)
    m[1:4, 1:4] = 7  # any non-zero value counts in folder mode
    _png(masks / "scratch" / "a.png", m)
    m = np.zeros((20, 20), np.uint8)
    m[10:15, 12:18] = 1
    _png(masks / "dent" / "a.png", m)
    _png(masks / "dent" / "b.png", m)
    ds = import_masks(images, masks, tmp_path / "out", normals=normals, split=MaskSplit(val=0, test=0))
    assert ds.names == ["dent", "scratch"]
    train = _by_name(ds, "train")
    assert _boxes(train["a.png"]) == [(0, 12, 10, 18, 15), (1, 1, 1, 4, 4)]
    assert _boxes(train["b.png"]) == [(0, 12, 10, 18, 15)]
    assert ds.normals == ["normals/clean.png"]

    cmap = tmp_path / "classes.yaml"
    cmap.write_text("scratch: defect\ndent: defect\n")
    ds = import_masks(images, masks, tmp_path / "one", class_map=cmap, split=MaskSplit(val=0, test=0))
    assert ds.names == ["defect"] and ds.counts()["train"]["boxes"] == 3


def test_mask_import_is_deterministic(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    for k in range(6):
        write_image(images / f"im{k}.png", 16, 16, seed=k)
        m = np.zeros((16, 16), np.uint8)
        m[k:k + 3, 2:6] = 1
        _png(masks / f"im{k}.png", m)
    import_masks(images, masks, tmp_path / "a", seed=5, split=MaskSplit(val=0.34, test=0.34))
    import_masks(images, masks, tmp_path / "b", seed=5, split=MaskSplit(val=0.34, test=0.34))
    files = lambda r: {p.relative_to(r).as_posix(): p.read_bytes() for p in sorted(r.rglob("*")) if p.is_file()}  # noqa: E731
    assert files(tmp_path / "a") == files(tmp_path / "b")


def test_yolo_yaml_with_nc_only_gets_ultralytics_names(tmp_path):
    src = write_yolo_dataset(tmp_path / "yolo", names_as="list")
    text = (src / "data.yaml").read_text()
    (src / "data.yaml").write_text(text[: text.index("names:")] + "nc: 2\n")
    ds = import_yolo(src / "data.yaml", tmp_path / "out")
    assert ds.names == ["class_0", "class_1"] and ds.counts()["train"]["boxes"] == 5
