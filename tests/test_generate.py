"""The generation stage (`midg generate`): pixels, labels, determinism, shards, shape
control, layouts, outputs that pycocotools and ultralytics accept, CLI errors.

Most tests use a small fake generator (tests/helpers_generate.py) behind a library-only
checkpoint; the `real` variants train the smoke-profile generator once per session (a few
steps, ~8 s) and run the same checks through the trained networks.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import midg.augment.generate as gen
from helpers_generate import FakeGenerator, make_normals, make_paired_dataset
from midg.augment.generate import GenerateConfig, generate_dataset
from midg.augment.library import write_library_folder
from midg.datasets.errors import ConfigError, DatasetError
from midg.datasets.images import read_image
from midg.datasets.layout import DEFECT_CLASSES, load_dataset
from midg.pipelines.cli import app

REPO = Path(__file__).resolve().parents[1]

# The smoke generator's nets are tiny: on busy cores a second torch thread only waits (conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("generate")
    real = load_dataset(make_paired_dataset(root / "real", n_images=12))
    write_library_folder(real, root / "lib", crop_size=32, min_window=16)
    make_normals(root / "normals", n=5)
    return root


@pytest.fixture(scope="session")
def real_checkpoint(tmp_path_factory):
    """The smoke-profile generator trained on the test boards (a few steps: shapes and
    plumbing, not quality)."""
    from rich.console import Console

    from midg.augment.config import generator_config
    from midg.augment.train import train_generator
    from midg.datasets.params import load_params

    root = tmp_path_factory.mktemp("real_ckpt")
    make_paired_dataset(root / "real", n_images=12)
    cfg = generator_config(load_params(REPO / "params.yaml"), "smoke", steps=4, sample_every=0, log_every=2)
    train_generator(root / "real", root / "ckpt", cfg, profile="smoke", console=Console(file=io.StringIO()))
    return root / "ckpt"


@pytest.fixture(params=["fake", "real"])
def ckpt(request, work, monkeypatch):
    """(checkpoint folder, GenerateConfig): the fake generator, or the trained smoke one.
    The smoke generator barely changes its crops, so with it the whole rectangle is
    composited (composite="rectangle") for the pixel checks to have pixels to check."""
    if request.param == "fake":
        monkeypatch.setattr(gen, "load_midg_generator", lambda ckpt, device: FakeGenerator(crop_size=32))
        return work / "lib", GenerateConfig(edges="generated")  # the edge block (auto would take the library)
    return request.getfixturevalue("real_checkpoint"), GenerateConfig(composite="rectangle", edges="generated")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_pixels_change_only_inside_rectangles_and_boxes_stay_inside(work, ckpt, tmp_path):
    folder, cfg = ckpt
    ds = generate_dataset(folder, work / "normals", tmp_path / "out", n_images=8, seed=1, batch_size=8,
                          progress=False, config=cfg)
    defects = ds.meta["defects"]
    assert ds.counts()["train"]["images"] == 8 and len(defects) >= 8
    assert ds.meta["dropped"] == sum(d["box"] is None for d in defects)
    changed_inside = 0
    for entry in ds.images("train"):
        mine = [d for d in defects if d["image"] == entry.file]
        normal = read_image(work / "normals" / mine[0]["normal"]) if mine else None
        image = read_image(ds.path(entry.file))
        assert normal is not None and image.shape == normal.shape
        outside = np.ones(image.shape, bool)
        for d in mine:
            x1, y1, x2, y2 = d["rect"]
            outside[y1:y2, x1:x2] = False
            changed_inside += int((image[y1:y2, x1:x2] != normal[y1:y2, x1:x2]).sum())
            if d["box"] is not None:
                bx1, by1, bx2, by2 = d["box"]
                assert x1 <= bx1 < bx2 <= x2 and y1 <= by1 < by2 <= y2
        assert np.array_equal(image[outside], normal[outside]), "a pixel outside every rectangle changed"
        assert sorted(b.xyxy() for b in entry.boxes) == sorted(
            [float(v) for v in d["box"]] for d in mine if d["box"] is not None)
    assert changed_inside > 0
    kept = [d for d in defects if d["box"] is not None]
    assert kept and all(d["changed_px"] >= cfg.min_changed_px for d in kept)
    assert {d["edges"] for d in defects} == {"generated"}
    assert all(d["class"] in ("pin-hole", "copper") for d in defects)  # the classes with real examples


def test_same_seed_same_bytes(work, ckpt, tmp_path):
    folder, cfg = ckpt
    kw = dict(n_images=6, seed=3, batch_size=8, progress=False, config=cfg)
    generate_dataset(folder, work / "normals", tmp_path / "a", **kw)
    generate_dataset(folder, work / "normals", tmp_path / "b", **kw)
    generate_dataset(folder, work / "normals", tmp_path / "c", **{**kw, "seed": 4})
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) > 10 and a == b
    assert any(a[k] != c[k] for k in a if k.startswith("images/"))


def test_shards_merged_equal_the_single_run(work, ckpt, tmp_path):
    from midg.datasets.splits import merge

    folder, cfg = ckpt
    kw = dict(n_images=7, seed=2, batch_size=8, progress=False, config=cfg)
    generate_dataset(folder, work / "normals", tmp_path / "full", **kw)
    for i in range(3):
        generate_dataset(folder, work / "normals", tmp_path / f"s{i}", shard=(i, 3), **kw)
    shard0 = load_dataset(tmp_path / "s0")
    assert [Path(e.file).name for e in shard0.images("train")] == ["midg_000000.png", "midg_000003.png", "midg_000006.png"]
    merge([tmp_path / f"s{i}" for i in range(3)], tmp_path / "merged")
    full, merged = _files(tmp_path / "full"), _files(tmp_path / "merged")
    for prefix in ("images/train/", "labels/train/"):
        mine = {k: v for k, v in full.items() if k.startswith(prefix)}
        assert len(mine) == 7 and mine == {k: v for k, v in merged.items() if k.startswith(prefix)}


def test_shape_controls_where_the_defect_is(work, monkeypatch, tmp_path):
    """A square in the top-left of the shape image gives changes in the top-left of every
    rectangle: IoU with the square far above a randomly placed square's."""
    monkeypatch.setattr(gen, "load_midg_generator", lambda ckpt, device: FakeGenerator(crop_size=32))
    shape = np.zeros((32, 32), np.uint8)
    shape[4:16, 4:16] = 255
    cv2.imwrite(str(tmp_path / "square.png"), shape)
    flat = tmp_path / "flat"
    flat.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(flat / "f.png"), (128 + rng.integers(-2, 3, (96, 96))).astype(np.uint8))
    layout = {"f.png": [{"rect": [10, 10, 42, 42], "class": "pin-hole"}, {"rect": [50, 40, 82, 72], "class": "copper"}]}
    (tmp_path / "layout.json").write_text(json.dumps(layout))
    ds = generate_dataset(work / "lib", flat, tmp_path / "out", n_images=1, seed=0, shape=tmp_path / "square.png",
                          layout=tmp_path / "layout.json", progress=False,
                          config=GenerateConfig(box_style="tight"))  # boxes exactly on the change
    image, normal = read_image(ds.path("images/train/midg_000000.png")), read_image(flat / "f.png")
    assert {d["edges"] for d in ds.meta["defects"]} == {"shape"}
    rng = np.random.default_rng(1)
    for d in ds.meta["defects"]:
        x1, y1, x2, y2 = d["rect"]
        changed = np.abs(image[y1:y2, x1:x2].astype(int) - normal[y1:y2, x1:x2]) > 24
        square = np.zeros_like(changed)
        square[4:16, 4:16] = True  # the rectangle is 32 px like the shape image
        iou = (changed & square).sum() / (changed | square).sum()
        chance = []
        for _ in range(200):
            ox, oy = rng.integers(0, 21, 2)
            other = np.zeros_like(changed)
            other[oy:oy + 12, ox:ox + 12] = True
            chance.append((changed & other).sum() / (changed | other).sum())
        assert iou > 0.6 and iou > 3 * np.mean(chance), (iou, np.mean(chance))
        assert d["box"] is not None and d["box"][0] - x1 < 8 and d["box"][2] - x1 < 20


