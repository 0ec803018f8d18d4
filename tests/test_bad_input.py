"""Bad input, through the CLI: an error naming the file (and line), no traceback, and
nothing at the output path, not even a temporary folder beside it.

CliRunner runs the typer app in-process (the DatasetError is its `exception`);
two subprocess runs of the installed `midg` check exit status 2 and a clean stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from data_builders import bomb_png, truncate, write_coco_dataset, write_fake_deeppcb, write_image, write_yolo_dataset
from midg.datasets.errors import MidgError
from midg.pipelines.cli import app


def run_bad(args: list[str], out: Path, *expected: str) -> str:
    """Invoke `midg ARGS`; assert a MidgError whose message holds `expected`, and that
    out's (fresh) parent folder is still empty."""
    out.parent.mkdir(parents=True, exist_ok=True)
    assert not any(out.parent.iterdir())
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, MidgError), f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    message = str(result.exception)
    for text in expected:
        assert text in message, message
    assert not out.exists()
    assert list(out.parent.iterdir()) == [], "a temporary folder was left beside the output"
    return message


@pytest.fixture
def yolo(tmp_path) -> Path:
    return write_yolo_dataset(tmp_path / "yolo")


def _import_yolo(src: Path, out: Path, *expected: str) -> str:
    return run_bad(["data", "import", "yolo", str(src), str(out)], out, *expected)


# ---------------------------------------------------------------- YOLO labels

@pytest.mark.parametrize("line, problem", [
    ("5 0.5 0.5 0.1 0.1", "class index 5 out of range 0..1"),
    ("0.5 0.5 0.5 0.1 0.1", "class index 0.5 out of range"),
    ("0 0.5 0.5 0.1", "expected 5 fields"),
    ("0 0.5 0.5 0.1 0.1 0.3", "expected 5 fields"),
    ("0 1.5 0.5 0.1 0.1", "outside [0, 1]"),
    ("0 0.5 -0.2 0.1 0.1", "outside [0, 1]"),
    ("0 0.5 0.5 0 0.1", "no area"),
    ("0 nan 0.5 0.1 0.1", "NaN or inf"),
    ("1 0.5 0.5 inf 0.1", "NaN or inf"),
    ("0 0.5 0.5 one 0.1", "non-numeric"),
])
def test_bad_label_line_names_file_and_line(yolo, tmp_path, line, problem):
    lbl = yolo / "labels" / "train" / "a.txt"
    lbl.write_text(lbl.read_text() + line + "\n")  # the third line
    _import_yolo(yolo, tmp_path / "outs" / "ds", f"{lbl}:3:", problem)


def test_non_utf8_text_is_refused(yolo, tmp_path):
    lbl = yolo / "labels" / "train" / "b.txt"
    lbl.write_bytes(b"0 0.5 0.5 0.1 0.1\n\xff\xfe\n")
    _import_yolo(yolo, tmp_path / "o1" / "ds", str(lbl), "not UTF-8")
    lbl.write_text("0 0.5 0.5 0.1 0.1\n")
    (yolo / "data.yaml").write_bytes((yolo / "data.yaml").read_bytes() + b"# caf\xe9\n")
    _import_yolo(yolo, tmp_path / "o2" / "ds", "data.yaml", "not UTF-8")


