"""Invariants of generation that a detector depends on, checked on every generated image:
no visible change without a label, pixels outside rectangles untouched, the surface's own
levels on two-level boards, redraws instead of silent drops, and totality over image sizes.
"""

from __future__ import annotations

import dataclasses

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import midg.augment.generate as gen
from helpers_generate import FakeGenerator, make_normals, make_paired_dataset
from midg.augment.generate import GenerateConfig, generate_dataset
from midg.augment.placement import PAD
from midg.augment.levels import snap_to_levels, surface_levels
from midg.augment.library import write_library_folder
from midg.datasets.images import read_image
from midg.datasets.layout import load_dataset


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("invariants")
    real = load_dataset(make_paired_dataset(root / "real", n_images=12))
    write_library_folder(real, root / "lib", crop_size=32, min_window=16)
    make_normals(root / "normals", n=5)
    return root


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(gen, "load_midg_generator", lambda ckpt, device: FakeGenerator(crop_size=32))


def _check_every_change_is_labelled(ds, normals: Path) -> int:
    """Asserts the invariant on every image; returns how many pixels changed in all."""
    by_image: dict[str, list[dict]] = {}
    for d in ds.meta["defects"]:
        by_image.setdefault(d["image"], []).append(d)
    total = 0
    for e in ds.images("train"):
        img = read_image(ds.path(e.file)).astype(np.int16)
        normal = read_image(normals / by_image[e.file][0]["normal"]).astype(np.int16)
        if img.ndim != normal.ndim:
            img = img if img.ndim == 2 else np.rint(img.mean(axis=2))
            normal = normal if normal.ndim == 2 else np.rint(normal.mean(axis=2))
        diff = np.abs(img - normal)
        diff = diff if diff.ndim == 2 else diff.max(axis=2)
        inside_box = np.zeros(diff.shape, bool)
        for b in e.boxes:
            inside_box[int(np.floor(b.y1)):int(np.ceil(b.y2)), int(np.floor(b.x1)):int(np.ceil(b.x2))] = True
        ys, xs = np.nonzero(diff)
        assert inside_box[ys, xs].all(), f"{e.file}: {int((~inside_box[ys, xs]).sum())} changed pixels outside every box"
        # and every labelled box holds a change (no empty labels)
        for b in e.boxes:
            assert diff[int(b.y1):int(np.ceil(b.y2)), int(b.x1):int(np.ceil(b.x2))].any()
        assert len(e.boxes) == sum(d["box"] is not None for d in by_image[e.file])
        total += len(ys)
    return total


@pytest.mark.parametrize("method", ["midg", "copypaste", "poisson"])
def test_no_changed_pixel_outside_its_label_box(work, fake, tmp_path, method):
    ds = generate_dataset(work / "lib", work / "normals", tmp_path / "out", n_images=10, seed=3, method=method,
                          batch_size=8, progress=False)
    assert _check_every_change_is_labelled(ds, work / "normals") > 0


@pytest.mark.parametrize("method,edges", [("midg", "library"), ("midg", "generated"), ("copypaste", "library")])
def test_matched_placement_keeps_the_invariants_and_the_real_box_sizes(work, fake, tmp_path, method, edges):
    from midg.augment.library import load_library

    cfg = GenerateConfig(placement="matched")
    runs = [generate_dataset(work / "lib", work / "normals", tmp_path / f"out{i}", n_images=6, seed=5, method=method,
                             edges=edges, batch_size=8, progress=False, config=cfg) for i in (0, 1)]
    ds = runs[0]
    assert _check_every_change_is_labelled(ds, work / "normals") > 0
    lib = load_library(work / "lib")
    placed = [d for d in ds.meta["defects"] if d.get("entry") is not None]
    assert placed and len(placed) == len(ds.meta["defects"])  # the test boards' library is paired
    for d in placed:
        h, w = (int(v) for v in lib.box_hw[d["entry"]])
        x1, y1, x2, y2 = d["entry_box"]
        assert (y2 - y1, x2 - x1) == ((w, h) if d["transform"] % 2 else (h, w)), d  # the real box, maybe turned
        rx1, ry1, rx2, ry2 = d["rect"]
        if edges == "library":  # painted around the real box, 4 px of surface a side (inside the image)
            assert rx1 <= x1 and ry1 <= y1 and x2 <= rx2 and y2 <= ry2 and (rx2 - rx1) > (x2 - x1)
        else:  # the edge block fills its rectangle: that is the real box itself
            assert [rx1, ry1, rx2, ry2] == [x1, y1, x2, y2]
        assert lib.names[int(lib.classes[d["entry"]])] == d["class"] and 0 <= d["mismatch"] <= 1
    assert ds.meta["generate"]["params"]["placement"] == "matched"
    for a, b in zip(runs[0].images("train"), runs[1].images("train")):  # same seed, same bytes
        assert runs[0].path(a.file).read_bytes() == runs[1].path(b.file).read_bytes()


