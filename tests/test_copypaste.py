"""The real defect library and the copy-paste baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers_generate import COPPER, SUBSTRATE, make_normals, make_paired_dataset
from midg.augment.copypaste import feathered_alpha, paste_defect
from midg.augment.generate import generate_dataset
from midg.augment.library import load_library, load_stats, write_library, write_library_folder
from midg.datasets.errors import ConfigError, DatasetError
from midg.datasets.layout import DEFECT_CLASSES, DatasetWriter, load_dataset
from midg.pipelines.cli import app


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("copypaste")
    real = load_dataset(make_paired_dataset(root / "real", n_images=10))
    write_library_folder(real, root / "lib", crop_size=32, min_window=16)
    make_normals(root / "normals", n=4)
    return root, real


def test_library_holds_every_real_defect_with_its_changed_pixels(work):
    root, real = work
    lib = load_library(root / "lib")
    boxes = [b for e in real.images("train") for b in e.boxes]
    assert len(lib) == len(boxes) and lib.names == list(DEFECT_CLASSES)
    assert sorted(lib.classes.tolist()) == sorted(b.cls for b in boxes)
    assert lib.paired.all() and lib.patches.shape[1:] == (1, 32, 32)
    pin = DEFECT_CLASSES.index("pin-hole")
    for i in range(len(lib)):
        patch, changed, edges = lib.entry(i)
        assert patch.shape == changed.shape == edges.shape == tuple(lib.box_hw[i])  # boxes < 32 px: stored 1:1
        assert 0 < changed.sum() < changed.size  # the dot, not the whole box
        assert edges.sum() > 0 and not (edges & (1 - changed)).any()  # the outline of the change
        # pin-holes are dark dots, copper bright blobs: the changed pixels show it
        if lib.classes[i] == pin:
            assert patch[changed > 0].mean() < 100 and patch[changed == 0].mean() > 150
        else:
            assert patch[changed > 0].mean() > 150 and patch[changed == 0].mean() < 100
    cfg = json.loads((root / "lib" / "config.json").read_text())
    assert cfg["classes"] == list(DEFECT_CLASSES) and cfg["channels"] == 1 and cfg["crop_size"] == 32
    assert cfg["sampler_stats"] == load_stats(root / "lib")
    assert not (root / "lib" / "generator.safetensors").exists()


def test_large_boxes_are_downscaled_into_the_fixed_arrays(work, tmp_path):
    root, real = work
    write_library(real, tmp_path, crop_size=8)
    lib = load_library(tmp_path)
    assert lib.patches.shape[2:] == (8, 8)
    assert (lib.patch_hw <= 8).all() and (lib.box_hw > 8).any()


def test_paired_paste_moves_only_the_changed_pixels(work):
    root, _ = work
    lib = load_library(root / "lib")
    image = np.full((60, 60), SUBSTRATE, np.uint8)
    image[:, 20:45] = COPPER
    rect = (25, 10, 39, 24)  # on conductor, twice the stored size
    for idx in range(len(lib)):
        out = paste_defect(image, rect, lib, idx, np.random.default_rng(idx))
        outside = np.ones(image.shape, bool)
        outside[10:24, 25:39] = False
        assert np.array_equal(out[outside], image[outside])
        changed = out != image
        if lib.classes[idx] == DEFECT_CLASSES.index("pin-hole"):
            assert changed.sum() > 0
        # at most the changed mask, scaled into the rectangle (flips allowed): a small part
        assert changed.sum() <= 4 * lib.changed[idx].sum() + 4
        assert changed.sum() < 0.7 * 14 * 14


def test_poisson_paste_follows_the_local_brightness(work):
    """Poisson blending keeps the defect's contrast but takes the destination's level: a
    pin-hole pasted on copper of two brightnesses comes out about 60 levels apart, where
    the plain paste writes the same absolute values twice; the rectangle's outer ring keeps
    the destination's values (no seam) and nothing outside the rectangle moves."""
    root, _ = work
    lib = load_library(root / "lib")
    pin = [i for i in range(len(lib)) if lib.classes[i] == DEFECT_CLASSES.index("pin-hole")][0]
    rect = (25, 10, 39, 24)
    results = {}
    for level in (170, 230):
        image = np.full((60, 60), SUBSTRATE, np.uint8)
        image[:, 20:45] = level
        for blend in ("alpha", "poisson"):
            out = paste_defect(image, rect, lib, pin, np.random.default_rng(1), blend=blend)
            outside = np.ones(image.shape, bool)
            outside[10:24, 25:39] = False
            assert np.array_equal(out[outside], image[outside])
            dot = out[10:24, 25:39].astype(int)
            assert dot.min() < level - 100, (blend, level)  # the dark dot is there
            results[blend, level] = dot
        ring = np.ones((14, 14), bool)
        ring[1:-1, 1:-1] = False
        assert (results["poisson", level][ring] == level).all()
    assert np.array_equal(results["alpha", 170][results["alpha", 170] != 170],
                          results["alpha", 230][results["alpha", 230] != 230])
    shift = results["poisson", 230].min() - results["poisson", 170].min()
    assert 45 <= shift <= 75, shift