def test_label_without_image(yolo, tmp_path):
    (yolo / "labels" / "train" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    _import_yolo(yolo, tmp_path / "outs" / "ds", "ghost.txt", "label without image")


def test_image_without_label_or_with_empty_label_is_background(yolo, tmp_path):
    (yolo / "labels" / "train" / "a.txt").write_text("")
    result = CliRunner().invoke(app, ["data", "import", "yolo", str(yolo), str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    from midg.datasets.layout import load_dataset

    train = {Path(e.file).name: e for e in load_dataset(tmp_path / "ds").images("train")}
    assert train["a.png"].boxes == () and train["bg.png"].boxes == ()


@pytest.mark.parametrize("entry, where", [("../elsewhere", "data.yaml:3:"), ("/etc", "data.yaml:3:")])
def test_yolo_split_entry_escaping_the_dataset(yolo, tmp_path, entry, where):
    (yolo.parent / "elsewhere").mkdir()
    text = (yolo / "data.yaml").read_text().replace("val: images/val", f"val: {entry}")
    (yolo / "data.yaml").write_text(text)
    _import_yolo(yolo, tmp_path / "outs" / "ds", where, "leads outside the dataset folder")


def test_yolo_image_list_escaping_the_dataset(yolo, tmp_path):
    write_image(yolo.parent / "secret.png", 8, 8)
    (yolo / "test.txt").write_text("./images/test/t.png\n../secret.png\n")
    _import_yolo(yolo, tmp_path / "outs" / "ds", "test.txt:2:", "leads outside")


# ---------------------------------------------------------------- images


def test_truncated_jpeg_and_png(yolo, tmp_path):
    truncate(yolo / "images" / "train" / "b.jpg")
    _import_yolo(yolo, tmp_path / "o1" / "ds", "b.jpg", "truncated")
    write_image(yolo / "images" / "train" / "b.jpg", 48, 48)
    truncate(yolo / "images" / "val" / "v.png", keep=0.9)
    _import_yolo(yolo, tmp_path / "o2" / "ds", "v.png", "truncated")


def test_unreadable_image(yolo, tmp_path):
    (yolo / "images" / "train" / "a.png").write_bytes(b"this is not a png at all")
    _import_yolo(yolo, tmp_path / "outs" / "ds", "a.png", "not a readable image")


def test_decompression_bomb_header(yolo, tmp_path):
    bomb_png(yolo / "images" / "train" / "a.png")
    msg = _import_yolo(yolo, tmp_path / "outs" / "ds", "a.png")
    assert "decompression bomb" in msg or "over the limit" in msg


def test_pixel_limit_from_environment(yolo, tmp_path, monkeypatch):
    monkeypatch.setenv("MIDG_MAX_PIXELS", "1000")  # a.png is 60x40 = 2400 pixels
    _import_yolo(yolo, tmp_path / "outs" / "ds", "a.png", "over the limit of 1000 pixels")


# ---------------------------------------------------------------- COCO


def _coco(tmp_path, edit) -> tuple[Path, Path]:
    ann, images = write_coco_dataset(tmp_path / "coco")
    doc = json.loads(ann.read_text())
    edit(doc)
    ann.write_text(json.dumps(doc))
    return ann, images


def _import_coco(ann: Path, images: Path, out: Path, *expected: str) -> str:
    return run_bad(["data", "import", "coco", str(ann), str(images), str(out)], out, *expected)


@pytest.mark.parametrize("name", ["../escape.png", "/etc/passwd", "x/../../escape.png"])
def test_coco_file_name_escaping_the_image_folder(tmp_path, name):
    ann, images = _coco(tmp_path, lambda d: d["images"][0].update(file_name=name))
    _import_coco(ann, images, tmp_path / "outs" / "ds", "instances.json", "escapes the image folder")


def test_coco_file_name_through_a_link(tmp_path):
    ann, images = _coco(tmp_path, lambda d: d["images"][0].update(file_name="link/1.png"))
    write_image(tmp_path / "outside" / "1.png", 30, 40)
    (images / "link").symlink_to(tmp_path / "outside")
    _import_coco(ann, images, tmp_path / "outs" / "ds", "instances.json", "leads outside the image folder")


@pytest.mark.parametrize("edit, problem", [
    (lambda d: d["annotations"][0].update(category_id=99), "unknown category_id 99"),
    (lambda d: d["images"][1].update(id=d["images"][0]["id"]), "duplicate image id"),
    (lambda d: d["annotations"][1].update(id=d["annotations"][0]["id"]), "duplicate annotation id"),
    (lambda d: d["annotations"][0].update(image_id=12345), "unknown image_id"),
    (lambda d: d["annotations"][0].update(bbox=[1, 1, 0, 5]), "no area"),
    (lambda d: d["annotations"][0].update(bbox=[30, 1, 20, 5]), "reaches outside image"),
    (lambda d: d["images"][0].update(file_name="missing.png"), "'missing.png' (id 10) is not in"),
])
def test_coco_bad_annotations(tmp_path, edit, problem):
    ann, images = _coco(tmp_path, edit)
    _import_coco(ann, images, tmp_path / "outs" / "ds", "instances.json", problem)


def test_coco_nan_and_non_utf8(tmp_path):
    ann, images = write_coco_dataset(tmp_path / "coco")
    ann.write_text(ann.read_text().replace('"bbox": [2, 2, 10, 8]', '"bbox": [NaN, 2, 10, 8]'))
    _import_coco(ann, images, tmp_path / "o1" / "ds", "instances.json", "NaN or inf")
    ann.write_bytes(b'{"images": [], "annotations": [], "categories": [{"id": 1, "name": "\xe9"}]}')
    _import_coco(ann, images, tmp_path / "o2" / "ds", "instances.json", "not UTF-8")


def test_image_size_differs_from_annotation(tmp_path):
    ann, images = _coco(tmp_path, lambda d: d["images"][2].update(width=33))
    _import_coco(ann, images, tmp_path / "outs" / "ds", str(images / "2.jpg"), "image is 32x24 but instances.json says 33x24")


def test_invalid_json_names_line(tmp_path):
    ann, images = write_coco_dataset(tmp_path / "coco")
    ann.write_text('{\n "images": [],\n "annotations": [,]\n}')
    _import_coco(ann, images, tmp_path / "outs" / "ds", "instances.json:3:", "not valid JSON")


# ---------------------------------------------------------------- DeepPCB and masks


@pytest.mark.parametrize("text, problem", [
    ("1 1 10 10 7\n", "defect type 7 out of range 1..6"),
    ("1 1 10 10\n", "expected 5 fields"),
    ("10 10 5 20 1\n", "has no area"),
    ("1 1 41 10 1\n", "reaches outside the 40x40 image"),
])
def test_deeppcb_bad_annotation(tmp_path, text, problem):
    src = write_fake_deeppcb(tmp_path / "DeepPCB")
    ann = src / "PCBData" / "group00001" / "00001_not" / "00001001.txt"
    ann.write_text("2 3 12 14 3\n" + text)
    out = tmp_path / "outs" / "ds"
    run_bad(["data", "import", "deeppcb", str(src), str(out)], out, f"{ann}:2:", problem)


def test_deeppcb_missing_template(tmp_path):
    src = write_fake_deeppcb(tmp_path / "DeepPCB")
    tmpl = src / "PCBData" / "group00001" / "00001" / "00001002_temp.jpg"
    tmpl.unlink()
    out = tmp_path / "outs" / "ds"
    run_bad(["data", "import", "deeppcb", str(src), str(out)], out, str(tmpl), "does not exist")


def _mask_dirs(tmp_path) -> tuple[Path, Path]:
    images, masks = tmp_path / "images", tmp_path / "masks"
    write_image(images / "a.png", 20, 20)
    m = np.zeros((20, 20), np.uint8)
    m[2:5, 2:5] = 1
    masks.mkdir()
    Image.fromarray(m).save(masks / "a.png")
    return images, masks


def test_mask_without_image_and_wrong_size(tmp_path):
    images, masks = _mask_dirs(tmp_path)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(masks / "ghost.png")
    out = tmp_path / "o1" / "ds"
    run_bad(["data", "import", "masks", str(images), str(masks), str(out)], out, "ghost.png", "mask without image")
    (masks / "ghost.png").unlink()
    Image.fromarray(np.ones((10, 20), np.uint8)).save(masks / "a.png")
    out = tmp_path / "o2" / "ds"
    run_bad(["data", "import", "masks", str(images), str(masks), str(out)], out, "a.png", "mask is 20x10 but image a.png is 20x20")


def test_mask_value_missing_from_class_map(tmp_path):
    images, masks = _mask_dirs(tmp_path)
    cmap = tmp_path / "classes.yaml"
    cmap.write_text("2: short\n")
    out = tmp_path / "outs" / "ds"
    run_bad(["data", "import", "masks", str(images), str(masks), str(out), "--class-map", str(cmap)], out,
            str(masks / "a.png"), "mask value 1 has no class")


# ---------------------------------------------------------------- atomicity and the real CLI


def test_a_failed_import_keeps_the_previous_dataset(yolo, tmp_path):
    out = tmp_path / "ds"
    assert CliRunner().invoke(app, ["data", "import", "yolo", str(yolo), str(out)]).exit_code == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (yolo / "labels" / "val" / "v.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    result = CliRunner().invoke(app, ["data", "import", "yolo", str(yolo), str(out)])
    assert isinstance(result.exception, MidgError)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "yolo"]


def _midg(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("midg")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


def test_installed_cli_exits_2_without_traceback(yolo, tmp_path):
    lbl = yolo / "labels" / "train" / "a.txt"
    lbl.write_text("0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1\n")
    out = tmp_path / "outs" / "ds"
    out.parent.mkdir()
    proc = _midg("data", "import", "yolo", str(yolo), str(out))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"{lbl}:2:" in proc.stderr.replace("\n", "") and "expected 5 fields" in proc.stderr
    assert list(out.parent.iterdir()) == []

    bomb_png(yolo / "images" / "val" / "v.png")
    lbl.write_text("0 0.5 0.5 0.1 0.1\n")
    proc = _midg("data", "check", str(yolo))  # not canonical: a clear error too
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "error:" in proc.stderr and "annotations" in proc.stderr
    proc = _midg("data", "import", "yolo", str(yolo), str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "v.png" in proc.stderr


def test_yolo_image_linked_from_outside(yolo, tmp_path):
    secret = write_image(tmp_path / "secret" / "s.png", 8, 8)
    (yolo / "images" / "train" / "s.png").symlink_to(secret)
    _import_yolo(yolo, tmp_path / "outs" / "ds", "s.png", "leads outside the dataset folder")


def test_jpeg_with_data_after_its_end_marker_is_not_truncated(tmp_path):
    """Phones append videos after a JPEG's end marker: that is not truncation."""
    from midg.datasets.images import image_size

    img = write_image(tmp_path / "long.jpg", 20, 30)
    img.write_bytes(img.read_bytes() + bytes(10_000))
    assert image_size(img) == (30, 20)
    cut = truncate(write_image(tmp_path / "cut.jpg", 200, 200), keep=0.5)  # > 4 KiB: no marker in the tail
    with pytest.raises(MidgError, match="truncated"):
        image_size(cut)