@pytest.mark.parametrize("method", ["midg", "copypaste"])
def test_rect_boxes_are_the_rectangles_and_keep_the_invariant(work, fake, tmp_path, method):
    ds = generate_dataset(work / "lib", work / "normals", tmp_path / "out", n_images=8, seed=4, method=method,
                          batch_size=8, progress=False, config=GenerateConfig(box_style="rect", placement="conductor"))
    assert _check_every_change_is_labelled(ds, work / "normals") > 0
    kept = [d for d in ds.meta["defects"] if d["box"] is not None]
    # the label is the defect's own box (the drawn size, PAD px inside its rectangle) and whatever changed
    assert kept and all(_between(d["defect_box"], d["box"], d["rect"]) for d in kept)
    assert any(d["box"] == d["defect_box"] for d in kept)
    # the ring: PAD px of surface around the defect's box, where the image has room
    assert all(d["defect_box"][0] - d["rect"][0] == PAD for d in kept if d["rect"][0] > 0)
    assert ds.meta["generate"]["params"]["box_style"] == "rect"


def _between(inner, box, outer) -> bool:
    return (outer[0] <= box[0] <= inner[0] and outer[1] <= box[1] <= inner[1]
            and inner[2] <= box[2] <= outer[2] and inner[3] <= box[3] <= outer[3])


@pytest.mark.parametrize("method", ["midg", "copypaste"])
def test_matched_rect_labels_are_the_real_boxes(work, fake, tmp_path, method):
    ds = generate_dataset(work / "lib", work / "normals", tmp_path / "out", n_images=6, seed=6, method=method,
                          edges="library", batch_size=8, progress=False,
                          config=GenerateConfig(placement="matched", box_style="rect"))
    assert _check_every_change_is_labelled(ds, work / "normals") > 0
    kept = [d for d in ds.meta["defects"] if d["box"] is not None]
    assert kept
    for d in kept:
        (bx1, by1, bx2, by2), (ex1, ey1, ex2, ey2), (rx1, ry1, rx2, ry2) = d["box"], d["entry_box"], d["rect"]
        assert bx1 <= ex1 and by1 <= ey1 and ex2 <= bx2 and ey2 <= by2  # the real box, and whatever changed
        assert rx1 <= bx1 and ry1 <= by1 and bx2 <= rx2 and by2 <= ry2
    assert any(d["box"] == d["entry_box"] for d in kept)


def test_a_dropped_defect_leaves_nothing_behind(work, fake, tmp_path):
    # an impossible bar: nothing ever counts as changed, so every defect is dropped after its redraws
    cfg = GenerateConfig(min_changed_px=10**6, redraws=1)
    ds = generate_dataset(work / "lib", work / "normals", tmp_path / "out", n_images=4, seed=0, batch_size=8,
                          progress=False, config=cfg)
    assert ds.meta["dropped"] == len(ds.meta["defects"]) > 0
    assert all(d["attempts"] == 2 for d in ds.meta["defects"])
    for e in ds.images("train"):
        normal = next(d["normal"] for d in ds.meta["defects"] if d["image"] == e.file)
        assert np.array_equal(read_image(ds.path(e.file)), read_image(work / "normals" / normal)), e.file


class CoinGenerator(FakeGenerator):
    """Paints the whole hole bright, or nothing, on a coin drawn from the defect's noise."""

    def draw_edges(self, inpainted, holes, class_ids, generator):
        coin = torch.rand((holes.shape[0], 1, 1, 1), generator=generator) < 0.5
        return holes * coin

    def paint(self, inpainted, edges, holes, class_ids):
        return torch.where(edges > 0.5, torch.full_like(inpainted, 0.95), inpainted)


class SpillGenerator(FakeGenerator):
    """Draws a 4 px square at the hole's centre as structure but paints the whole hole bright:
    a painting that spills past its structure."""

    def draw_edges(self, inpainted, holes, class_ids, generator):
        out = torch.zeros_like(holes)
        for i in range(holes.shape[0]):
            ys, xs = torch.nonzero(holes[i, 0] > 0.5, as_tuple=True)
            cy, cx = int(ys.float().mean()), int(xs.float().mean())
            out[i, 0, cy - 2:cy + 2, cx - 2:cx + 2] = 1.0
        return out * holes

    def paint(self, inpainted, edges, holes, class_ids):
        return torch.where(holes > 0.5, torch.full_like(inpainted, 0.97), inpainted)