def test_library_edges_and_class_choice(work, monkeypatch, tmp_path):
    monkeypatch.setattr(gen, "load_midg_generator", lambda ckpt, device: FakeGenerator(crop_size=32))
    ds = generate_dataset(work / "lib", work / "normals", tmp_path / "out", n_images=6, seed=0, edges="library",
                          classes=["copper"], defects_per_image=(2, 2), progress=False)
    defects = ds.meta["defects"]
    assert {d["edges"] for d in defects} == {"library"} and {d["class"] for d in defects} == {"copper"}
    assert len(defects) == 12  # two per image: the 96 px boards have room
    assert ds.counts()["train"]["boxes"] > 6


def test_outputs_load_in_pycocotools_and_ultralytics(work, monkeypatch, tmp_path):
    monkeypatch.setattr(gen, "load_midg_generator", lambda ckpt, device: FakeGenerator(crop_size=32))
    ds = generate_dataset(work / "lib", work / "normals", tmp_path / "out", n_images=4, seed=0, progress=False)
    from contextlib import redirect_stdout

    from pycocotools.coco import COCO

    with redirect_stdout(io.StringIO()):
        coco = COCO(str(ds.root / "annotations" / "train.json"))
    assert len(coco.getImgIds()) == 4 and len(coco.getAnnIds()) == ds.counts()["train"]["boxes"] > 0
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == sorted(DEFECT_CLASSES)

    from midg.detectors.offline import ultralytics_offline

    ultralytics_offline(tmp_path / "yolo_config")
    from ultralytics.data.utils import check_det_dataset

    info = check_det_dataset(str(ds.root / "data.yaml"), autodownload=False)
    assert info["nc"] == len(DEFECT_CLASSES) and Path(info["train"]).resolve() == (ds.root / "images/train").resolve()


