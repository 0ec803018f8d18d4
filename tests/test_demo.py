"""The procedural demo boards: exact boxes, determinism, and datasets every consumer reads.

    .venv/bin/python -m pytest tests/test_demo.py -x -q
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from midg.datasets.demo import class_schedule, draw_board_pair, make_demo_dataset, split_of
from midg.datasets.errors import ConfigError
from midg.datasets.images import read_image
from midg.datasets.layout import DEFECT_CLASSES, SPLITS, load_dataset

N_IMAGES, SIZE, SEED = 18, 128, 7


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "boards"
    make_demo_dataset(out, n_images=N_IMAGES, seed=SEED, size=SIZE, progress=False)
    return out


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a != b
    return d.any(axis=2) if d.ndim == 3 else d


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _check_pair_exact(template: np.ndarray, image: np.ndarray, boxes) -> list[int]:
    """Image and template differ only inside the boxes, and each box is tight around its
    differing pixels; returns the changed-pixel count of each box."""
    diff = _diff(template, image)
    inside = np.zeros_like(diff)
    counts = []
    for b in boxes:
        x1, y1, x2, y2 = (int(v) for v in b.xyxy())
        assert (x1, y1, x2, y2) == tuple(b.xyxy()), "boxes are whole pixels"
        inside[y1:y2, x1:x2] = True
        own = np.zeros_like(diff)
        own[y1:y2, x1:x2] = diff[y1:y2, x1:x2]
        assert own.any(), f"box {b.xyxy()} holds no changed pixel"
        assert _tight_box(own) == (x1, y1, x2, y2), f"box {b.xyxy()} is not tight around its changed pixels"
        counts.append(int(own.sum()))
    assert not (diff & ~inside).any(), "template and defect image differ outside every box"
    for i, a in enumerate(boxes):  # defects never touch: every changed pixel has one owner
        for b in boxes[i + 1:]:
            assert a.x2 <= b.x1 or b.x2 <= a.x1 or a.y2 <= b.y1 or b.y2 <= a.y1, f"{a} overlaps {b}"
    return counts


# ---------------------------------------------------------------- one pair


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), color=st.booleans(), size=st.sampled_from([64, 96, 160]))
def test_pair_differs_exactly_inside_tight_boxes(seed, color, size):
    pair = draw_board_pair(np.random.default_rng(seed), size=size, color=color)
    assert pair.template.dtype == np.uint8 and pair.template.shape == pair.image.shape
    assert pair.template.shape == ((size, size, 3) if color else (size, size))
    assert 1 <= len(pair.boxes) <= 4 and len(pair.defect_masks) == len(pair.boxes)
    counts = _check_pair_exact(pair.template, pair.image, pair.boxes)
    assert counts == pair.changed_pixels
    for b, m in zip(pair.boxes, pair.defect_masks):
        assert _tight_box(m) == tuple(int(v) for v in b.xyxy())


def test_pair_is_a_function_of_the_rng_state():
    a = draw_board_pair(np.random.default_rng([3, 1]), size=128)
    b = draw_board_pair(np.random.default_rng([3, 1]), size=128)
    c = draw_board_pair(np.random.default_rng([3, 2]), size=128)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.template, b.template) and a.boxes == b.boxes
    assert not np.array_equal(a.template, c.template)


def test_given_classes_are_drawn_in_order():
    for classes in ([0, 1, 2, 3], [4, 5], [5, 5, 5], [1]):
        pair = draw_board_pair(np.random.default_rng(11), size=128, classes=classes)
        assert [b.cls for b in pair.boxes] == classes


def test_random_classes_cover_all_six_and_defects_vary_in_size():
    seen, sides = Counter(), []
    for i in range(30):
        pair = draw_board_pair(np.random.default_rng([1, i]), size=256)
        seen.update(DEFECT_CLASSES[b.cls] for b in pair.boxes)
        sides += [max(b.width, b.height) for b in pair.boxes]
    assert set(seen) == set(DEFECT_CLASSES), seen
    assert min(sides) <= 8 and max(sides) >= 16, (min(sides), max(sides))  # small and larger defects
    assert 6 <= float(np.median(sides)) <= 20


def test_boards_look_like_circuits():
    """Copper covers part of the board and reads brighter than the substrate; colour is amber."""
    gray = draw_board_pair(np.random.default_rng(5), size=256)
    t = gray.template.astype(np.float32)
    bright = t > np.percentile(t, 50) + 25
    assert 0.05 < bright.mean() < 0.7, "the board should show copper and substrate"
    rgb = draw_board_pair(np.random.default_rng(5), size=256, color=True).template.reshape(-1, 3).mean(0)
    assert rgb[0] > rgb[1] > rgb[2], f"expected amber (R > G > B), got mean RGB {rgb}"


def test_pair_is_fast():
    draw_board_pair(np.random.default_rng(0), size=256)  # warm-up (imports, allocations)
    t0 = time.perf_counter()
    for i in range(5):
        draw_board_pair(np.random.default_rng([0, i]), size=256)
    per_pair = (time.perf_counter() - t0) / 5
    assert per_pair < 0.5, f"{per_pair:.3f} s per 256 px pair (measured ~0.025 s on 2 CPU cores)"  # loose: shared CI


def test_bad_arguments_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="classes"):
        draw_board_pair(np.random.default_rng(0), classes=[6])
    with pytest.raises(ConfigError, match="n_defects"):
        draw_board_pair(np.random.default_rng(0), n_defects=(3, 2))
    with pytest.raises(ConfigError, match="size"):
        draw_board_pair(np.random.default_rng(0), size=8)
    for kwargs, what in (({"n_images": 0}, "n-images"), ({"seed": -1}, "seed"), ({"val_frac": 0.5, "test_frac": 0.5}, "frac"),
                         ({"size": 16}, "size")):
        args = {"n_images": 2, "seed": 0, **kwargs}
        with pytest.raises(ConfigError, match=what):
            make_demo_dataset(tmp_path / "bad", progress=False, **args)
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------- the dataset


def test_dataset_loads_with_pairs_and_exact_truth(demo):
    ds = load_dataset(demo, check_images=True)
    entries = [e for s in SPLITS for e in ds.images(s)]
    assert len(entries) == N_IMAGES and len(ds.normals) >= N_IMAGES
    assert ds.meta["source"] == "demo" and ds.meta["seed"] == SEED and ds.meta["params"]["size"] == SIZE
    truth = {t["image"]: t for t in ds.meta["truth"]}
    assert len(truth) == N_IMAGES
    for e in entries:
        assert (e.width, e.height) == (SIZE, SIZE) and e.boxes
        # test boards' templates stay out of normals/: no test pixel may reach training
        folder = "templates/test" if e.split == "test" else "normals"
        assert e.template == f"{folder}/{Path(e.file).stem}.png"
        image, template = read_image(ds.path(e.file)), read_image(ds.path(e.template))
        counts = _check_pair_exact(template, image, list(e.boxes))
        t = truth[e.file]
        assert t["template"] == e.template
        assert sorted(d["box"] for d in t["defects"]) == sorted([int(v) for v in b.xyxy()] for b in e.boxes)
        by_box = {tuple(d["box"]): d for d in t["defects"]}
        for b, n in zip(e.boxes, counts):
            d = by_box[tuple(int(v) for v in b.xyxy())]
            assert d["class"] == DEFECT_CLASSES[b.cls] and d["changed_pixels"] == n


def test_classes_are_balanced_and_splits_follow_the_fractions(demo):
    ds = load_dataset(demo)
    per_class = Counter(DEFECT_CLASSES[b.cls] for s in SPLITS for e in ds.images(s) for b in e.boxes)
    assert set(per_class) == set(DEFECT_CLASSES)
    assert max(per_class.values()) - min(per_class.values()) <= 1, per_class
    sizes = {s: len(ds.images(s)) for s in SPLITS}
    assert sizes == {"test": round(N_IMAGES * 0.25), "val": round(N_IMAGES * 0.15),
                     "train": N_IMAGES - round(N_IMAGES * 0.25) - round(N_IMAGES * 0.15)}
    assert split_of(N_IMAGES, SEED, 0.15, 0.25) != split_of(N_IMAGES, SEED + 1, 0.15, 0.25)


def test_class_schedule_deals_shuffled_blocks_of_six():
    slots = class_schedule(0, 0, 60)
    for b in range(10):
        assert sorted(slots[b * 6:(b + 1) * 6]) == list(range(6))
    assert class_schedule(0, 13, 5) == slots[13:18]  # any window of the stream, same classes
    assert class_schedule(1, 0, 60) != slots


def test_image_i_does_not_depend_on_dataset_size(demo, tmp_path):
    small = tmp_path / "small"
    make_demo_dataset(small, n_images=4, seed=SEED, size=SIZE, progress=False)
    for i in range(4):
        name = f"board_{i:05d}.png"
        # a board's template lives in normals/ or, for test boards, templates/test/
        [ta] = [p for p in (small / "normals" / name, small / "templates/test" / name) if p.exists()]
        [tb] = [p for p in (demo / "normals" / name, demo / "templates/test" / name) if p.exists()]
        assert ta.read_bytes() == tb.read_bytes()
        [a] = list(small.glob(f"images/*/{name}"))
        [b] = list(demo.glob(f"images/*/{name}"))
        assert a.read_bytes() == b.read_bytes()


def test_coco_files_load_in_pycocotools(demo):
    import contextlib
    import io

    from pycocotools.coco import COCO

    ds = load_dataset(demo)
    for split in SPLITS:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(demo / "annotations" / f"{split}.json"))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(DEFECT_CLASSES)
        assert len(coco.getImgIds()) == len(ds.images(split))
        for e in ds.images(split):
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[e.image_id]))
            got = sorted((a["category_id"] - 1, *a["bbox"]) for a in anns)
            assert got == sorted((b.cls, *b.xywh()) for b in e.boxes)


@pytest.fixture
def ultralytics_offline(tmp_path):
    try:
        from midg.detectors.offline import ultralytics_offline as offline
    except ImportError:  # the detectors' helper is missing: set the variables ourselves
        import os

        os.environ.update(YOLO_OFFLINE="true", YOLO_AUTOINSTALL="false", YOLO_CONFIG_DIR=str(tmp_path / "yolo_config"))
        import ultralytics as mod

        return mod
    return offline(tmp_path / "yolo_config")


def test_ultralytics_accepts_the_dataset_offline(demo, ultralytics_offline):
    from ultralytics.data.utils import check_det_dataset

    info = check_det_dataset(str(demo / "data.yaml"), autodownload=False)
    assert info["nc"] == len(DEFECT_CLASSES)
    assert list(info["names"].values()) == list(DEFECT_CLASSES)
    for split in ("train", "val", "test"):
        assert Path(info[split]).resolve() == (demo / "images" / split).resolve()


# ---------------------------------------------------------------- the command


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_cli_same_seed_same_bytes_other_seed_differs(tmp_path):
    from midg.pipelines.cli import app

    runner = CliRunner()
    outs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        res = runner.invoke(app, ["data", "demo", str(tmp_path / name), "--n-images", "12", "--seed", str(seed),
                                  "--size", "128", "--val-frac", "0.2", "--test-frac", "0.2"])
        assert res.exit_code == 0, res.output + repr(res.exception)
        outs[name] = _tree_bytes(tmp_path / name)
    a, b, c = outs["a"], outs["b"], outs["c"]
    assert len([k for k in a if k.startswith("normals/")]) == 12
    assert len([k for k in a if k.startswith("images/")]) == 12
    assert a == b, [k for k in a if a[k] != b.get(k)]
    assert sum(1 for k in a if k.endswith(".png") and a[k] != c.get(k)) >= 12
    meta = json.loads(a["meta.json"])
    assert meta["params"]["val_frac"] == 0.2 and meta["params"]["color"] is False


def test_cli_color_and_bad_input(tmp_path):
    from midg.pipelines.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["data", "demo", str(tmp_path / "rgb"), "--n-images", "3", "--seed", "0", "--size", "96", "--color"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    ds = load_dataset(tmp_path / "rgb", check_images=True)
    e = [e for s in SPLITS for e in ds.images(s)][0]
    assert read_image(ds.path(e.file)).shape == (96, 96, 3)
    res = runner.invoke(app, ["data", "demo", str(tmp_path / "bad"), "--n-images", "0"])
    assert isinstance(res.exception, ConfigError) and "--n-images" in str(res.exception)
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------- zoom (magnified boards)


def _sides(zoom: float, n: int = 24) -> list[int]:
    return [max(b.width, b.height) for i in range(n)
            for b in draw_board_pair(np.random.default_rng([1, i]), size=256, zoom=zoom).boxes]


def test_zoom_magnifies_defects_and_keeps_boxes_exact():
    """zoom 3 (the demo profile): defects about twice as big (median ~20 px vs ~9), still exact
    tight boxes, still smaller than the board; zoom 1 is the default drawing, bit for bit."""
    one, three = float(np.median(_sides(1.0))), float(np.median(_sides(3.0)))
    assert 6 <= one <= 12 and 15 <= three <= 28, (one, three)
    assert three >= 1.7 * one, (one, three)
    for i, zoom in enumerate((2.0, 3.0, 3.0, 4.0)):
        pair = draw_board_pair(np.random.default_rng([9, i]), size=256, zoom=zoom, color=i % 2 == 1)
        counts = _check_pair_exact(pair.template, pair.image, pair.boxes)
        assert counts == pair.changed_pixels
        assert all(max(b.width, b.height) < 128 for b in pair.boxes)
    a = draw_board_pair(np.random.default_rng(4), size=128)
    b = draw_board_pair(np.random.default_rng(4), size=128, zoom=1.0)
    assert np.array_equal(a.image, b.image) and a.boxes == b.boxes
    with pytest.raises(ConfigError, match="zoom"):
        draw_board_pair(np.random.default_rng(0), zoom=0.1)


def test_zoomed_boards_still_look_like_circuits():
    """Magnified copper: wider traces, so fewer, larger bright runs, but copper and substrate both."""
    for i in range(4):
        t = draw_board_pair(np.random.default_rng([6, i]), size=256, zoom=3.0).template.astype(np.float32)
        bright = t > np.percentile(t, 50) + 25
        assert 0.05 < bright.mean() < 0.8, (i, bright.mean())


def test_cli_zoom_matches_the_api_and_is_recorded(tmp_path):
    from midg.pipelines.cli import app

    res = CliRunner().invoke(app, ["data", "demo", str(tmp_path / "z"), "--n-images", "4", "--seed", "3",
                                   "--size", "96", "--zoom", "2"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    make_demo_dataset(tmp_path / "api", n_images=4, seed=3, size=96, zoom=2.0, progress=False)
    assert _tree_bytes(tmp_path / "z") == _tree_bytes(tmp_path / "api")
    assert json.loads((tmp_path / "z" / "meta.json").read_text())["params"]["zoom"] == 2.0
    make_demo_dataset(tmp_path / "plain", n_images=4, seed=3, size=96, progress=False)
    assert "zoom" not in json.loads((tmp_path / "plain" / "meta.json").read_text())["params"]  # zoom 1: bytes of before
    plain, zoomed = _tree_bytes(tmp_path / "plain"), _tree_bytes(tmp_path / "z")
    assert sum(1 for k in plain if k.endswith(".png") and plain[k] != zoomed.get(k)) >= 4
    with pytest.raises(ConfigError, match="--zoom"):
        make_demo_dataset(tmp_path / "bad", n_images=2, seed=0, zoom=20.0, progress=False)
    assert not (tmp_path / "bad").exists()
