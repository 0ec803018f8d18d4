"""subset and merge: counts, nesting, provenance, unique names, pairings kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from data_builders import write_tiny_canonical
from midg.datasets.errors import DatasetError
from midg.datasets.layout import load_dataset
from midg.datasets.splits import merge, subset
from midg.pipelines.cli import app


def test_subset_keeps_n_annotated_train_images_all_normals_and_val_test(tiny_canonical, tmp_path):
    src = load_dataset(tiny_canonical)
    ds = subset(tiny_canonical, tmp_path / "sub", n_images=3, seed=4)
    assert len(ds.images("train")) == 3 and all(e.boxes for e in ds.images("train"))
    assert {e.file for e in ds.images("train")} <= {e.file for e in src.images("train")}
    for split in ("val", "test"):
        assert [(e.file, e.boxes) for e in ds.images(split)] == [(e.file, e.boxes) for e in src.images(split)]
    assert ds.normals == src.normals
    assert ds.meta["subset"]["chosen"] == [e.file for e in ds.images("train")]
    assert ds.meta["subset"]["seed"] == 4 and ds.meta["subset"]["n_images"] == 3
    src_pairs = src.meta["pairs"]
    for e in ds.images("train") + ds.images("test"):
        assert e.template == src_pairs[e.file]
        assert ds.path(e.template).read_bytes() == src.path(e.template).read_bytes()
    for e in ds.images("train"):
        assert ds.path(e.file).read_bytes() == src.path(e.file).read_bytes()
    load_dataset(ds.root, check_images=True)


def test_subsets_are_seeded_and_nested(tiny_canonical, tmp_path):
    pick = lambda n, seed, name: [e.file for e in subset(tiny_canonical, tmp_path / name, n, seed).images("train")]  # noqa: E731
    two, four = pick(2, 0, "a"), pick(4, 0, "b")
    assert set(two) <= set(four)
    assert pick(2, 0, "c") == two
    assert {tuple(pick(2, s, f"s{s}")) for s in range(6)} != {tuple(two)}  # other seeds choose otherwise
    with pytest.raises(DatasetError, match="asked for 6 annotated training images, the dataset has 5"):
        subset(tiny_canonical, tmp_path / "x", 6)
    assert not (tmp_path / "x").exists()


def test_merge_unions_splits_with_unique_names_and_provenance(tmp_path):
    a = write_tiny_canonical(tmp_path / "a")
    b = write_tiny_canonical(tmp_path / "b", seed=1, n_train=3)  # same file names, other pixels
    ds = merge([a, b], tmp_path / "merged")
    da, db = load_dataset(a), load_dataset(b)
    for split in ("train", "val", "test"):
        assert len(ds.images(split)) == len(da.images(split)) + len(db.images(split))
        stems = [Path(e.file).stem for e in ds.images(split)]
        assert len(set(stems)) == len(stems)
    assert len(ds.normals) == len(da.normals) + len(db.normals)
    assert ds.counts()["train"]["boxes"] == da.counts()["train"]["boxes"] + db.counts()["train"]["boxes"]

    prov = ds.meta["provenance"]
    assert prov["images/train/tr0.png"] == {"source": str(a), "file": "images/train/tr0.png"}
    assert prov["images/train/s1_tr0.png"] == {"source": str(b), "file": "images/train/tr0.png"}
    for e in ds.images("train") + ds.images("test"):
        origin = prov[e.file]
        src = da if origin["source"] == str(a) else db
        assert ds.path(e.file).read_bytes() == src.path(origin["file"]).read_bytes()
        assert e.boxes == next(x.boxes for x in src.images(e.split) if x.file == origin["file"])
        # the template moved with its image
        src_template = src.meta["pairs"][origin["file"]]
        assert ds.path(e.template).read_bytes() == src.path(src_template).read_bytes()
        assert prov[e.template] == {"source": origin["source"], "file": src_template}

    coco = json.loads((ds.root / "annotations" / "train.json").read_text())
    ids = [im["id"] for im in coco["images"]]
    ann_ids = [an["id"] for an in coco["annotations"]]
    assert len(set(ids)) == len(ids) and len(set(ann_ids)) == len(ann_ids)
    assert [s["path"] for s in ds.meta["sources"]] == [str(a), str(b)]
    load_dataset(ds.root, check_images=True)


def test_merge_refuses_different_class_names_naming_both(tmp_path):
    a = write_tiny_canonical(tmp_path / "a")
    b = write_tiny_canonical(tmp_path / "b", names=("open", "spur"))
    with pytest.raises(DatasetError) as exc:
        merge([a, b], tmp_path / "m")
    assert str(a) in str(exc.value) and str(b) in str(exc.value) and "spur" in str(exc.value)
    assert not (tmp_path / "m").exists()


def test_subset_merge_and_check_through_the_cli(tiny_canonical, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["data", "subset", str(tiny_canonical), str(tmp_path / "sub"), "--n-images", "2", "--seed", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["data", "merge", str(tmp_path / "sub"), str(tiny_canonical), str(tmp_path / "mix")])
    assert r.exit_code == 0, r.output
    assert len(load_dataset(tmp_path / "mix").images("train")) == 2 + 6
    r = runner.invoke(app, ["data", "check", str(tmp_path / "mix")])
    assert r.exit_code == 0, r.output
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]] for line in r.output.splitlines() if line.count("│") == 5}
    assert rows["images"] == ["8", "4", "4"] and rows["background images"] == ["1", "0", "0"]
    r = runner.invoke(app, ["data", "merge", str(tmp_path / "sub"), str(tmp_path / "mix2")])
    assert isinstance(r.exception, Exception) and "at least two" in str(r.exception)


def test_subset_and_merge_same_inputs_same_bytes(tiny_canonical, tmp_path):
    files = lambda r: {p.relative_to(r).as_posix(): p.read_bytes() for p in sorted(r.rglob("*")) if p.is_file()}  # noqa: E731
    subset(tiny_canonical, tmp_path / "s1", 3, seed=2)
    subset(tiny_canonical, tmp_path / "s2", 3, seed=2)
    assert files(tmp_path / "s1") == files(tmp_path / "s2")
    merge([tmp_path / "s1", tiny_canonical], tmp_path / "m1")
    merge([tmp_path / "s1", tiny_canonical], tmp_path / "m2")
    assert files(tmp_path / "m1") == files(tmp_path / "m2")