@pytest.mark.parametrize("margin", [2, None])
def test_the_change_stays_near_the_structure_it_was_painted_from(work, monkeypatch, tmp_path, margin):
    monkeypatch.setattr(gen, "load_midg_generator", lambda ckpt, device: SpillGenerator(crop_size=32))
    square = tmp_path / "square.png"  # a given structure (a shape): 4x4 px inside an 8 px image
    shape = np.zeros((8, 8), np.uint8)
    shape[2:6, 2:6] = 255
    cv2.imwrite(str(square), shape)
    layout = tmp_path / "layout.json"  # one 24 px rectangle per normal: the structure is its middle 12 px
    layout.write_text(json.dumps({p.name: [{"rect": [30, 30, 54, 54], "class": "pin-hole"}]
                                  for p in sorted((work / "normals").iterdir())}))
    ds = generate_dataset(work / "lib", work / "normals", tmp_path / "out", n_images=5, seed=2, shape=square,
                          layout=layout, batch_size=8, progress=False,
                          config=GenerateConfig(structure_margin=margin, levels="off"))
    kept = [d for d in ds.meta["defects"] if d["box"] is not None]
    assert kept
    for d in kept:
        x1, y1, x2, y2 = d["rect"]
        img = read_image(ds.path(d["image"])).astype(int)
        normal = read_image(work / "normals" / d["normal"]).astype(int)
        changed = np.abs(img - normal)[y1:y2, x1:x2] > 24
        ys, xs = np.nonzero(changed)
        if margin is None:  # the spill is kept: the change reaches the rectangle's border
            assert ys.min() == 0 or xs.min() == 0 or ys.max() == y2 - y1 - 1 or xs.max() == x2 - x1 - 1
        else:  # 12 px of structure plus 2 px a side, well inside the 24 px rectangle
            assert xs.min() >= 4 and ys.min() >= 4 and xs.max() <= 19 and ys.max() <= 19, d


def test_a_generated_structure_does_not_limit_the_change(work, monkeypatch, tmp_path):
    monkeypatch.setattr(gen, "load_midg_generator", lambda ckpt, device: SpillGenerator(crop_size=32))
    ds = generate_dataset(work / "lib", work / "normals", tmp_path / "out", n_images=4, seed=2, classes=["pin-hole"],
                          batch_size=8, progress=False,
                          config=GenerateConfig(levels="off", placement="conductor", edges="generated",
                                                edge_feather=0))  # (the feather would soften the rectangle's edge)
    for d in (d for d in ds.meta["defects"] if d["box"] is not None):
        x1, y1, x2, y2 = d["rect"]
        changed = np.abs(read_image(ds.path(d["image"])).astype(int) - read_image(work / "normals" / d["normal"]))
        assert (changed[y1:y2, x1:x2] > 24).all()  # the painting's spill is kept: the whole rectangle


def test_failed_defects_are_redrawn_and_the_class_mix_is_kept(work, monkeypatch, tmp_path):
    monkeypatch.setattr(gen, "load_midg_generator", lambda ckpt, device: CoinGenerator(crop_size=32))
    kw = dict(n_images=12, seed=5, classes=["copper", "spur"], batch_size=8, progress=False)
    # the edge block and a uniform mix: spur has no real example (the real mix would never draw it)
    cfg = GenerateConfig(placement="conductor", edges="generated", class_mix="uniform")
    none = generate_dataset(work / "lib", work / "normals", tmp_path / "r0", config=dataclasses.replace(cfg, redraws=0), **kw)
    many = generate_dataset(work / "lib", work / "normals", tmp_path / "r8", config=dataclasses.replace(cfg, redraws=8), **kw)
    assert none.meta["dropped"] > 0  # half the coins fail: without redraws they are lost
    assert many.meta["dropped"] == 0  # 2^-9 a defect: redrawn until they succeed
    assert max(d["attempts"] for d in many.meta["defects"]) > 1
    # the labels follow the requested mix: every planned defect of each class is labelled
    planned = [d["class"] for d in many.meta["defects"]]
    labelled = [many.names[b.cls] for e in many.images("train") for b in e.boxes]
    assert sorted(planned) == sorted(labelled) and set(planned) == {"copper", "spur"}