def test_unpaired_library_pastes_the_box_feathered(tmp_path):
    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "real", ["blob"], source="t") as w:
        for i in range(3):
            img = np.full((48, 48), 30, np.uint8)
            img[10:30, 10:30] = 220
            img += rng.integers(0, 3, img.shape).astype(np.uint8)
            from midg.datasets.boxes import Box
            w.add_image("train", f"u{i}", array=img, boxes=[Box(0, 10, 10, 30, 30)])
    write_library(load_dataset(tmp_path / "real"), tmp_path / "lib", crop_size=32)
    lib = load_library(tmp_path / "lib")
    assert not lib.paired.any() and (lib.changed.reshape(len(lib), -1).sum(1) == 400).all()
    image = np.zeros((40, 40), np.uint8)
    out = paste_defect(image, (10, 10, 30, 30), lib, 0, np.random.default_rng(0))
    assert out[20, 20] > 200  # the middle is the real patch
    assert out[10, 20] < out[13, 20] < out[20, 20]  # ramping in from the border: no hard seam
    a = feathered_alpha(20, 20)
    assert a[10, 10] == 1.0 and 0 < a[0, 10] < 0.3 and np.allclose(a, a.T)


@pytest.mark.parametrize("placement", ["conductor", "matched"])
def test_copypaste_uses_the_same_rectangles_as_midg(work, tmp_path, monkeypatch, placement):
    from helpers_generate import FakeGenerator
    import midg.augment.generate as gen

    root, _ = work
    monkeypatch.setattr(gen, "load_midg_generator", lambda ckpt, device: FakeGenerator(crop_size=32))
    # redraws move only the rectangles of failed defects, which differ between methods
    from midg.augment.generate import GenerateConfig

    # (the default, auto, places MIDG's defects by matching and copy-paste's by the sampler; given
    # one placement, both methods see the same rectangles)
    # (MIDG with real structures: the edge block's own structure gets the real box without the pad)
    kw = dict(n_images=6, seed=5, progress=False, edges="library", config=GenerateConfig(redraws=0, placement=placement))
    cp = generate_dataset(root / "lib", root / "normals", tmp_path / "cp", method="copypaste", **kw)
    mg = generate_dataset(root / "lib", root / "normals", tmp_path / "mg", method="midg", **kw)
    rects = lambda ds: [(d["normal"], d["rect"], d["class"]) for d in ds.meta["defects"]]  # noqa: E731
    assert rects(cp) == rects(mg) and len(rects(cp)) >= 6
    assert {d["edges"] for d in cp.meta["defects"]} == {"library"}
    assert cp.meta["generate"]["method"] == "copypaste"
    # the pixels differ: real pasted defects, not the fake generator's ellipses
    a = (tmp_path / "cp" / "images/train/copypaste_000000.png").read_bytes()
    b = (tmp_path / "mg" / "images/train/midg_000000.png").read_bytes()
    assert a != b


