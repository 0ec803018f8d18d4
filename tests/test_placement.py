"""Matched placement (augment/placement.py): a real defect goes where the normal's traces
match the surface it sat on, in the orientation that fits, at its real box size."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from midg.augment.library import fit_defect_stats, load_library, write_library
from midg.augment.masks import sample_rectangles
from midg.augment.placement import dihedral, entry_surface, matched_rectangles, mismatch_map
from midg.datasets.boxes import Box
from midg.datasets.layout import DEFECT_CLASSES, DatasetWriter, load_dataset

SUBSTRATE, COPPER = 40, 200
OPEN = DEFECT_CLASSES.index("open")


def _vertical_trace_with_an_open(size: int = 64) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """(template, defect image, box): a 6 px vertical trace cut by a 4 px gap."""
    temp = np.full((size, size), SUBSTRATE, np.uint8)
    temp[:, 30:36] = COPPER
    test = temp.copy()
    test[30:34, 30:36] = SUBSTRATE
    return temp, test, (26, 26, 40, 38)  # the box leaves substrate on both sides of the trace


@pytest.fixture(scope="module")
def open_library(tmp_path_factory):
    root = tmp_path_factory.mktemp("placement")
    temp, test, box = _vertical_trace_with_an_open()
    with DatasetWriter(root / "real", DEFECT_CLASSES, source="test", seed=0) as w:
        t = w.add_normal("a_temp", array=temp)
        w.add_image("train", "a", array=test, boxes=[Box(OPEN, *box)], template=t)
    ds = load_dataset(root / "real")
    write_library(ds, root / "lib", crop_size=32)
    return load_library(root / "lib"), fit_defect_stats(ds)


def _horizontal_board(size: int = 96) -> np.ndarray:
    img = np.full((size, size), SUBSTRATE, np.uint8)
    img[20:26, :] = COPPER  # one 6 px trace, horizontal: the open only fits turned a quarter
    img[60:80, :] = COPPER  # a wide pour: no place for a cut with substrate on both sides
    return img


def test_mismatch_map_is_the_weighted_share_of_disagreeing_pixels():
    rng = np.random.default_rng(0)
    surface = (rng.random((20, 24)) < 0.4).astype(np.uint8)
    template = (rng.random((5, 7)) < 0.5).astype(np.uint8)
    changed = np.zeros_like(template)
    changed[2, 3] = 1
    got = mismatch_map(surface, template, changed)
    assert got.shape == (16, 18)
    # brute force: weight 1 + 4 within 3 px of the changed pixel (the whole 5x7 here)
    w = np.ones(template.shape) + 4.0
    for y in (0, 7, 15):
        for x in (0, 9, 17):
            want = (w * (surface[y:y + 5, x:x + 7] != template)).sum() / w.sum()
            assert got[y, x] == pytest.approx(want, abs=1e-5)


def test_entry_surface_puts_the_cut_trace_back(open_library):
    lib, _ = open_library
    template, changed = entry_surface(lib, 0, threshold=120)
    assert template.shape == changed.shape == (12, 14)
    assert template[:, 4:10].all() and not template[:, :4].any() and not template[:, 10:].any()  # the whole trace
    assert changed.sum() == 4 * 6 and changed[4:8, 4:10].all()


def test_an_open_lands_across_a_trace_in_the_orientation_that_fits(open_library):
    lib, stats = open_library
    image = _horizontal_board()
    surface = image > 120
    for seed in range(5):
        (p,) = matched_rectangles(np.random.default_rng(seed), image, stats, ["open"], 1, lib, {"open": OPEN})
        assert p.entry == 0 and p.transform % 2 == 1 and p.mismatch == 0.0, p
        x1, y1, x2, y2 = p.box
        assert (x2 - x1, y2 - y1) == (12, 14)  # the real 14x12 box, turned
        assert p.rect == (max(x1 - 4, 0), y1 - 4, min(x2 + 4, 96), y2 + 4)  # with 4 px of surface around it
        cut = dihedral(entry_surface(lib, 0, 120)[1], p.transform).astype(bool)
        assert surface[y1:y2, x1:x2][cut].all()  # every pixel the open removes is copper
        assert 14 <= y1 and y2 <= 32  # on the thin trace, not in the pour


def test_the_conductor_sampler_does_not_align_the_cut_the_flaw_matching_fixes(open_library):
    # the constructed flaw: the same open placed by the conductor-share sampler at its real size;
    # its cut (in the entry's own orientation) mostly misses the horizontal trace
    lib, stats = open_library
    image = _horizontal_board()
    surface = image > 120
    cut = entry_surface(lib, 0, 120)[1].astype(bool)
    on_copper = []
    for seed in range(20):
        (_, (x1, y1, x2, y2)), = sample_rectangles(np.random.default_rng(seed), image, stats, ["open"], 1)
        region = surface[y1:y1 + cut.shape[0], x1:x1 + cut.shape[1]]
        if region.shape == cut.shape:
            on_copper.append(region[cut].mean())
    assert on_copper and np.mean(on_copper) < 0.9, on_copper


def test_taken_places_are_avoided_and_unpaired_entries_fall_back(open_library):
    lib, stats = open_library
    image = _horizontal_board()
    taken = (0, 0, 96, 40)  # the thin trace is taken: only the pour is left
    (p,) = matched_rectangles(np.random.default_rng(0), image, stats, ["open"], 1, lib, {"open": OPEN}, avoid=[taken])
    assert p.rect[1] >= 44 and p.box[1] >= 48 and p.mismatch > 0
    unpaired = dataclasses.replace(lib, paired=np.zeros_like(lib.paired))
    (q,) = matched_rectangles(np.random.default_rng(0), image, stats, ["open"], 1, unpaired, {"open": OPEN})
    assert q.entry is None and q.mismatch is None


def test_build_library_keeps_the_box_size_matched_placement_uses(open_library):
    lib, _ = open_library
    assert lib.box_hw.tolist() == [[12, 14]] and bool(lib.paired[0])

