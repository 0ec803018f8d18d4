"""The canonical layout: DatasetWriter -> load_dataset round trip, YOLO == COCO, bytes."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from data_builders import noise, write_image, write_tiny_canonical
from midg.datasets.boxes import Box
from midg.datasets.errors import DatasetError
from midg.datasets.layout import DatasetWriter, load_dataset
from midg.datasets.yolo import read_label_file


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_round_trip_keeps_boxes_pairs_normals_and_counts(tmp_path):
    src_img = write_image(tmp_path / "in" / "photo.jpg", 30, 50, seed=3)
    boxes = [Box(0, 1.5, 2, 11, 12.25), Box(1, 20, 0, 50, 30)]
    with DatasetWriter(tmp_path / "ds", ["open", "short"], source="test", seed=7) as w:
        n = w.add_normal("n.png", array=noise(30, 50, 1))
        w.add_image("train", "photo.jpg", src=src_img, boxes=boxes, template=n)
        w.add_image("train", "bg", array=noise(30, 50, 2))  # background: no boxes
        w.add_image("val", "v", array=noise(20, 20, 3, channels=3), boxes=[Box(1, 0, 0, 20, 20)])
    ds = load_dataset(tmp_path / "ds", check_images=True)

    assert ds.names == ["open", "short"]
    assert [e.file for e in ds.images("train")] == ["images/train/bg.png", "images/train/photo.jpg"]
    photo = ds.images("train")[1]
    assert (photo.width, photo.height) == (50, 30)
    assert photo.template == "normals/n.png" and ds.normals == ["normals/n.png"]
    for got, want in zip(sorted(photo.boxes, key=lambda b: b.cls), boxes):
        assert got.cls == want.cls
        assert np.allclose(got.xyxy(), want.xyxy(), atol=1e-3)
    assert ds.images("train")[0].boxes == ()
    assert ds.path(photo.file).read_bytes() == src_img.read_bytes()  # copied, not re-encoded
    assert ds.meta["seed"] == 7 and ds.meta["pairs"] == {"images/train/photo.jpg": "normals/n.png"}
    assert ds.meta["counts"] == ds.counts()
    assert ds.counts()["train"] == {"images": 2, "background_images": 1, "boxes": 2, "per_class": {"open": 1, "short": 1}}
    data_yaml = yaml.safe_load((ds.root / "data.yaml").read_text())
    assert "path" not in data_yaml and data_yaml["names"] == {0: "open", 1: "short"} and data_yaml["nc"] == 2


def test_yolo_and_coco_describe_the_same_boxes(tiny_canonical):
    from pycocotools.coco import COCO

    ds = load_dataset(tiny_canonical)
    for split in ("train", "val", "test"):
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(ds.root / "annotations" / f"{split}.json"))
        assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == sorted(ds.names)
        assert len(coco.getImgIds()) == len(ds.images(split))
        for e in ds.images(split):
            img = coco.loadImgs(e.image_id)[0]
            assert img["file_name"] == Path(e.file).name
            from_coco = sorted((a["category_id"] - 1, *np.round([a["bbox"][0], a["bbox"][1],
                                a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]], 2))
                               for a in coco.loadAnns(coco.getAnnIds(imgIds=e.image_id)))
            lbl = ds.root / "labels" / split / f"{Path(e.file).stem}.txt"
            from_yolo = sorted((b.cls, *np.round(b.xyxy(), 2)) for b in read_label_file(lbl, 2, e.width, e.height))
            assert from_coco == from_yolo
            assert len(from_coco) == len(e.boxes)


def test_same_inputs_give_same_bytes(tmp_path):
    a = write_tiny_canonical(tmp_path / "a" / "ds")
    b = write_tiny_canonical(tmp_path / "b" / "ds")
    assert _files(a) == _files(b)
    c = write_tiny_canonical(tmp_path / "c" / "ds", seed=1)
    assert _files(a) != _files(c)


def test_failed_write_leaves_nothing_and_keeps_the_previous_dataset(tmp_path):
    out = tmp_path / "parent" / "ds"
    with pytest.raises(RuntimeError):
        with DatasetWriter(out, ["a"], source="test") as w:
            w.add_image("train", "x", array=noise(8, 8, 0))
            raise RuntimeError("boom")
    assert list((tmp_path / "parent").iterdir()) == []

    write_tiny_canonical(out)
    before = _files(out)
    with pytest.raises(DatasetError, match="out of range"):
        with DatasetWriter(out, ["open", "short"], source="test") as w:
            w.add_image("train", "x", array=noise(8, 8, 0), boxes=[Box(5, 0, 0, 4, 4)])
    assert _files(out) == before
    assert sorted(p.name for p in (tmp_path / "parent").iterdir()) == [".ds_src", "ds"]


def test_writer_refuses_collisions_and_a_foreign_folder(tmp_path):
    with pytest.raises(DatasetError, match="two normals"):
        with DatasetWriter(tmp_path / "ds", ["a"], source="t") as w:
            w.add_normal("n.png", array=noise(8, 8, 0))
            w.add_normal("n.png", array=noise(8, 8, 1))
    with pytest.raises(ValueError, match="outside the managed folders"):
        with DatasetWriter(tmp_path / "ds", ["a"], source="t") as w:
            w.add_file("normals/x.png", src=write_image(tmp_path / "x.png", 8, 8))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(DatasetError, match="not empty and is not a dataset"):
        DatasetWriter(tmp_path / "mine", ["a"], source="t")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


def test_load_dataset_finds_yolo_coco_disagreement(tiny_canonical):
    lbl = tiny_canonical / "labels" / "train" / "tr0.txt"
    lines = lbl.read_text().splitlines()
    lbl.write_text(lines[0].replace("0 ", "1 ", 1) + "\n" + lines[1] + "\n")  # class changed in YOLO only
    with pytest.raises(DatasetError, match="disagrees") as exc:
        load_dataset(tiny_canonical)
    assert "tr0.txt" in str(exc.value)


def test_meta_is_plain_json(tiny_canonical):
    meta = json.loads((tiny_canonical / "meta.json").read_text())
    assert meta["format"] == "midg-canonical-1"
    assert meta["pairs"]["images/test/te0.png"] == "templates/test/te0_temp.png"
    assert (tiny_canonical / meta["pairs"]["images/test/te0.png"]).is_file()