def test_copypaste_drops_and_counts_defects_that_change_nothing(work, tmp_path):
    """A pin-hole (a dark dot) pasted onto dark substrate changes nothing: dropped, counted."""
    root, _ = work
    from midg.datasets.images import read_image

    normal = read_image(root / "normals" / "n00.png")
    ys, xs = np.nonzero(normal < 100)
    dark = next((x, y) for x, y in zip(xs, ys) if (normal[y:y + 8, x:x + 8] < 100).all() and y + 8 <= 96 and x + 8 <= 96)
    bright = next((x, y) for x, y in zip(*np.nonzero(normal.T > 150)) if (normal[y:y + 8, x:x + 8] > 150).all()
                  and y + 8 <= 96 and x + 8 <= 96)
    x, y = (int(v) for v in dark)
    bx, by = (int(v) for v in bright)
    layout = {"n00.png": [{"rect": [x, y, x + 8, y + 8], "class": "pin-hole"}]}
    if abs(bx - x) > 10 or abs(by - y) > 10:
        layout["n00.png"].append({"rect": [bx, by, bx + 8, by + 8], "class": "pin-hole"})
    (tmp_path / "layout.json").write_text(json.dumps(layout))
    ds = generate_dataset(root / "lib", root / "normals", tmp_path / "out", n_images=2, seed=0, method="copypaste",
                          layout=tmp_path / "layout.json", progress=False)
    on_dark = [d for d in ds.meta["defects"] if d["rect"] == [x, y, x + 8, y + 8]]
    assert len(on_dark) == 2 and all(d["box"] is None for d in on_dark)
    assert ds.meta["dropped"] == sum(d["box"] is None for d in ds.meta["defects"]) >= 2
    assert ds.counts()["train"]["boxes"] == len(ds.meta["defects"]) - ds.meta["dropped"]
    if len(layout["n00.png"]) == 2:
        # the same real pin-holes on conductor are visible: kept
        assert all(d["box"] is not None for d in ds.meta["defects"] if d["rect"] == [bx, by, bx + 8, by + 8])


def test_library_command_and_midg_needs_weights(work, tmp_path):
    root, _ = work
    res = CliRunner().invoke(app, ["generator", "library", str(root / "real"), "--out", str(tmp_path / "lib"),
                                   "--crop-size", "16"])
    assert res.exit_code == 0, res.output
    assert {p.name for p in (tmp_path / "lib").iterdir()} == {"config.json", "library.safetensors", "stats.json"}
    with pytest.raises(DatasetError, match="generator.safetensors.*copypaste"):
        generate_dataset(tmp_path / "lib", root / "normals", tmp_path / "o", n_images=1, seed=0, progress=False)
    with pytest.raises(ConfigError, match="shape"):
        generate_dataset(tmp_path / "lib", root / "normals", tmp_path / "o", n_images=1, seed=0,
                         method="copypaste", shape=tmp_path / "s.png", progress=False)
    with pytest.raises(ConfigError, match="no real example of \\['open'\\]"):
        generate_dataset(tmp_path / "lib", root / "normals", tmp_path / "o", n_images=1, seed=0,
                         method="copypaste", classes=["open"], progress=False)


def test_colour_library_and_normals(tmp_path):
    """RGB sources give an RGB library; grey normals are promoted to its three channels."""
    from midg.datasets.boxes import Box

    tint = np.array([1.0, 0.7, 0.3])
    with DatasetWriter(tmp_path / "real", ["dot"], source="t") as w:
        for i in range(3):
            temp = np.full((48, 48), 40, np.uint8)
            temp[:, 16:36] = 200
            test = temp.copy()
            test[20:26, 22:28] = 40
            colour = lambda a: (a[..., None] * tint).astype(np.uint8)  # noqa: E731
            t = w.add_normal(f"t{i}", array=colour(temp))
            w.add_image("train", f"x{i}", array=colour(test), boxes=[Box(0, 21, 19, 29, 27)], template=t)
    write_library_folder(load_dataset(tmp_path / "real"), tmp_path / "lib", crop_size=16, min_window=16)
    lib = load_library(tmp_path / "lib")
    assert lib.channels == 3 and lib.paired.all()
    normals = tmp_path / "normals"
    normals.mkdir()
    grey = np.full((48, 48), 40, np.uint8)
    grey[:, 10:40] = 200
    import cv2

    cv2.imwrite(str(normals / "g.png"), grey)
    ds = generate_dataset(tmp_path / "lib", normals, tmp_path / "out", n_images=2, seed=0, method="copypaste",
                          progress=False)
    from midg.datasets.images import read_image

    img = read_image(ds.path("images/train/copypaste_000000.png"))
    assert img.shape == (48, 48, 3)
    outside = np.ones((48, 48), bool)
    for d in ds.meta["defects"]:
        if d["image"] == "images/train/copypaste_000000.png":
            x1, y1, x2, y2 = d["rect"]
            outside[y1:y2, x1:x2] = False
    assert (img[outside] == np.stack([grey] * 3, -1)[outside]).all()
