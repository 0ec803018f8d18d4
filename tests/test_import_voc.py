"""Pascal VOC XML: the quirks of real sets (filename without extension or missing, a
wrong <size>, 1-based pixels, boxes across the border, empty images, difficult flags),
the same boxes as the YOLO copy of the set, and hostile or broken XML refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from data_builders import write_image, yolo_line
from midg.datasets.boxes import Box
from midg.datasets.check import check_dataset
from midg.datasets.errors import ConfigError, DatasetError, MidgError
from midg.datasets.imports import import_yolo
from midg.datasets.voc import VocFile, VocObject, import_voc, voc_boxes
from midg.pipelines.cli import app

NAMES = ["open", "short"]
# name, (h, w), boxes in 0-based exclusive pixels
IMAGES = [("a.png", (40, 60), [Box(0, 4, 4, 20, 16), Box(1, 30, 10, 50, 30)]),
          ("b.jpg", (48, 48), [Box(1, 0, 0, 12, 12)]),
          ("c.png", (32, 64), [Box(0, 10, 2, 64, 32)])]  # touches the right and bottom border


def voc_xml(filename: str | None, size: tuple[int, int] | None, objects: list[tuple]) -> str:
    """objects: (name, xmin, ymin, xmax, ymax, difficult, truncated) in VOC's 1-based pixels."""
    parts = ["<annotation>"]
    if filename is not None:
        parts.append(f"<filename>{filename}</filename>")
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, x1, y1, x2, y2, dif, tr in objects:
        parts.append(f"<object><name>{name}</name><truncated>{tr}</truncated><difficult>{dif}</difficult>"
                     f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def to_voc(b: Box) -> tuple:
    return (NAMES[b.cls], int(b.x1) + 1, int(b.y1) + 1, int(b.x2), int(b.y2), 0, 0)


def write_voc_set(root: Path) -> tuple[Path, Path]:
    ann, img = root / "Annotations", root / "JPEGImages"
    ann.mkdir(parents=True)
    for k, (name, (h, w), boxes) in enumerate(IMAGES):
        write_image(img / name, h, w, seed=k, channels=3)
        stem = Path(name).stem
        filename = {"a": "a", "b": None}.get(stem, name)  # a: no extension; b: no <filename> at all
        size = (999, h) if stem == "a" else (w, h)  # a: <size> disagrees with the image
        objs = [to_voc(b) for b in boxes]
        if stem == "c":
            objs[0] = objs[0][:5] + (1, 1)  # difficult, truncated
            objs.append(("open", 60, 20, 70, 40, 0, 1))  # crosses the right border: clipped
            objs.append(("short", 70, 1, 80, 5, 0, 0))  # wholly outside: dropped
        (ann / f"{stem}.xml").write_text(voc_xml(filename, size, objs))
    write_image(img / "e.png", 30, 30, seed=9, channels=3)
    (ann / "e.xml").write_text(voc_xml("e.png", (30, 30), []))
    return ann, img


def write_same_set_as_yolo(root: Path) -> Path:
    for k, (name, (h, w), boxes) in enumerate(IMAGES):
        write_image(root / "images" / "train" / name, h, w, seed=k, channels=3)
        lbl = root / "labels" / "train" / Path(name).with_suffix(".txt")
        lbl.parent.mkdir(parents=True, exist_ok=True)
        lbl.write_text("".join(yolo_line(b, w, h) for b in boxes))
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [open, short]\n")
    return root


def _boxes(ds, split="train"):
    return {Path(e.file).name: sorted((b.cls, *np.round(b.xyxy(), 1)) for b in e.boxes) for e in ds.images(split)}


def test_voc_quirks(tmp_path):
    ann, img = write_voc_set(tmp_path / "voc")
    notes = []
    ds = import_voc(ann, img, tmp_path / "out", report=notes.append)
    check_dataset(tmp_path / "out")
    assert ds.names == NAMES
    got = _boxes(ds)
    assert set(got) == {"a.png", "b.jpg", "c.png"}  # e.png (no objects) is a normal
    assert [Path(p).name for p in ds.normals] == ["e.png"]
    assert got["a.png"] == [(0, 4, 4, 20, 16), (1, 30, 10, 50, 30)]
    assert got["c.png"] == [(0, 10, 2, 64, 32), (0, 59, 19, 64, 32)]
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["voc"] == {"size_mismatch": ["a.xml"], "clipped_boxes": 2, "dropped_boxes": 1}
    c_objs = meta["provenance"]["files"]["images/train/c.png"]["objects"]
    assert c_objs[0] == {"name": "open", "difficult": 1, "truncated": 1}
    assert sum("<size> disagrees" in n for n in notes) == 1 and any("clipped" in n for n in notes)


def test_voc_empty_as_background_and_classes_list(tmp_path):
    ann, img = write_voc_set(tmp_path / "voc")
    ds = import_voc(ann, img, tmp_path / "out", empty_as="background", classes=["short", "open", "extra"])
    check_dataset(tmp_path / "out")
    assert ds.names == ["short", "open", "extra"] and not ds.normals
    got = _boxes(ds)
    assert got["e.png"] == [] and got["b.jpg"] == [(0, 0, 0, 12, 12)]
    with pytest.raises(DatasetError, match=r"a\.xml: class 'short' is not in --classes"):
        import_voc(ann, img, tmp_path / "out2", classes=["open"])
    assert not (tmp_path / "out2").exists()


def test_voc_and_yolo_give_identical_boxes(tmp_path):
    ann, img = write_voc_set(tmp_path / "voc")
    (ann / "c.xml").write_text(voc_xml("c.png", (64, 32), [to_voc(b) for b in IMAGES[2][2]]))
    voc = import_voc(ann, img, tmp_path / "from_voc")
    yolo = import_yolo(write_same_set_as_yolo(tmp_path / "yolo"), tmp_path / "from_yolo")
    assert _boxes(voc) == _boxes(yolo)
    assert voc.names == yolo.names


@pytest.mark.parametrize("text, expected", [
    ('<?xml version="1.0"?>\n<!DOCTYPE lol [<!ENTITY a "aaaa">]>\n<annotation/>', r"bad\.xml:2: <!DOCTYPE is refused"),
    ("<annotation>\n<object>\n<name>open</name>\n</annotation>\n", r"bad\.xml:4: malformed XML"),
    ("<annotation><object><name>open</name><bndbox><xmin>x</xmin></bndbox></object></annotation>",
     r"bad\.xml: object 0: <bndbox><xmin> is 'x'"),
    ("<annotation><filename>../../etc/x.png</filename></annotation>", r"bad\.xml: <filename> .* leads outside"),
    ("<annotation><filename>nothere.png</filename></annotation>", r"bad\.xml: no image .*tried nothere\.png"),
])
def test_voc_bad_input_cli(tmp_path, text, expected):
    ann, img = write_voc_set(tmp_path / "voc")
    (ann / "bad.xml").write_text(text)
    out = tmp_path / "o" / "out"
    out.parent.mkdir()
    result = CliRunner().invoke(app, ["data", "import", "voc", str(ann), str(img), str(out)])
    assert isinstance(result.exception, MidgError), result.output
    assert __import__("re").search(expected, str(result.exception)), str(result.exception)
    assert list(out.parent.iterdir()) == []


def test_voc_cli_prints_counts(tmp_path):
    ann, img = write_voc_set(tmp_path / "voc")
    result = CliRunner().invoke(app, ["data", "import", "voc", str(ann), str(img), str(tmp_path / "out"),
                                      "--empty-as", "normal"])
    assert result.exit_code == 0, result.output
    assert "imported VOC dataset" in result.output and "<size> disagrees" in result.output
    with pytest.raises(ConfigError):
        import_voc(ann, img, tmp_path / "x", empty_as="maybe")


@settings(max_examples=200, deadline=None)
@given(w=st.integers(1, 300), h=st.integers(1, 300),
       box=st.tuples(st.integers(-50, 350), st.integers(-50, 350), st.integers(-50, 350), st.integers(-50, 350)))
def test_voc_boxes_stay_inside_and_round_trip(w, h, box):
    x1, y1, x2, y2 = box
    vf = VocFile(Path("p.xml"), "p.png", None, [VocObject("open", x1 + 1, y1 + 1, x2, y2, 0, 0)])
    boxes, clipped, dropped = voc_boxes(vf, w, h, {"open": 0})
    assert len(boxes) + dropped == 1
    for b in boxes:
        assert 0 <= b.x1 < b.x2 <= w and 0 <= b.y1 < b.y2 <= h
    if 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h:  # inside: exact, nothing clipped
        assert boxes == [Box(0, x1, y1, x2, y2)] and clipped == 0
