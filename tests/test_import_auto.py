"""`midg data import auto`: each layout recognised (and said why), ambiguity refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from data_builders import write_coco_dataset, write_fake_deeppcb, write_yolo_dataset
from midg.datasets.check import check_dataset
from midg.datasets.detect import detect_formats, import_auto
from midg.datasets.errors import DatasetError
from midg.pipelines.cli import app
from test_import_labelme import write_labelme
from test_import_masks_beside import write_beside
from test_import_voc import write_voc_set


def _voc(root: Path) -> Path:
    write_voc_set(root)
    return root


def _coco(root: Path) -> Path:
    write_coco_dataset(root)
    return root


@pytest.mark.parametrize("fmt, build", [
    ("yolo", write_yolo_dataset), ("voc", _voc), ("labelme", write_labelme), ("masks", write_beside),
    ("deeppcb", write_fake_deeppcb),
])
def test_auto_detects_and_imports(tmp_path, fmt, build):
    src = build(tmp_path / "src")
    src = src if isinstance(src, Path) and src.is_dir() else tmp_path / "src"
    assert [c.format for c in detect_formats(src)] == [fmt]
    notes = []
    import_auto(src, tmp_path / "out", report=notes.append)
    check_dataset(tmp_path / "out")
    assert notes[0].startswith(f"format: {fmt} (")


def test_auto_coco_and_cli(tmp_path):
    ann, images = write_coco_dataset(tmp_path / "c")
    assert [c.format for c in detect_formats(ann)] == ["coco"]
    result = CliRunner().invoke(app, ["data", "import", "auto", str(tmp_path / "v"), str(tmp_path / "out")])
    assert isinstance(result.exception, DatasetError) and "does not exist" in str(result.exception)
    write_voc_set(tmp_path / "v")
    result = CliRunner().invoke(app, ["data", "import", "auto", str(tmp_path / "v"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "format: voc (" in result.output


def test_auto_refuses_ambiguous(tmp_path):
    src = write_yolo_dataset(tmp_path / "src")
    write_labelme(src / "lm")
    with pytest.raises(DatasetError, match=r"2 datasets found, import one: yolo at .*; labelme at .* under lm/"):
        import_auto(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