def test_layout_replaces_sampling(work, monkeypatch, tmp_path):
    monkeypatch.setattr(gen, "load_midg_generator", lambda ckpt, device: FakeGenerator(crop_size=32))
    layout = {"n03.png": [{"rect": [5, 6, 17, 18], "class": "copper"}],
              "n01.png": [{"rect": [40, 40, 52, 50], "class": "pin-hole"}, {"rect": [60, 10, 70, 20], "class": "copper"}]}
    (tmp_path / "layout.json").write_text(json.dumps(layout))
    ds = generate_dataset(work / "lib", work / "normals", tmp_path / "out", n_images=3, seed=0,
                          layout=tmp_path / "layout.json", progress=False)
    got = [(d["image"], d["normal"], d["rect"], d["class"]) for d in ds.meta["defects"]]
    assert got == [  # layout names sorted, then cycled: n01, n03, n01
        ("images/train/midg_000000.png", "n01.png", [40, 40, 52, 50], "pin-hole"),
        ("images/train/midg_000000.png", "n01.png", [60, 10, 70, 20], "copper"),
        ("images/train/midg_000001.png", "n03.png", [5, 6, 17, 18], "copper"),
        ("images/train/midg_000002.png", "n01.png", [40, 40, 52, 50], "pin-hole"),
        ("images/train/midg_000002.png", "n01.png", [60, 10, 70, 20], "copper"),
    ]
    bad = {"n01.png": [{"rect": [5, 5, 17, 18], "class": "scratch"}]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match=r"bad.json: n01.png\[0\]: unknown class 'scratch'; valid: open, short"):
        generate_dataset(work / "lib", work / "normals", tmp_path / "o2", n_images=1, seed=0, layout=tmp_path / "bad.json",
                         progress=False)
    (tmp_path / "bad.json").write_text(json.dumps({"n09.png": [{"rect": [5, 5, 17, 18], "class": "open"}]}))
    with pytest.raises(DatasetError, match="not images of"):
        generate_dataset(work / "lib", work / "normals", tmp_path / "o2", n_images=1, seed=0, layout=tmp_path / "bad.json",
                         progress=False)
    (tmp_path / "bad.json").write_text(json.dumps({"n01.png": [{"rect": [90, 90, 120, 100], "class": "open"}]}))
    with pytest.raises(DatasetError, match="outside the 96x96 image"):
        generate_dataset(work / "lib", work / "normals", tmp_path / "o2", n_images=1, seed=0, layout=tmp_path / "bad.json",
                         progress=False)
    assert not (tmp_path / "o2").exists()  # nothing half-written


