"""The defect library on unpaired photographs annotated with outlines: the changed mask and
the structure are the annotated polygon (not the whole box), and `deform_mask` makes new
shapes from real ones (scale, rotation, elastic) reproducibly. Sources without instance
masks keep their library byte for byte.

    .venv/bin/python -m pytest tests/test_photo_library.py -x -q
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from midg.augment.library import build_library, load_library, write_library
from midg.augment.outlines import Deformation, deform_mask
from midg.datasets.images import read_mask
from midg.datasets.layout import load_dataset
from photo_builders import write_photo_set


def test_library_takes_the_polygon_as_changed_mask_and_structure(tmp_path):
    ds = load_dataset(write_photo_set(tmp_path / "photo"))
    arrays, sources = build_library(ds, crop_size=32)
    assert arrays["masked"].all() and not arrays["paired"].any()
    masks = ds.meta["instance_masks"]
    i = 0
    for e in ds.images("train"):
        inst = read_mask(ds.path(masks[e.file]))
        for k, _ in enumerate(e.boxes):
            x1, y1, x2, y2 = sources[i]["box"]
            want = (inst[y1:y2, x1:x2] == k + 1).astype(np.uint8)
            ph, pw = arrays["patch_hw"][i]
            got = arrays["changed"][i, 0, :ph, :pw]
            assert got.shape == want.shape and np.array_equal(got, want)
            assert np.array_equal(arrays["edges"][i, 0, :ph, :pw], want)
            assert 0 < got.mean() < 1  # an outline, not the whole box
            i += 1
    write_library(ds, tmp_path / "lib", crop_size=32)
    lib = load_library(tmp_path / "lib")
    assert lib.masked.all()


def test_without_instance_masks_the_library_is_unchanged(tmp_path):
    root = write_photo_set(tmp_path / "photo")
    meta = json.loads((root / "meta.json").read_text())
    meta.pop("instance_masks")
    (root / "meta.json").write_text(json.dumps(meta))
    arrays, _ = build_library(load_dataset(root), crop_size=32)
    assert not arrays["masked"].any() and arrays["changed"][:, 0].max() == 1
    ph, pw = arrays["patch_hw"][0]
    assert arrays["changed"][0, 0, :ph, :pw].all()  # the whole box, as before
    write_library(load_dataset(root), tmp_path / "lib", crop_size=32)
    assert not load_library(tmp_path / "lib").masked.any()


def _ellipse() -> np.ndarray:
    m = np.zeros((24, 40), np.uint8)
    cv2.ellipse(m, (20, 12), (16, 7), 0, 0, 360, 1, -1)
    return m


def test_deform_mask_identity_and_reproducible():
    m = _ellipse()
    none = Deformation(scale=(1.0, 1.0), stretch=0.0, rotation=0.0, elastic=0.0)
    assert np.array_equal(deform_mask(m, np.random.default_rng(0), none), m[m.any(1)][:, m.any(0)])
    a = deform_mask(m, np.random.default_rng(5))
    b = deform_mask(m, np.random.default_rng(5))
    c = deform_mask(m, np.random.default_rng(6))
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_deform_mask_scales_rotates_and_warps():
    m = _ellipse()
    area = m.sum()
    for seed in range(20):
        out = deform_mask(m, np.random.default_rng(seed))
        # area follows the scale draw (0.75..1.3 squared), give or take the warp's bending
        assert 0.75 ** 2 * 0.7 * area <= out.sum() <= 1.3 ** 2 * 1.3 * area
        assert set(np.unique(out)) <= {0, 1}
    # a quarter turn alone turns a wide shape tall
    quarter = Deformation(scale=(1.0, 1.0), stretch=0.0, rotation=90.0, elastic=0.0)
    shapes = [deform_mask(m, np.random.default_rng(s), quarter).shape for s in range(40)]
    assert any(h > w for h, w in shapes) and any(w > h for h, w in shapes)
    # the elastic warp alone changes the outline but keeps its size
    warp = Deformation(scale=(1.0, 1.0), stretch=0.0, rotation=0.0, elastic=0.2)
    out = deform_mask(m, np.random.default_rng(3), warp)
    canvas = np.zeros((60, 60), np.uint8)
    other = canvas.copy()
    canvas[:m.shape[0], :m.shape[1]] = m
    other[:out.shape[0], :out.shape[1]] = out
    iou = (canvas & other).sum() / (canvas | other).sum()
    assert iou < 0.97 and 0.6 * area < out.sum() < 1.4 * area
    with pytest.raises(ValueError):
        deform_mask(m, np.random.default_rng(0), Deformation(scale=(1.2, 0.8)))


def test_shading_map_marks_the_darker_pixels_of_an_outline():
    from midg.augment.outlines import SHADING_FLOOR, shading_map

    filled = np.full((20, 20, 3), 150, np.uint8)
    image = filled.copy()
    mask = np.zeros((20, 20), np.uint8)
    mask[5:15, 5:15] = 1
    image[5:15, 5:10] = 60    # the dark half of the pit
    image[5:15, 10:15] = 200  # its bright (specular) half
    s = shading_map(image, filled, mask)
    assert (s[mask == 0] == 0).all()
    assert s[5:15, 5:10].min() == pytest.approx(1.0) and s[5:15, 10:15].max() == pytest.approx(SHADING_FLOOR)
    assert s[mask > 0].min() >= SHADING_FLOOR > 0.5  # the outline still reads as a mask (> 0.5)


def test_shading_map_keeps_a_pits_faint_inner_pattern_at_full_contrast():
    # a deep pit whose inside varies by only 12 grey levels (core, rim, grain): an absolute
    # scale left that in a sliver of the map's range, which the defect module smoothed away
    from midg.augment.outlines import SHADING_FLOOR, shading_map

    rng = np.random.default_rng(0)
    filled = np.full((32, 32, 3), 180, np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 1
    grain = rng.integers(0, 13, (16, 16))
    image = filled.copy()
    image[8:24, 8:24] = (60 + grain)[..., None]
    s = shading_map(image, filled, mask)
    inside = s[mask > 0]
    assert inside.max() - inside.min() > 0.9 * (1 - SHADING_FLOOR)
    assert np.corrcoef(inside, -grain.ravel())[0, 1] > 0.95  # darker grain, higher map
    flat = image.copy()
    flat[8:24, 8:24] = 66  # no pattern: the whole outline at the top of the map
    assert (shading_map(flat, filled, mask)[mask > 0] == 1.0).all()


def test_deform_structure_warps_values_with_the_mask():
    from midg.augment.outlines import deform_structure

    m = _ellipse()
    values = np.where(m > 0, np.linspace(0.6, 1.0, m.shape[1])[None, :], 0.0).astype(np.float32)
    for seed in range(10):
        mask_only = deform_mask(m, np.random.default_rng(seed))
        shape, moved = deform_structure(m, values, np.random.default_rng(seed))
        assert np.array_equal(shape, mask_only)  # the same draws: the shape does not depend on the values
        assert moved.shape == shape.shape and (moved[shape == 0] == 0).all()
        inside = moved[shape > 0]
        assert 0.55 <= inside.min() and inside.max() <= 1.0 + 1e-5 and inside.std() > 0.03  # the gradient survives


def test_library_stores_the_outlines_shading_and_only_for_outlines(tmp_path):
    ds = load_dataset(write_photo_set(tmp_path / "photo"))
    arrays, _ = build_library(ds, crop_size=32)
    assert "shading" in arrays
    for i in range(len(arrays["classes"])):
        ph, pw = arrays["patch_hw"][i]
        sh = arrays["shading"][i, 0, :ph, :pw]
        changed = arrays["changed"][i, 0, :ph, :pw]
        assert (sh[changed == 0] == 0).all() and (sh[changed > 0] >= 140).all()  # >= floor 0.55 x 255
    write_library(ds, tmp_path / "lib", crop_size=32)
    lib = load_library(tmp_path / "lib")
    s = lib.shading_of(0)
    assert s is not None and s.max() <= 1.0 and s.shape == tuple(lib.patch_hw[0])
    root = tmp_path / "photo"
    meta = json.loads((root / "meta.json").read_text())
    meta.pop("instance_masks")
    (root / "meta.json").write_text(json.dumps(meta))
    plain, _ = build_library(load_dataset(root), crop_size=32)
    assert "shading" not in plain  # box-only and template sources keep their library bytes


def test_library_edges_carry_shading_with_the_same_draws():
    from midg.augment.outlines import SHADING_FLOOR
    from midg.augment.painting import library_edges

    m = _ellipse()
    shading = np.where(m > 0, np.linspace(0.6, 1.0, m.shape[1])[None, :], 0.0).astype(np.float32)
    hole = np.zeros((1, 32, 32), np.float32)
    hole[0, 4:28, 2:30] = 1
    for seed in range(6):
        plain = library_edges(np.random.default_rng(seed), m, hole)
        graded = library_edges(np.random.default_rng(seed), m, hole, shading)
        assert np.array_equal(plain > 0, graded > 0)  # the same place, orientation and size
        inside = graded[graded > 0]
        assert inside.min() >= SHADING_FLOOR and inside.std() > 0.03



def test_library_edges_fill_sets_the_structure_size_in_its_hole():
    """generate.structure_fill: (1, 1) puts the structure's extent on the hole's sides exactly
    (a real outline fills its tight box); the default (0.6, 1) never exceeds them and, over
    draws, leaves it smaller; a bad range is a config error."""
    from midg.augment.generate_config import GenerateConfig
    from midg.augment.painting import library_edges
    from midg.datasets.errors import ConfigError

    m = _ellipse()
    ys, xs = np.nonzero(m)
    m = m[ys.min():ys.max() + 1, xs.min():xs.max() + 1]  # cropped to its extent, as deform_structure leaves it
    hole = np.zeros((1, 32, 32), np.float32)
    hole[0, 4:28, 2:30] = 1  # 28 x 24

    def extent(e: np.ndarray) -> tuple[int, int]:
        ys, xs = np.nonzero(e[0] > 0)
        return xs.max() - xs.min() + 1, ys.max() - ys.min() + 1

    full = [extent(library_edges(np.random.default_rng(s), m, hole, fill=(1.0, 1.0))) for s in range(6)]
    assert all(w >= 27 and h >= 23 for w, h in full), full  # the hole's 28 x 24, to a pixel of the area resize
    default = [extent(library_edges(np.random.default_rng(s), m, hole)) for s in range(20)]
    assert all(w <= 28 and h <= 24 for w, h in default)
    assert np.mean([w * h for w, h in default]) < 0.8 * 28 * 24
    with pytest.raises(ConfigError, match="structure_fill"):
        GenerateConfig(structure_fill=(0.5, 1.2))