def test_defect_count_follows_the_real_images_by_default(work, fake, tmp_path):
    stats = json.loads((work / "lib" / "stats.json").read_text())
    hist = stats["defects_per_image"]
    real = load_dataset(work / "real")
    counts = [len(e.boxes) for e in real.images("train") if e.boxes]
    assert hist == np.bincount(counts, minlength=2)[1:].tolist()
    ds = generate_dataset(work / "lib", work / "normals", tmp_path / "out", n_images=30, seed=0, batch_size=8,
                          progress=False, method="copypaste")
    per_image = {}
    for d in ds.meta["defects"]:
        per_image[d["image"]] = per_image.get(d["image"], 0) + 1
    assert max(per_image.values()) <= len(hist)
    assert abs(np.mean(list(per_image.values())) - np.mean(counts)) < 1.0


# ---------------------------------------------------------------- two-level surfaces


def _two_level(rng, h=60, w=80):
    img = np.full((h, w), 12, np.uint8)
    for _ in range(6):
        x, y = rng.integers(0, w - 10), rng.integers(0, h - 10)
        img[y:y + rng.integers(3, 12), x:x + rng.integers(10, 40)] = 243
    noise = rng.integers(-3, 4, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def test_surface_levels_found_on_two_level_boards_and_not_on_texture():
    rng = np.random.default_rng(0)
    lv = surface_levels(_two_level(rng))
    assert lv is not None and 60 < lv.threshold < 200
    texture = rng.integers(0, 256, (60, 80)).astype(np.uint8)
    assert surface_levels(texture) is None
    assert surface_levels(np.full((10, 10), 7, np.uint8)) is None


def test_snapped_pixels_take_only_the_surfaces_own_values():
    rng = np.random.default_rng(1)
    normal = _two_level(rng)
    levels = surface_levels(normal)
    painted = normal.copy()
    painted[20:40, 10:50] = 128 + rng.integers(-60, 60, (20, 40))  # soft grey paint, both sides of the split
    out = snap_to_levels(normal, painted, (10, 20, 50, 40), levels)
    assert set(np.unique(out)) <= set(np.unique(normal))  # no grey: only values the surface already has
    flipped = (out > levels.threshold) != (normal[20:40, 10:50] > levels.threshold)
    assert flipped.any()
    assert np.array_equal(out[~flipped], normal[20:40, 10:50][~flipped])


def test_two_level_generation_writes_no_new_grey_levels(work, tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "load_midg_generator", lambda ckpt, device: FakeGenerator(crop_size=32))
    rng = np.random.default_rng(2)
    normals = tmp_path / "normals"
    normals.mkdir()
    for i in range(3):
        cv2.imwrite(str(normals / f"n{i}.png"), _two_level(rng, 96, 96))
    ds = generate_dataset(work / "lib", normals, tmp_path / "out", n_images=6, seed=0, batch_size=8,
                          progress=False, config=GenerateConfig(levels="auto"))
    for e in ds.images("train"):
        normal = read_image(normals / next(d["normal"] for d in ds.meta["defects"] if d["image"] == e.file))
        assert set(np.unique(read_image(ds.path(e.file)))) <= set(np.unique(normal)), e.file


# ---------------------------------------------------------------- any image size


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(w=st.integers(4, 90), h=st.integers(4, 90), method=st.sampled_from(["midg", "copypaste", "poisson"]),
       big=st.booleans(), seed=st.integers(0, 1000))
def test_generation_is_total_over_image_sizes(work, tmp_path_factory, w, h, method, big, seed):
    """Images smaller than the context window, odd, non-square, tiny, rectangles up to the
    whole image: generation never raises, and whatever it writes keeps the invariants."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gen, "load_midg_generator", lambda ckpt, device: FakeGenerator(crop_size=32))
        _total_case(work, tmp_path_factory.mktemp("sizes"), w, h, method, big, seed)


def _total_case(work, root, w, h, method, big, seed):
    normals = root / "normals"
    normals.mkdir()
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(normals / "n.png"), rng.integers(0, 256, (h, w)).astype(np.uint8))
    layout = None
    if big:  # a rectangle as large as the image
        layout = root / "layout.json"
        layout.write_text(json.dumps({"n.png": [{"rect": [0, 0, w, h], "class": "copper"}]}))
    ds = generate_dataset(work / "lib", normals, root / "out", n_images=2, seed=seed, method=method,
                          batch_size=4, progress=False, layout=layout)
    assert ds.counts()["train"]["images"] == 2
    _check_every_change_is_labelled(ds, normals)