def test_cli_generate_and_its_errors(work, monkeypatch, tmp_path):
    monkeypatch.setattr(gen, "load_midg_generator", lambda ckpt, device: FakeGenerator(crop_size=32))
    runner = CliRunner()
    base = ["generate", "--checkpoint", str(work / "lib"), "--normals", str(work / "real"), "--out"]
    res = runner.invoke(app, base + [str(tmp_path / "cp"), "--n-images", "3", "--seed", "1", "--method", "copypaste",
                                     "--profile", "smoke", "--params", str(REPO / "params.yaml")])
    assert res.exit_code == 0, res.output
    ds = load_dataset(tmp_path / "cp")
    assert ds.meta["source"] == "midg-generate" and ds.meta["generate"]["method"] == "copypaste"
    assert ds.meta["params"]["defects_per_image"] == [1, 2]  # from the smoke profile
    # --normals names a dataset with annotated images: by default (canvas auto) they are the canvas
    real = load_dataset(work / "real")
    assert ds.meta["generate"]["canvas"] == "annotated" and {d["canvas"] for d in ds.meta["defects"]} == {"annotated"}
    assert {d["normal"] for d in ds.meta["defects"]} <= {e.file for e in real.images("train")}
    res = runner.invoke(app, base + [str(tmp_path / "m"), "--n-images", "2", "--seed", "0", "--classes", "copper",
                                     "--defects-per-image", "2-3", "--shard", "1/2"])
    assert res.exit_code == 0, res.output
    ds = load_dataset(tmp_path / "m")
    assert [e.file for e in ds.images("train")] == ["images/train/midg_000001.png"]
    assert {d["class"] for d in ds.meta["defects"]} == {"copper"}
    res = runner.invoke(app, base + [str(tmp_path / "r"), "--n-images", "2", "--seed", "0", "--method", "copypaste",
                                     "--box-style", "rect"])
    assert res.exit_code == 0, res.output
    kept = [d for d in load_dataset(tmp_path / "r").meta["defects"] if d["box"] is not None]
    # the label is the pasted defect's box: the drawn size, its rectangle's ring around it
    assert kept and all(d["box"] == d["defect_box"] for d in kept)
    res = runner.invoke(app, base + [str(tmp_path / "pm"), "--n-images", "2", "--seed", "0", "--edges", "library",
                                     "--placement", "matched"])
    assert res.exit_code == 0, res.output
    meta = load_dataset(tmp_path / "pm").meta
    assert meta["generate"]["params"]["placement"] == "matched"
    assert meta["defects"] and all(d.get("entry") is not None for d in meta["defects"])

    def error(args):
        r = runner.invoke(app, base + [str(tmp_path / "e"), "--n-images", "2", "--seed", "0"] + args)
        assert r.exit_code != 0 and r.exception is not None
        return r.exception

    e = error(["--classes", "copper,scratch"])
    assert isinstance(e, ConfigError) and "['scratch']" in str(e) and "valid: open, short, mousebite" in str(e)
    for bad in ("2/2", "x", "1/0"):
        e = error(["--shard", bad])
        assert isinstance(e, ConfigError) and "--shard" in str(e)
    e = error(["--defects-per-image", "3-1"])
    assert isinstance(e, ConfigError) and "LO-HI" in str(e)
    e = error(["--method", "gan"])
    assert isinstance(e, ConfigError) and "'gan' is not one of ['midg', 'copypaste', 'poisson']" in str(e)
    e = error(["--box-style", "loose"])
    assert isinstance(e, ConfigError) and "'loose' is not one of ['learned', 'rect', 'tight']" in str(e)
    e = error(["--placement", "anywhere"])
    assert isinstance(e, ConfigError) and "'anywhere' is not one of ['auto', 'conductor', 'matched', 'surface']" in str(e)
    e = error(["--edges", "shape"])
    assert isinstance(e, ConfigError) and "--shape" in str(e)
    r = runner.invoke(app, ["generate", "--checkpoint", str(tmp_path / "nowhere"), "--normals", str(work / "normals"),
                            "--out", str(tmp_path / "e"), "--n-images", "1", "--seed", "0"])
    assert isinstance(r.exception, DatasetError) and "checkpoint folder does not exist" in str(r.exception)
    (tmp_path / "empty_ckpt").mkdir()
    r = runner.invoke(app, ["generate", "--checkpoint", str(tmp_path / "empty_ckpt"), "--normals", str(work / "normals"),
                            "--out", str(tmp_path / "e"), "--n-images", "1", "--seed", "0"])
    assert isinstance(r.exception, DatasetError) and "config.json: missing" in str(r.exception)
    assert not (tmp_path / "e").exists()


