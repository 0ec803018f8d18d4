"""benchmarks/c2st_probe.py: each part of the crop, and the grouped split, catches the case
built for it (constructed crops, the real C2ST classifier)."""

import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import c2st_probe  # noqa: E402

from midg.augment.metrics.c2st import classifier_two_sample_test
from midg.augment.metrics.classifier import ClassifierConfig
from midg.augment.metrics.crops import CropRef, CropSet

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

S, CENTRE = 32, 16
FAST = ClassifierConfig(width=8, epochs=10, min_steps=120, batch_size=32)


def _crop(rng, *, centre: float, striped: bool = False, texture: np.ndarray | None = None,
          amplitude: float = 0.1) -> np.ndarray:
    """1 x S x S: a blurred-noise surface (or the given one), optionally striped around the
    centre square, with a disc of brightness `centre` in the middle."""
    surf = texture if texture is not None else cv2.GaussianBlur(rng.standard_normal((S, S)).astype(np.float32), (0, 0), 1.5)
    img = 0.5 + amplitude * surf + 0.01 * rng.standard_normal((S, S)).astype(np.float32)
    if striped:  # outside the centre square only: the surroundings differ, the defect and its rim do not
        lo = (S - CENTRE) // 2
        outside = np.ones((S, S), bool)
        outside[lo:lo + CENTRE, lo:lo + CENTRE] = False
        img = img + 0.08 * np.sign(np.sin(np.arange(S) * np.pi / 3))[:, None] * outside
    yy, xx = np.mgrid[:S, :S]
    img = np.where(np.hypot(yy - S / 2, xx - S / 2) < 5, centre, img)
    return np.clip(img, 0, 1)[None].astype(np.float32)


def _set(crops) -> CropSet:
    x = np.stack(crops)
    return CropSet(x, np.zeros(len(x), np.int64), [CropRef(f"images/train/{i}.png", None, "train") for i in range(len(x))])


def _c2st(a: CropSet, b: CropSet, keep: str | None) -> float:
    f = (lambda x: x) if keep is None else (lambda x: c2st_probe.blank(x, keep, CENTRE))
    r = classifier_two_sample_test(CropSet(f(a.x), a.y, a.refs), CropSet(f(b.x), b.y, b.refs), FAST, seed=0,
                                   show_progress=False)
    return r["accuracy"]


def test_blank_keeps_exactly_the_centre_or_the_context():
    x = np.random.default_rng(0).random((2, 3, S, S)).astype(np.float32)
    c, o = c2st_probe.blank(x, "centre", CENTRE), c2st_probe.blank(x, "context", CENTRE)
    lo = (S - CENTRE) // 2
    inner = (slice(None), slice(None), slice(lo, lo + CENTRE), slice(lo, lo + CENTRE))
    assert np.array_equal(c[inner], x[inner]) and not np.array_equal(o[inner], x[inner])
    assert np.array_equal(o[:, :, :lo], x[:, :, :lo])
    assert np.allclose(c[:, :, :lo], x[inner].mean(axis=(2, 3), keepdims=True))  # filled with the kept part's mean


def test_a_tell_in_the_defect_shows_in_the_centre_and_a_tell_in_the_surroundings_in_the_context():
    rng = np.random.default_rng(1)
    real = _set([_crop(rng, centre=0.2) for _ in range(160)])
    bright_pit = _set([_crop(rng, centre=0.9) for _ in range(160)])  # the defect gives it away
    striped = _set([_crop(rng, centre=0.2, striped=True) for _ in range(160)])  # where it sits gives it away
    assert _c2st(real, bright_pit, "centre") > 0.9 and _c2st(real, bright_pit, "context") < 0.7
    assert _c2st(real, striped, "context") > 0.9 and _c2st(real, striped, "centre") < 0.75


def test_grouped_split_does_not_reward_learning_the_real_defects_by_heart():
    """Real crops: 24 defects photographed 6 times each (near duplicates); synthetic: 24 other
    defects of the same kind. A random split lets the classifier see every defect in training
    and tell them apart by heart; with the defects held out it cannot."""
    rng = np.random.default_rng(2)

    def photographed(n_defects: int, prefix: str):
        crops, groups = [], []
        for k in range(n_defects):
            texture = cv2.GaussianBlur(rng.standard_normal((S, S)).astype(np.float32), (0, 0), 1.5)
            depth = rng.uniform(0.1, 0.4)
            for _ in range(6):
                crops.append(_crop(rng, centre=depth, texture=texture, amplitude=0.25))
                groups.append(f"{prefix}{k}")
        return np.stack(crops), groups

    rx, rg = photographed(24, "r")
    sx, sg = photographed(24, "s")
    longer = ClassifierConfig(width=8, epochs=10, min_steps=300, batch_size=32)  # time to learn 48 defects by heart
    random_split = classifier_two_sample_test(_set(list(rx)), _set(list(sx)), longer, seed=0, show_progress=False)
    grouped = c2st_probe.grouped_c2st(rx, rg, sx, sg, longer, seed=0, reps=3)
    assert random_split["accuracy"] > 0.85, random_split
    assert grouped["accuracy"] < 0.7, grouped
    assert grouped["groups"] == 48 and len(grouped["per_draw"]) == 3


def test_group_of_reads_the_bsdata_wear_sequence():
    pattern = re.compile(r"^[^_]+_[^_]+_([^_]+_[^_]+)_")
    assert c2st_probe.group_of("images/val/01_200905233511_462500_045_crop_2.jpg", pattern) == "462500_045"
    assert c2st_probe.group_of("odd.png", pattern) == "odd.png"


def test_telling_crops_rank_the_synthetic_crops_that_give_themselves_away(tmp_path):
    """Half the synthetic crops carry a bright pit (telling), half are drawn like the real
    ones: the surest-synthetic row holds telling crops only, the taken-for-real row none."""
    rng = np.random.default_rng(4)
    real = _set([_crop(rng, centre=0.2) for _ in range(160)])
    telling = np.arange(160) % 2 == 0
    syn = _set([_crop(rng, centre=0.9 if t else 0.2) for t in telling])
    r = classifier_two_sample_test(real, syn, FAST, seed=0, show_progress=False, held_out_scores=True)
    held = r["held_out"]
    assert len(held["side"]) == r["n_test"] and set(held["side"]) == {"real", "synthetic"}
    picks = c2st_probe.telling_crops(held, k=6)
    surest, as_real = picks[c2st_probe.TELLING_ROWS[0]], picks[c2st_probe.TELLING_ROWS[1]]
    assert len(surest) == 6 and all(telling[i] for i, _ in surest)
    assert as_real and not any(telling[i] for i, _ in as_real) and all(p < 0.5 for _, p in as_real)
    assert [p for _, p in surest] == sorted((p for _, p in surest), reverse=True)
    without = classifier_two_sample_test(real, syn, FAST, seed=0, show_progress=False)
    assert "held_out" not in without and without["accuracy"] == r["accuracy"]  # scores change nothing else
    c2st_probe.telling_sheet(picks, real.x, syn.x, "test", tmp_path / "sheet.png")
    assert cv2.imread(str(tmp_path / "sheet.png")) is not None
