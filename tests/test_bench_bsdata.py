"""benchmarks/bsdata.py prepare: the authors' test split, nested seeded train subsets, a val
split, pre-onset normals only, boxes and masks scaled exactly with the images; bad input
names its file and writes nothing. A small constructed BSData-shaped folder stands in for
the real one; one test reads the real index when ../shared/datasets/BSData is there.

    .venv/bin/python -m pytest tests/test_bench_bsdata.py -x -q
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bsdata  # noqa: E402

from midg.datasets.errors import DatasetError  # noqa: E402
from midg.datasets.images import read_mask  # noqa: E402
from midg.datasets.layout import load_dataset  # noqa: E402

SEQS = ("100000_000_crop_2", "200000_090_crop_2")


def _stamp(day: int) -> str:
    return f"2009{day:02d}120000"  # yymmddhhmmss: 200901.. < 200902..


def write_mini_bsdata(root: Path, size=(200, 80), per_sequence=7, n_test=3) -> Path:
    """Two wear sequences of type-2 photographs (annotated from day 20 on; unannotated
    before it, and one after it), a type-1 annotated image; one pit polygon each."""
    (root / "data").mkdir(parents=True)
    (root / "label").mkdir()
    rng = np.random.default_rng(0)
    items = []

    def photo(name: str, wh=size) -> None:
        Image.fromarray(rng.integers(0, 255, (wh[1], wh[0], 3), dtype=np.uint8)).save(root / "data" / name, quality=95)

    def annotate(name: str, poly, wh=size) -> str:
        js = Path(name).with_suffix(".json").name
        (root / "label" / js).write_text(json.dumps({
            "version": "4.5.6", "imagePath": name, "imageData": None, "imageWidth": wh[0], "imageHeight": wh[1],
            "shapes": [{"label": "Pitting", "points": poly, "shape_type": "polygon"}]}))
        return js

    k = 0
    for seq in SEQS:
        for day in (1, 2, 3):  # before onset: normals
            name = f"01_{_stamp(day)}_{seq}.jpg"
            photo(name)
            items.append({"filename": name, "train_test_split": None, "type": 2, "wear_dev": [], "annotations": None})
        for j in range(per_sequence):
            name = f"01_{_stamp(20 + j)}_{seq}.jpg"
            photo(name)
            poly = [[10.0 + 7 * j, 20.0], [40.0 + 7 * j, 22.5], [33.0 + 7 * j, 61.0]]
            split = "test" if k < n_test else "train"
            k += 1
            items.append({"filename": name, "train_test_split": split, "type": 2, "wear_dev": [],
                          "annotations": annotate(name, poly)})
        name = f"01_{_stamp(28)}_{seq}.jpg"  # after onset, unannotated: may hold unlabelled pits
        photo(name)
        items.append({"filename": name, "train_test_split": None, "type": 2, "wear_dev": [], "annotations": None})
    name = "KGT1-S-001-A01_crop_0.jpg"  # type 1: another size, no sequence
    photo(name, (300, 100))
    items.append({"filename": name, "train_test_split": "train", "type": 1, "wear_dev": [],
                  "annotations": annotate(name, [[5.0, 5.0], [50.0, 5.0], [50.0, 40.0], [5.0, 40.0]], (300, 100))})
    (root / "image_data.json").write_text(json.dumps({"images": items}))
    return root


def prepare_args(src: Path, out: Path, **kw) -> argparse.Namespace:
    base = dict(bsdata=str(src), out=str(out), n_images=4, n_list=[2, 4], n_val=3, val_seed=0, seeds=[0, 1],
                n_normals=None, long_side=100)
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Path:
    return write_mini_bsdata(tmp_path_factory.mktemp("bs") / "BSData")


def test_index_keeps_test_split_and_only_pre_onset_normals(mini):
    idx = bsdata.read_index(mini)
    assert len(idx.test) == 3 and all(r.split == "test" for r in idx.test)
    assert len(idx.train) == 2 * 7 - 3 + 1  # 7 annotated a sequence, 3 of them test, the type-1 image
    assert len(idx.normals) == 6 and all(r.stamp < _stamp(20) for r in idx.normals)
    assert [r.stamp for r in idx.post_onset] == [_stamp(28)] * 2


def test_prepare_writes_nested_subsets_val_and_scaled_boxes(mini, tmp_path):
    out = tmp_path / "bundle"
    bsdata.prepare(prepare_args(mini, out))
    ds = load_dataset(out, check_images=True)
    meta = ds.meta
    test_names = {r.filename for r in bsdata.read_index(mini).test}
    assert {Path(e.file).name for e in ds.images("test")} == test_names
    val = {Path(e.file).name for e in ds.images("val")}
    assert len(val) == 3 and not val & test_names
    nested = meta["nested_subsets"]
    for seed in ("0", "1"):
        assert nested["2"][seed] == nested["4"][seed][:2]  # nested by construction
        assert not set(nested["4"][seed]) & val
        assert meta["subsets"][seed] == nested["4"][seed]
    assert nested["4"]["0"] != nested["4"]["1"]  # the seed draws
    train = {Path(e.file).name for e in ds.images("train")}
    assert train == set(nested["4"]["0"]) | set(nested["4"]["1"])
    assert len(ds.normals) == 6 and not any(_stamp(28) in n for n in ds.normals)
    assert sorted(meta["left_out_post_onset"]) == sorted(r.filename for r in bsdata.read_index(mini).post_onset)
    # 200x80 -> 100x40: every coordinate halves, exactly; the mask covers the polygon
    for e in ds.images("train") + ds.images("test"):
        (box,) = e.boxes
        if e.file.endswith("crop_0.jpg"):
            assert (e.width, e.height) == (100, 33)
            assert box.x1 == pytest.approx(5 / 3) and box.y2 == pytest.approx(40 * 33 / 100)
            continue
        assert (e.width, e.height) == (100, 40)
        j = int(Path(e.file).name.split("_")[1][4:6]) - 20
        assert (box.x1, box.y1, box.x2, box.y2) == pytest.approx((5 + 3.5 * j, 10, 20 + 3.5 * j, 30.5))
        mask = read_mask(out / meta["instance_masks"][e.file])
        ys, xs = np.nonzero(mask == 1)
        assert mask.shape == (40, 100) and set(np.unique(mask)) == {0, 1}
        assert max(abs(xs.min() - box.x1), abs(xs.max() + 1 - box.x2), abs(ys.max() + 1 - box.y2)) <= 1.5  # fillPoly rounds vertices
    assert meta["resize"]["long_side"] == 100 and meta["sizes"][ds.normals[0]] == {"original": [200, 80],
                                                                                  "working": [100, 40]}


def test_prepare_is_the_same_bytes_for_the_same_seeds(mini, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    bsdata.prepare(prepare_args(mini, a))
    bsdata.prepare(prepare_args(mini, b))
    for f in sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file()):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_seed_subset_carries_masks_for_the_run(mini, tmp_path):
    bundle = tmp_path / "bundle"
    bsdata.prepare(prepare_args(mini, bundle))
    real = bsdata.seed_subset(bundle, 1, 2, tmp_path / "work")
    ds = load_dataset(real)
    assert sorted(Path(e.file).name for e in ds.images("train")) == sorted(load_dataset(bundle).meta["nested_subsets"]["2"]["1"])
    assert len(ds.images("val")) == 3 and len(ds.normals) == 6
    for e in ds.images("train"):
        assert read_mask(real / ds.meta["instance_masks"][e.file]).max() == len(e.boxes)
    with pytest.raises(SystemExit, match="not 3"):
        bsdata.seed_subset(bundle, 0, 3, tmp_path / "work2")


def test_bad_input_names_the_file_and_writes_nothing(mini, tmp_path):
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(mini, broken)
    js = sorted((broken / "label").glob("01_*.json"))[0]
    doc = json.loads(js.read_text())
    doc["imageWidth"] = 999
    js.write_text(json.dumps(doc))
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=f"{js.name}.*imageWidth 999"):
        bsdata.prepare(prepare_args(broken, out))
    assert not out.exists() or not any(out.iterdir())
    (broken / "image_data.json").unlink()
    with pytest.raises(DatasetError, match="image_data.json"):
        bsdata.read_index(broken)
    with pytest.raises(ValueError, match="annotated train images exist"):
        bsdata.prepare(prepare_args(mini, out, n_list=[50]))


def test_real_bsdata_index_matches_its_source_notes():
    root = Path(os.environ.get("MIDG_BSDATA", ROOT.parent / "shared" / "datasets" / "BSData"))
    if not (root / "image_data.json").is_file():
        pytest.skip(f"BSData not found at {root} (set MIDG_BSDATA to its folder to run this test)")
    idx = bsdata.read_index(root)
    assert (len(idx.train), len(idx.test)) == (274 + 50, 51 + 19)
    assert (len(idx.normals), len(idx.post_onset)) == (682, 28)
    assert sum(r.sequence == "585000_090_crop_2" for r in idx.post_onset) == 16


def test_show_draws_one_row_per_set_at_native_crop_size(mini, tmp_path):
    from midg.datasets.images import read_image

    bundle = tmp_path / "bundle"
    bsdata.prepare(prepare_args(mini, bundle))
    args = argparse.Namespace(real=str(bundle), synthetic=[f"again={bundle}"], per_row=5, full_width=100,
                              out_crops=str(tmp_path / "crops.png"), out_full=str(tmp_path / "full.png"))
    bsdata.show(args)
    crops = read_image(tmp_path / "crops.png")
    assert crops.shape[0] == 2 * (bsdata.TILE + 2) and crops.shape[1] == 110 + 5 * (bsdata.TILE + 2)
    assert read_image(tmp_path / "full.png").shape[1] == 110 + 3 * (100 + 4)
