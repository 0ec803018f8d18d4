"""The rectangle sampler, the defect stats it learns from, and box derivation."""

from __future__ import annotations

import numpy as np
import pytest

from helpers_generate import COPPER, SUBSTRATE, board, make_paired_dataset
from midg.augment.boxes import derive_box
from midg.augment.library import fit_defect_stats
from midg.augment.masks import FRACTION_BINS, conductor_map, sample_rectangles
from midg.datasets.errors import DatasetError
from midg.datasets.layout import DEFECT_CLASSES, DatasetWriter, load_dataset


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return load_dataset(make_paired_dataset(tmp_path_factory.mktemp("masks") / "real", n_images=12))


@pytest.fixture(scope="module")
def stats(real):
    return fit_defect_stats(real)


def _overlap(a, b, margin):
    return a[0] < b[2] + margin and a[2] > b[0] - margin and a[1] < b[3] + margin and a[3] > b[1] - margin


def test_stats_hold_sizes_and_placement_of_every_class(real, stats):
    boxes = [b for e in real.images("train") for b in e.boxes]
    pin, cop = DEFECT_CLASSES.index("pin-hole"), DEFECT_CLASSES.index("copper")
    assert stats["classes"] == list(DEFECT_CLASSES)
    assert stats["per_class"]["pin-hole"]["count"] == sum(b.cls == pin for b in boxes) > 5
    assert stats["per_class"]["copper"]["count"] == sum(b.cls == cop for b in boxes) > 5
    assert stats["per_class"]["open"]["count"] == 0
    assert sorted(map(tuple, stats["per_class"]["copper"]["sizes"])) == sorted(
        (int(b.width), int(b.height)) for b in boxes if b.cls == cop)
    # measured on the template: pin-holes sit on conductor, copper on bare substrate
    assert stats["per_class"]["pin-hole"]["conductor_mean"] > 0.95
    assert stats["per_class"]["copper"]["conductor_mean"] < 0.05
    hist = stats["per_class"]["pin-hole"]["conductor_hist"]
    assert len(hist) == FRACTION_BINS and abs(sum(hist) - 1) < 1e-9 and hist[-1] == max(hist)


def test_stats_refuse_a_dataset_without_defects(tmp_path):
    with DatasetWriter(tmp_path / "empty", ["a"], source="t") as w:
        w.add_image("train", "x", array=np.zeros((16, 16), np.uint8))
    with pytest.raises(DatasetError, match="no annotated defects"):
        fit_defect_stats(load_dataset(tmp_path / "empty"))


def test_rectangles_inside_the_image_and_never_overlapping(stats):
    margin = 4
    for seed in range(40):
        rng = np.random.default_rng(seed)
        image = board(rng, size=int(rng.integers(40, 120)))
        rects = sample_rectangles(rng, image, stats, ["pin-hole", "copper"], n=6, margin=margin)
        assert rects, "an image of 40+ px fits at least one small defect"
        h, w = image.shape
        for cls, (x1, y1, x2, y2) in rects:
            assert cls in ("pin-hole", "copper")
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        for i, (_, a) in enumerate(rects):
            for _, b in rects[i + 1:]:
                assert not _overlap(a, b, margin), (a, b)


def test_same_rng_same_rectangles(stats):
    image = board(np.random.default_rng(3))
    a = sample_rectangles(np.random.default_rng([7, 1]), image, stats, ["pin-hole", "copper"], 3)
    b = sample_rectangles(np.random.default_rng([7, 1]), image, stats, ["pin-hole", "copper"], 3)
    c = sample_rectangles(np.random.default_rng([7, 2]), image, stats, ["pin-hole", "copper"], 3)
    assert a == b and a != c


def test_sizes_follow_each_class_stats():
    flat = [1.0 / FRACTION_BINS] * FRACTION_BINS
    stats = {"per_class": {"small": {"sizes": [[8, 6], [10, 8]], "conductor_hist": flat},
                           "long": {"sizes": [[40, 12]], "conductor_hist": flat}}}
    image = board(np.random.default_rng(0), size=200)
    got = {"small": [], "long": []}
    rng = np.random.default_rng(0)
    for _ in range(150):
        for cls, (x1, y1, x2, y2) in sample_rectangles(rng, image, stats, ["small", "long"], 2):
            got[cls].append((x2 - x1, y2 - y1))
    small, long_ = np.array(got["small"]), np.array(got["long"])
    assert len(small) > 50 and len(long_) > 50
    assert abs(small[:, 0].mean() - 9) < 1.0 and abs(small[:, 1].mean() - 7) < 1.0
    assert abs(long_[:, 0].mean() - 40) < 3.0 and abs(long_[:, 1].mean() - 12) < 1.5
    assert long_[:, 0].std() > 0.5  # jittered, not copied


def test_placement_is_learned_from_real_boxes(stats):
    """Pin-holes learned on conductor land on conductor far more often than chance; copper,
    learned on bare substrate, the other way round. Nothing per class is hand-coded."""
    on = {"pin-hole": [], "copper": []}
    chance = []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        image = board(rng)
        cond = conductor_map(image)
        chance.append(cond.mean())
        for cls, (x1, y1, x2, y2) in sample_rectangles(rng, image, stats, ["pin-hole", "copper"], 4):
            on[cls].append(cond[y1:y2, x1:x2].mean())
    assert 0.2 < np.mean(chance) < 0.7
    assert np.mean(on["pin-hole"]) > np.mean(chance) + 0.3
    assert np.mean(on["copper"]) < np.mean(chance) - 0.2


# ---------------------------------------------------------------- derive_box


def _pair():
    before = np.full((40, 40), SUBSTRATE, np.uint8)
    return before, before.copy()


def test_box_is_the_tight_box_of_the_change():
    before, after = _pair()
    after[12:17, 20:23] = COPPER
    after[30, 5] = COPPER  # outside the rectangle: ignored
    box, n = derive_box(before, after, (10, 10, 30, 30))
    assert box == (20, 12, 23, 17) and n == 15


def test_thin_changes_survive_and_speckle_is_cleaned():
    before, after = _pair()
    after[15, 11:25] = COPPER  # a one-pixel line: a real thin defect
    after[28, 28] = COPPER  # a stray pixel far away
    box, _ = derive_box(before, after, (10, 10, 30, 30))
    assert box == (11, 15, 25, 16)


def test_only_noise_gives_the_box_of_the_noise_and_nothing_is_dropped():
    before, after = _pair()
    for x, y in [(11, 11), (15, 20), (20, 13), (25, 25), (28, 11), (12, 27), (19, 19)]:
        after[y, x] = COPPER  # isolated pixels: noise, but something changed
    box, n = derive_box(before, after, (10, 10, 30, 30))
    assert box == (11, 11, 29, 28) and n == 7  # every changed pixel inside the box
    after2 = before.copy()
    after2[20, 20] = COPPER
    after2[21, 22] = SUBSTRATE + 10  # under the threshold
    assert derive_box(before, after2, (10, 10, 30, 30)) == (None, 1)


def test_colour_changes_count_on_any_channel():
    before = np.zeros((20, 20, 3), np.uint8)
    after = before.copy()
    after[5:9, 6:8, 2] = 200
    assert derive_box(before, after, (0, 0, 20, 20))[0] == (6, 5, 8, 9)
