"""The canvas new defects are painted into (`midg generate --canvas`) and the class mix.

annotated: the annotated training images themselves, real labels carried over exactly, new
rectangles kept clear of every real box; both: a stated share of each; and the class mix
(`--class-mix real|uniform|FILE`). Small paired boards (tests/helpers_generate.py), seconds.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import midg.augment.generate as gen
from helpers_generate import FakeGenerator, make_normals, make_paired_dataset
from midg.augment.generate import GenerateConfig, canvas_of, generate_dataset
from midg.augment.library import write_library_folder
from midg.datasets.errors import ConfigError, DatasetError
from midg.datasets.images import read_image
from midg.datasets.layout import load_dataset


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("canvas")
    real = load_dataset(make_paired_dataset(root / "real", n_images=10, size=128))
    write_library_folder(real, root / "lib", crop_size=32, min_window=16)
    make_normals(root / "normals", n=4, size=128)
    return root


@pytest.fixture(params=["copypaste", "midg"])
def method(request, monkeypatch):
    if request.param == "midg":  # a fake painting block behind the library-only checkpoint
        monkeypatch.setattr(gen, "load_midg_generator", lambda ckpt, device: FakeGenerator(crop_size=32))
    return request.param


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_annotated_canvas_keeps_real_labels_and_changes_only_inside_new_boxes(work, method, tmp_path):
    cfg = GenerateConfig(canvas="annotated", real_box_margin=6)
    ds = generate_dataset(work / "lib", work / "real", tmp_path / "out", n_images=12, seed=1, method=method,
                          batch_size=8, progress=False, config=cfg)
    real = load_dataset(work / "real")
    real_by_file = {e.file: e for e in real.images("train")}
    assert ds.meta["generate"]["canvas"] == "annotated"
    sources = {s["image"]: s for s in ds.meta["canvases"]}
    assert len(sources) == 12 and {s["canvas"] for s in sources.values()} == {"annotated"}
    new_total = 0
    for entry in ds.images("train"):
        src = sources[entry.file]
        source = real_by_file[src["source"]]  # a training image: never val or test
        real_boxes = sorted(b.xyxy() + [b.cls] for b in source.boxes)
        assert sorted([*b[1:], b[0]] for b in src["real_boxes"]) == real_boxes
        mine = [d for d in ds.meta["defects"] if d["image"] == entry.file]
        new_boxes = sorted([*map(float, d["box"]), real.names.index(d["class"])] for d in mine if d["box"])
        # the labels: exactly the real ones carried over, plus one per new defect
        assert sorted(b.xyxy() + [b.cls] for b in entry.boxes) == sorted(real_boxes + new_boxes)
        new_total += len(new_boxes)
        for d in mine:  # no new rectangle reaches within the margin of a real box
            for b in source.boxes:
                grown = (b.x1 - 6, b.y1 - 6, b.x2 + 6, b.y2 + 6)
                assert not _overlap(d["rect"], grown), (d["rect"], b)
        # every changed pixel lies inside a new label box; the real defects stay bit-identical
        before = read_image(real.path(source.file)).astype(int)
        after = read_image(ds.path(entry.file)).astype(int)
        inside = np.zeros(before.shape[:2], bool)
        for x1, y1, x2, y2, _ in new_boxes:
            inside[int(y1):int(y2), int(x1):int(x2)] = True
        changed = np.abs(after - before) > 0
        changed = changed.any(axis=-1) if changed.ndim == 3 else changed
        assert not (changed & ~inside).any()
    assert new_total > 0


def test_annotated_canvas_same_seed_same_bytes_and_shards_match(work, tmp_path):
    cfg = GenerateConfig(canvas="both", canvas_share=0.5)
    kw = dict(n_images=8, seed=3, method="copypaste", batch_size=8, progress=False, config=cfg)
    generate_dataset(work / "lib", work / "real", tmp_path / "a", **kw)
    generate_dataset(work / "lib", work / "real", tmp_path / "b", **kw)
    files = lambda root: {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))  # noqa: E731
                          if p.is_file() and p.name != "meta.json"}
    a = files(tmp_path / "a")
    assert len(a) > 10 and a == files(tmp_path / "b")
    generate_dataset(work / "lib", work / "real", tmp_path / "s1", **{**kw, "shard": (1, 2)})
    s1 = files(tmp_path / "s1")
    assert s1 and all(a[k] == v for k, v in s1.items() if k.startswith(("images/", "labels/")))


def test_canvas_both_interleaves_the_share_in_every_shard():
    normals = [f"n{i}" for i in range(3)]
    annotated = [f"a{i}" for i in range(5)]
    for share in (0.0, 0.25, 0.5, 0.7, 1.0):
        cfg = GenerateConfig(canvas="both", canvas_share=share)
        picks = [canvas_of(k, cfg, normals, annotated) for k in range(40)]
        assert sum(p.startswith("a") for p in picks) == round(40 * share)
        # each kind walked in order: annotated images all used before any repeats
        seen = [p for p in picks if p.startswith("a")]
        assert seen[:5] == annotated[:len(seen[:5])]


def test_auto_canvas_follows_what_normals_names(work, tmp_path):
    folder = generate_dataset(work / "lib", work / "normals", tmp_path / "f", n_images=2, seed=0, method="copypaste",
                              progress=False)
    assert folder.meta["generate"]["canvas"] == "normals"
    dataset = generate_dataset(work / "lib", work / "real", tmp_path / "d", n_images=2, seed=0, method="copypaste",
                               progress=False)
    assert dataset.meta["generate"]["canvas"] == "annotated"
    with pytest.raises(DatasetError, match="annotated training images"):
        generate_dataset(work / "lib", work / "normals", tmp_path / "x", n_images=2, seed=0, method="copypaste",
                         progress=False, config=GenerateConfig(canvas="annotated"))
    assert not (tmp_path / "x").exists()


def test_class_mix_real_uniform_and_file(work, tmp_path, monkeypatch):
    stats = json.loads((work / "lib" / "stats.json").read_text())
    counts = {c: v["count"] for c, v in stats["per_class"].items() if v.get("count")}
    assert set(counts) == {"pin-hole", "copper"}
    kw = dict(n_images=60, seed=0, method="copypaste", batch_size=16, progress=False)
    real_mix = generate_dataset(work / "lib", work / "normals", tmp_path / "r", **kw)
    assert real_mix.meta["params"]["class_mix"] == "real"
    assert real_mix.meta["params"]["class_weights"] == {c: float(n) for c, n in counts.items()}
    mix = (tmp_path / "mix.yaml")
    mix.write_text("copper: 9\npin-hole: 1\n")
    skewed = generate_dataset(work / "lib", work / "normals", tmp_path / "s", **kw,
                              config=GenerateConfig(class_mix=str(mix)))
    drawn = Counter(d["class"] for d in skewed.meta["defects"])
    assert drawn["copper"] > 4 * drawn["pin-hole"]  # 9:1 asked for
    uniform = generate_dataset(work / "lib", work / "normals", tmp_path / "u", **kw,
                               config=GenerateConfig(class_mix="uniform"))
    assert uniform.meta["params"]["class_weights"] is None
    (tmp_path / "bad.yaml").write_text("spur: 1\n")
    with pytest.raises(DatasetError, match="spur"):
        generate_dataset(work / "lib", work / "normals", tmp_path / "b", **kw,
                         config=GenerateConfig(class_mix=str(tmp_path / "bad.yaml")))
    monkeypatch.setattr(gen, "load_midg_generator", lambda ckpt, device: FakeGenerator(crop_size=32))
    with pytest.raises(ConfigError, match=r"\['spur'\] have no real example"):  # asked for, never drawn
        generate_dataset(work / "lib", work / "normals", tmp_path / "b", **{**kw, "method": "midg"},
                         classes=["copper", "spur"], config=GenerateConfig(edges="generated"))
    with pytest.raises(ConfigError, match="class-mix"):
        generate_dataset(work / "lib", work / "normals", tmp_path / "b", **kw,
                         config=GenerateConfig(class_mix="sometimes"))
