"""LabelMe JSON: rectangles (corners in any order) and polygons, image beside the file or
embedded as base64 imageData, empty files as normals, bad files named."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from data_builders import jpeg_bytes, write_image
from midg.datasets.check import check_dataset
from midg.datasets.errors import DatasetError, MidgError
from midg.datasets.labelme import import_labelme, shape_box
from midg.pipelines.cli import app


def _json(path: Path, shapes: list, image_path: str | None = None, data: bytes | None = None) -> None:
    doc = {"version": "5.2.1", "shapes": shapes, "imagePath": image_path, "imageData": None,
           "imageHeight": 16, "imageWidth": 16}
    if data is not None:
        doc["imageData"] = base64.b64encode(data).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def write_labelme(root: Path) -> Path:
    write_image(root / "a.png", 20, 30, seed=1)
    _json(root / "a.json", [{"label": "crack", "shape_type": "rectangle", "points": [[25, 15], [5, 2]]},
                            {"label": "hole", "shape_type": "polygon", "points": [[1, 1], [9, 1], [4, 8]]}], "a.png")
    _json(root / "sub" / "b.json", [{"label": "hole", "shape_type": "polygon",
                                     "points": [[2, 3], [14, 3], [14, 20]]}], "b.jpg", data=jpeg_bytes(16, 16, 2))
    write_image(root / "c.png", 16, 16, seed=3)
    _json(root / "c.json", [], "c.png")
    return root


def test_labelme_import(tmp_path):
    src = write_labelme(tmp_path / "lm")
    ds = import_labelme(src, tmp_path / "out")
    check_dataset(tmp_path / "out")
    assert ds.names == ["crack", "hole"]
    got = {Path(e.file).name: [(b.cls, *b.xyxy()) for b in e.boxes] for e in ds.images("train")}
    assert got == {"a.png": [(0, 5, 2, 25, 15), (1, 1, 1, 9, 8)], "b.jpg": [(1, 2, 3, 14, 16)]}  # b: clipped at 16
    assert (tmp_path / "out" / "images" / "train" / "b.jpg").read_bytes() == jpeg_bytes(16, 16, 2)  # embedded bytes
    assert [Path(p).name for p in ds.normals] == ["c.png"]
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["provenance"]["files"]["images/train/b.jpg"]["embedded"] is True
    assert meta["provenance"]["files"]["images/train/a.png"]["polygons"][0]["label"] == "hole"


def test_labelme_cli_and_bad_input(tmp_path):
    src = write_labelme(tmp_path / "lm")
    result = CliRunner().invoke(app, ["data", "import", "labelme", str(src), str(tmp_path / "ok"), "--empty-as", "background"])
    assert result.exit_code == 0, result.output
    assert "imported LabelMe dataset" in result.output
    (src / "bad.json").write_text('{"shapes": [\n  {"label": "x", "points": [[1, 2]]}\n]}')
    out = tmp_path / "o" / "out"
    out.parent.mkdir()
    result = CliRunner().invoke(app, ["data", "import", "labelme", str(src), str(out)])
    assert isinstance(result.exception, MidgError)
    assert "bad.json: shape 0 (x): 'points' must be 3 or more" in str(result.exception)
    assert list(out.parent.iterdir()) == []
    (src / "bad.json").write_text('{"shapes": [\n  {"label": "x",,}]}')
    with pytest.raises(DatasetError, match=r"bad\.json:2: not valid JSON"):
        import_labelme(src, out)


@settings(max_examples=150, deadline=None)
@given(pts=st.lists(st.tuples(st.floats(-50, 100), st.floats(-50, 100)), min_size=2, max_size=8),
       w=st.integers(1, 64), h=st.integers(1, 64))
def test_shape_box_inside_image(pts, w, h):
    b = shape_box({"points": [list(p) for p in pts]}, 0, w, h)
    if b is not None:
        assert 0 <= b.x1 < b.x2 <= w and 0 <= b.y1 < b.y2 <= h