def test_real_generator_batches_do_not_change_results(real_checkpoint, work, tmp_path):
    """A crop's pixels do not depend on which crops share its (padded) batch."""
    cfg = GenerateConfig(composite="rectangle")
    kw = dict(n_images=6, seed=0, batch_size=4, progress=False, config=cfg)
    generate_dataset(real_checkpoint, work / "normals", tmp_path / "a", **kw)
    generate_dataset(real_checkpoint, work / "normals", tmp_path / "b", shard=(1, 2), **kw)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    for name in ("midg_000001.png", "midg_000003.png", "midg_000005.png"):
        assert a[f"images/train/{name}"] == b[f"images/train/{name}"]



def test_grow_box_follows_the_learned_margin_and_stays_in_its_rectangle():
    from midg.augment.labelling import grow_box

    # changed pixels 10 px wide; real boxes leave 25 % empty on each side -> a 20 px box
    assert grow_box((20, 20, 30, 30), (0, 0, 100, 100), [0.25, 0.25, 0.25, 0.25]) == (15, 15, 35, 35)
    assert grow_box((20, 20, 30, 30), (18, 0, 32, 100), [0.25, 0.25, 0.25, 0.25]) == (18, 15, 32, 35)
    assert grow_box((20, 20, 30, 30), (0, 0, 100, 100), None) == (20, 20, 30, 30)


def test_stats_learn_the_margin_of_paired_real_boxes(tmp_path):
    import numpy as np

    from midg.augment.library import fit_defect_stats
    from midg.datasets.boxes import Box
    from midg.datasets.layout import DatasetWriter

    template = np.full((64, 64), 40, np.uint8)
    image = template.copy()
    image[30:34, 30:34] = 220  # 4 px of change inside a 12 px annotated box: 4 px margin a side
    with DatasetWriter(tmp_path / "ds", ["spot"], source="test") as w:
        t = w.add_normal("t", array=template)
        w.add_image("train", "a", array=image, boxes=[Box(0, 26, 26, 38, 38)], template=t)
    margin = fit_defect_stats(load(tmp_path / "ds"))["per_class"]["spot"]["box_margin"]
    assert margin == pytest.approx([4 / 12] * 4, abs=0.02)


def load(path):
    from midg.datasets.layout import load_dataset

    return load_dataset(path)


def test_margin_pairs_rgb_stored_gray_with_gray_templates():
    from midg.augment.library import _box_margin

    gray = np.full((12, 12), 40, np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2).copy()
    rgb[4:8, 4:8] = 220  # DeepPCB mixes RGB-encoded gray images with gray templates
    assert _box_margin(rgb, gray) == pytest.approx([4 / 12, 4 / 12, 4 / 12, 4 / 12])
