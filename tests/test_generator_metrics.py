"""Generator metrics (midg.augment.metrics): each metric reacts the right way on constructed cases.

    .venv/bin/python -m pytest tests/test_generator_metrics.py -x -q

The cases are tiny procedural boards: a textured background with traces, and three
defect classes that look different (bright disks, dark squares, bright diagonal
scratches). Real crops against a disjoint sample of the same kind must look alike to
every metric; blurred or noise crops must not.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from midg.augment.metrics.c2st import binomial_p_value, classifier_two_sample_test, wilson_interval
from midg.augment.metrics.cas import classification_accuracy_score
from midg.augment.metrics.classifier import ClassifierConfig, embed, train_classifier
from midg.augment.metrics.crops import CropSet, defect_crops, stratified_halves
from midg.augment.metrics.diversity import mean_pairwise_distance
from midg.augment.metrics.evaluate import evaluate_generator
from midg.augment.metrics.fidelity import (box_fidelity, changed_mask, inpainting_fidelity, opencv_inpainter,
                                           pair_box_fidelity, psnr, shape_fidelity, ssim, ssim_map, tight_box)
from midg.augment.metrics.frechet import frechet_distance, kernel_inception_distance, standardize
from midg.augment.metrics.seams import seam_score
from midg.datasets.boxes import Box
from midg.datasets.errors import DatasetError
from midg.datasets.images import encode_png
from midg.datasets.layout import DatasetWriter, load_dataset
from metric_builders import NAMES, TINY, draw_defect, make_board

FAST = ClassifierConfig(width=8, epochs=3, min_steps=80, batch_size=64)
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


# --------------------------------------------------------------------------- constructed boards


def defect_crop_set(n: int, seed: int, size: int = 32) -> CropSet:
    """n crops (balanced classes) cut around fresh defects, as the metrics cut them."""
    from midg.augment.crops import context_window, extract_crop
    from midg.augment.metrics.crops import CropRef, pixel_rect

    rng = np.random.default_rng(seed)
    xs, ys, refs = [], [], []
    for i in range(n):
        board = make_board(rng, 64)
        box = draw_defect(board, i % 3, rng)
        window = context_window(pixel_rect(box, 64, 64), (64, 64), context=1.5, min_window=24)
        xs.append(extract_crop(board, window, size))
        ys.append(box.cls)
        refs.append(CropRef(f"constructed/{i}.png", box, "train"))
    return CropSet(np.stack(xs), np.asarray(ys, np.int64), refs)


def blurred(crops: CropSet) -> CropSet:
    x = np.stack([cv2.GaussianBlur(c[0], (0, 0), 1.5)[None] for c in crops.x])
    return CropSet(x.astype(np.float32), crops.y.copy(), list(crops.refs))


def noise_like(crops: CropSet, seed: int) -> CropSet:
    x = np.random.default_rng(seed).random(crops.x.shape).astype(np.float32)
    return CropSet(x, crops.y.copy(), list(crops.refs))


@pytest.fixture(scope="module")
def real_crops() -> CropSet:
    return defect_crop_set(360, seed=1)


@pytest.fixture(scope="module")
def reference_model(real_crops):
    return train_classifier(real_crops.x, real_crops.y, 3, FAST, seed=0, show_progress=False)


# --------------------------------------------------------------------------- C2ST


def test_wilson_interval_and_binomial_p_value_known_values():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.7225, abs=1e-4)  # sound at the edge, unlike the Wald interval
    assert binomial_p_value(10, 10) == pytest.approx(2 ** -10)
    assert binomial_p_value(0, 10) == 1.0
    assert binomial_p_value(5, 10) == pytest.approx(0.623046875)


def test_c2st_near_half_for_the_same_distribution_and_near_one_for_blur_and_noise(real_crops):
    a, b = stratified_halves(real_crops.y, np.random.default_rng(0))
    same = classifier_two_sample_test(real_crops.take(a), real_crops.take(b), FAST, seed=0, show_progress=False)
    assert same["n_per_side"] == 180 and same["n_test"] == 180
    assert same["ci95"][0] < 0.5 + 0.05 and same["accuracy"] < 0.66, same
    blur = classifier_two_sample_test(real_crops.take(a), blurred(real_crops.take(b)), FAST, seed=0, show_progress=False)
    assert blur["accuracy"] > 0.9 and blur["ci95"][0] > 0.8 and blur["p_value"] < 1e-6, blur
    noise = classifier_two_sample_test(real_crops.take(a), noise_like(real_crops.take(b), 3), FAST, seed=0, show_progress=False)
    assert noise["accuracy"] > 0.97, noise


def test_c2st_balances_classes_and_uses_only_shared_ones(real_crops):
    only_blobs = real_crops.take(np.flatnonzero(real_crops.y == 0)[:20])
    res = classifier_two_sample_test(real_crops, noise_like(only_blobs, 0), FAST, seed=0, show_progress=False)
    assert res["n_per_side"] == 20 and res["n_train"] + res["n_test"] == 40


# --------------------------------------------------------------------------- CAS


def test_cas_reference_beats_a_noise_trained_model(real_crops):
    test = defect_crop_set(120, seed=7)
    ref, _ = classification_accuracy_score(real_crops, test, NAMES, FAST, seed=0, show_progress=False)
    noise, _ = classification_accuracy_score(noise_like(real_crops, 5), test, NAMES, FAST, seed=0, show_progress=False)
    assert ref["balanced_accuracy"] > 0.85, ref
    assert noise["balanced_accuracy"] < ref["balanced_accuracy"] - 0.3, (noise, ref)
    assert ref["per_class"]["hole"]["n_test"] == 40 and ref["per_class"]["hole"]["n_train"] == 120
    assert set(ref["per_class"]) == set(NAMES)


# --------------------------------------------------------------------------- FD / KID / diversity


def test_frechet_distance_basic_properties():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # two Gaussians with identity covariance, means 3 apart along one axis: FD = 9
    assert frechet_distance(a, a + np.array([3.0, 0, 0, 0])) == pytest.approx(9.0, rel=1e-6)
    # N(0, I) vs N(0, 4I) in 4-d: FD = 4 * (1 + 4 - 2 * 2) = 4
    b = rng.normal(size=(20000, 4)) * 2
    assert frechet_distance(rng.normal(size=(20000, 4)), b) == pytest.approx(4.0, rel=0.05)


def test_fd_and_kid_small_for_same_distribution_large_for_blur(real_crops, reference_model):
    a, b = stratified_halves(real_crops.y, np.random.default_rng(0))
    fa_raw = embed(reference_model, real_crops.x[a])
    fa = standardize(fa_raw, fa_raw)
    fb = standardize(embed(reference_model, real_crops.x[b]), fa_raw)
    fblur = standardize(embed(reference_model, blurred(real_crops.take(b)).x), fa_raw)
    fd_same, fd_blur = frechet_distance(fa, fb), frechet_distance(fa, fblur)
    kid_same, _ = kernel_inception_distance(fa, fb, subset_size=100, n_subsets=20, seed=0)
    kid_blur, _ = kernel_inception_distance(fa, fblur, subset_size=100, n_subsets=20, seed=0)
    assert fd_blur > 4 * fd_same, (fd_same, fd_blur)
    assert abs(kid_same) < 0.2 * kid_blur and kid_blur > 0.1, (kid_same, kid_blur)


def test_diversity_zero_for_identical_copies(real_crops, reference_model):
    feats = embed(reference_model, real_crops.x)
    real = mean_pairwise_distance(feats, real_crops.y, NAMES)
    copies = np.repeat(feats[:1], 30, axis=0)
    same = mean_pairwise_distance(copies, np.zeros(30, np.int64), NAMES)
    assert same["per_class"]["blob"]["mean_pairwise"] < 1e-6
    assert same["per_class"]["hole"]["mean_pairwise"] is None and same["per_class"]["hole"]["n"] == 0
    assert real["mean"] > 0.1 and all(v["n"] == 120 for v in real["per_class"].values())


# --------------------------------------------------------------------------- SSIM / PSNR


def test_ssim_and_psnr_sanity():
    rng = np.random.default_rng(0)
    a = rng.random((48, 48))
    assert psnr(a, a) == math.inf
    assert ssim(a, a) == 1.0
    assert psnr(a, a + 0.1) == pytest.approx(20.0)  # MSE 0.01 on a range of 1
    noisy = [ssim(a, np.clip(a + rng.normal(0, s, a.shape), 0, 1)) for s in (0.02, 0.1, 0.3)]
    assert 1 > noisy[0] > noisy[1] > noisy[2] > 0
    assert ssim(a, 1 - a) < 0  # anticorrelated structure
    rgb = np.stack([a, a, a], axis=2)
    assert ssim_map(rgb, rgb).shape == (48, 48, 3)
    mask = np.zeros((48, 48), bool)
    mask[10:20, 10:20] = True
    assert psnr(a, a + 0.1 * mask, mask[None][0]) == pytest.approx(20.0)


def test_ssim_matches_a_direct_windowed_computation():
    """The formula at one pixel, with an explicit 11x11 Gaussian window (sigma 1.5)."""
    rng = np.random.default_rng(1)
    a, b = rng.random((31, 31)), rng.random((31, 31))
    b = 0.6 * a + 0.4 * b
    g = cv2.getGaussianKernel(11, 1.5)
    w = g @ g.T
    pa, pb = a[10:21, 10:21], b[10:21, 10:21]  # the window centred on (15, 15)
    mu_a, mu_b = (w * pa).sum(), (w * pb).sum()
    va, vb = (w * (pa - mu_a) ** 2).sum(), (w * (pb - mu_b) ** 2).sum()
    cov = (w * (pa - mu_a) * (pb - mu_b)).sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    expect = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))
    assert ssim_map(a, b)[15, 15] == pytest.approx(expect, rel=1e-9)


# --------------------------------------------------------------------------- seam score


def test_seam_score_higher_for_a_visible_border():
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(0.4, 0.03, (80, 80)), 0, 1)
    rect = (25, 25, 55, 50)
    seamless = image.copy()
    seamless[25:50, 25:55] = np.clip(rng.normal(0.4, 0.03, (25, 30)), 0, 1)  # same texture, new pixels
    visible = image.copy()
    visible[25:50, 25:55] = np.clip(image[25:50, 25:55] + 0.25, 0, 1)  # brighter patch
    s_seamless, s_visible = seam_score(seamless, rect), seam_score(visible, rect)
    assert s_seamless == pytest.approx(1.0, abs=0.15)
    assert s_visible > 3 * s_seamless
    assert seam_score(image, (0, 0, 80, 80)) is None  # no side with surroundings to compare with
    # a painted defect inside the rectangle, away from its border, is no seam
    inner = image.copy()
    inner[32:42, 32:46] = 0.95
    assert seam_score(inner, rect) == pytest.approx(1.0, abs=0.15)


# --------------------------------------------------------------------------- datasets: box, shape, inpainting, end to end


def write_real(out: Path, n_train: int, n_test: int, seed: int, draw: bool = True) -> None:
    """A real dataset: defect images with their aligned defect-free templates (with `draw`
    false the boxes are labelled but the images stay equal to their templates)."""
    rng = np.random.default_rng(seed)
    with DatasetWriter(out, NAMES, source="test-boards", seed=seed) as w:
        for split, n in (("train", n_train), ("test", n_test)):
            for i in range(n):
                normal = make_board(rng)
                image = normal.copy()
                boxes = [draw_defect(image if draw else image.copy(), (i + k) % 3, rng, half=k) for k in range(2)]
                tmpl = w.add_normal(f"{split}_{i:03d}_temp", array=normal)
                w.add_image(split, f"{split}_{i:03d}", array=image, boxes=boxes, template=tmpl)


def write_synthetic(out: Path, n: int, seed: int, kind: str, shape: np.ndarray | None = None) -> None:
    """A synthetic set as `midg generate` writes one: meta.json lists every defect."""
    rng = np.random.default_rng(seed)
    defects = []
    with DatasetWriter(out, NAMES, source="test-generate", seed=seed) as w:
        if shape is not None:
            (w.tmp / "shape.png").write_bytes(encode_png(shape))
        for i in range(n):
            normal = make_board(rng)
            image = normal.copy()
            boxes = []
            for k in range(2):
                cls = (i + k) % 3
                if kind == "good":
                    drawn = draw_defect(image, cls, rng, half=k)
                    rect = [int(drawn.x1) - 3, int(drawn.y1) - 3, int(drawn.x2) + 3, int(drawn.y2) + 3]
                    # the box a generator derives: the tight box of what changed in the rect
                    box = tight_box(changed_mask(image, normal, rect), (rect[0], rect[1]), cls)
                elif kind == "shape":
                    x1, y1 = int(rng.integers(5, 60)), int(rng.integers(5, 60))
                    rect = [x1, y1, x1 + 24, y1 + 24]
                    silhouette = cv2.resize(shape, (24, 24), interpolation=cv2.INTER_AREA) > 127
                    image[y1:y1 + 24, x1:x1 + 24][silhouette] = 240
                    ys, xs = np.nonzero(silhouette)
                    box = Box(cls, float(x1 + xs.min()), float(y1 + ys.min()), float(x1 + xs.max() + 1), float(y1 + ys.max() + 1))
                else:  # "noise": a pasted noise patch with a visible border, labelled with the whole rect
                    x1, y1 = int(rng.integers(5, 70)), int(rng.integers(5, 70))
                    rect = [x1, y1, x1 + 16, y1 + 16]
                    image[y1:y1 + 16, x1:x1 + 16] = rng.integers(0, 256, (16, 16))
                    box = Box(cls, *map(float, rect))
                boxes.append(box)
                defects.append({"image": f"images/train/syn_{i:03d}.png", "normal": f"normals/n_{i:03d}.png", "rect": rect,
                                "box": box.xyxy(), "class": NAMES[cls], "edges": "shape" if kind == "shape" else "generated",
                                "seed": seed + i, **({"shape": "shape.png"} if kind == "shape" else {})})
            w.add_normal(f"n_{i:03d}", array=normal)
            w.add_image("train", f"syn_{i:03d}", array=image, boxes=boxes)
        w.update_meta(method=kind, defects=defects, dropped=3)


def test_box_fidelity_is_one_when_boxes_equal_the_changed_region(tmp_path):
    write_synthetic(tmp_path / "good", 10, seed=0, kind="good")
    res = box_fidelity(load_dataset(tmp_path / "good"))
    assert res["n"] == 20 and res["mean_iou"] == 1.0 and res["share_iou_75"] == 1.0
    assert res["dropped"] == 3 and res["dropped_share"] == pytest.approx(3 / 23)
    assert res["mean_coverage"] == 1.0
    # the noise set labels the whole rect; most pixels change, so IoU is high but not a formality
    write_synthetic(tmp_path / "noise", 10, seed=0, kind="noise")
    assert 0.7 < box_fidelity(load_dataset(tmp_path / "noise"))["mean_iou"] <= 1.0


def test_box_fidelity_drops_when_boxes_are_shifted(tmp_path):
    write_synthetic(tmp_path / "good", 6, seed=0, kind="good")
    meta_path = tmp_path / "good" / "meta.json"
    meta = json.loads(meta_path.read_text())
    for d in meta["defects"]:  # move every recorded box 3 px right: the labels lie now
        d["box"] = [d["box"][0] + 3, d["box"][1], d["box"][2] + 3, d["box"][3]]
    meta_path.write_text(json.dumps(meta))
    res = box_fidelity(load_dataset(tmp_path / "good"))
    assert 0.2 < res["mean_iou"] < 0.9 and res["mean_coverage"] < 1.0


def test_box_fidelity_counts_dropped_defects_listed_in_meta_once(tmp_path):
    write_synthetic(tmp_path / "good", 4, seed=0, kind="good")
    meta_path = tmp_path / "good" / "meta.json"
    meta = json.loads(meta_path.read_text())
    # as `midg generate` writes them: dropped defects are listed too, with no box
    meta["defects"] += [{**meta["defects"][0], "box": None}, {**meta["defects"][1], "box": None}]
    meta["dropped"] = 2
    meta_path.write_text(json.dumps(meta))
    res = box_fidelity(load_dataset(tmp_path / "good"))
    assert res["n"] == 8 and res["dropped_share"] == pytest.approx(2 / 10) and res["mean_iou"] == 1.0


def test_changed_mask_ignores_specks_and_small_differences():
    normal = np.full((20, 20), 100, np.uint8)
    image = normal.copy()
    image[2, 2] = 200  # a one-pixel speck
    image[10:14, 10:14] = 160  # a real change
    image[5:8, 15:18] = 110  # under the threshold
    m = changed_mask(image, normal, (0, 0, 20, 20), threshold=24, min_area=4)
    assert m.sum() == 16 and m[10:14, 10:14].all()


def test_pair_box_fidelity_on_real_templates(tmp_path):
    write_real(tmp_path / "real", 4, 2, seed=0)
    res = pair_box_fidelity(load_dataset(tmp_path / "real"))
    assert res["n"] == 12 and res["mean_iou"] > 0.9  # boxes are the tight boxes of what was drawn


def test_shape_fidelity_reads_the_requested_shape(tmp_path):
    shape = np.zeros((40, 40), np.uint8)
    cv2.circle(shape, (20, 20), 14, 255, thickness=-1)
    write_synthetic(tmp_path / "shape", 4, seed=0, kind="shape", shape=shape)
    res = shape_fidelity(load_dataset(tmp_path / "shape"))
    assert res["n"] == 8 and res["mean_iou"] > 0.95
    outline = np.zeros((40, 40), np.uint8)  # the same disk drawn as an outline only
    cv2.circle(outline, (20, 20), 14, 255, thickness=2)
    (tmp_path / "shape" / "shape.png").write_bytes(encode_png(outline))
    assert shape_fidelity(load_dataset(tmp_path / "shape"))["mean_iou"] > 0.8
    write_synthetic(tmp_path / "good", 2, seed=0, kind="good")
    assert shape_fidelity(load_dataset(tmp_path / "good")) is None


def test_inpainting_fidelity_baselines_and_a_perfect_inpainter(tmp_path):
    write_real(tmp_path / "real", 3, 1, seed=0)
    res = inpainting_fidelity(load_dataset(tmp_path / "real"), {"telea": opencv_inpainter(cv2.INPAINT_TELEA),
                                                                "ns": opencv_inpainter(cv2.INPAINT_NS)},
                              size=32, channels=1, show_progress=False)
    assert res["n_rects"] == 8 and res["crop_size"] == 32
    for m in res["methods"].values():  # a plausible fill, far from perfect
        assert 12 < m["psnr"] < 40 and 0 < m["ssim"] < 0.95
    # labelled boxes on images equal to their templates: returning the crop untouched is a perfect fill
    write_real(tmp_path / "clean", 3, 1, seed=0, draw=False)
    perfect = inpainting_fidelity(load_dataset(tmp_path / "clean"), {"identity": lambda crops, holes: crops},
                                  size=32, channels=1, show_progress=False)
    assert perfect["methods"]["identity"] == {"psnr": 100.0, "ssim": 1.0}
    # a grey fill is worse than OpenCV's inpainting
    grey = inpainting_fidelity(load_dataset(tmp_path / "real"), {"grey": lambda crops, holes: np.full_like(crops, 0.5)},
                               size=32, channels=1, show_progress=False)
    assert grey["methods"]["grey"]["psnr"] < res["methods"]["telea"]["psnr"]


def test_defect_crops_map_classes_by_name(tmp_path):
    write_real(tmp_path / "real", 3, 1, seed=0)
    crops = defect_crops(load_dataset(tmp_path / "real"), ("train",), ["scratch", "hole", "blob"], channels=3, size=24)
    assert crops.x.shape == (6, 3, 24, 24) and crops.x.dtype == np.float32
    assert sorted(crops.y.tolist()) == [0, 0, 1, 1, 2, 2]
    # box class 0 (blob) is index 2 of the given names
    assert all((y == 2) == (r.box.cls == 0) for y, r in zip(crops.y, crops.refs))
    with pytest.raises(DatasetError, match="not classes of the real dataset"):
        defect_crops(load_dataset(tmp_path / "real"), ("train",), ["blob", "hole"], channels=1)



@pytest.fixture(scope="module")
def eval_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("genmetrics")
    write_real(root / "real", 45, 30, seed=0)
    write_synthetic(root / "good", 45, seed=1, kind="good")
    write_synthetic(root / "noise", 45, seed=2, kind="noise")
    return root


@pytest.fixture(scope="module")
def two_set_run(eval_sets):
    out = eval_sets / "run" / "metrics.json"
    return out, evaluate_generator(eval_sets / "real", [eval_sets / "good", eval_sets / "noise"], out, cfg=TINY, seed=0,
                                   show_progress=False, log=lambda *_: None)


def test_evaluate_generator_end_to_end(eval_sets, two_set_run):
    root = eval_sets
    out, m = two_set_run
    on_disk = json.loads(out.read_text())
    assert on_disk == m
    assert (root / "run" / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    good, noise, ref = m["methods"]["good"], m["methods"]["noise"], m["reference"]
    assert m["real"]["crops"]["train"]["n"] == 90 and m["real"]["crops"]["test"]["n"] == 60
    assert good["crops"]["n"] == 90 and len(m["crops_used"]["good"]) == 90 and len(m["crops_used"]["real/test"]) == 60
    assert m["crops_used"]["good"][0].split(maxsplit=5)[5].startswith("images/train/syn_")
    # the faithful generator is close to real on every learned metric; the noise one is not
    assert good["cas"]["balanced_accuracy"] > noise["cas"]["balanced_accuracy"] + 0.3
    assert good["c2st"]["accuracy"] < 0.75 < noise["c2st"]["accuracy"]
    assert good["fd"] < noise["fd"] and good["kid"] < noise["kid"]
    assert good["box_fidelity"]["mean_iou"] == 1.0 and good["box_fidelity"]["dropped_share"] == pytest.approx(3 / 93, rel=1e-5)
    assert noise["seam"]["median"] > 2 * good["seam"]["median"] and noise["seam"]["mean"] > 2 * good["seam"]["mean"]
    assert noise["seam"]["share_over_2"] > 0.5 > good["seam"]["share_over_2"]
    assert ref["c2st"]["accuracy"] < 0.75 and ref["cas"]["balanced_accuracy"] > 0.8
    assert set(m["inpainting"]["methods"]) == {"telea", "ns"} and "no --checkpoint" in m["inpainting"]["note"]
    assert m["seed"] == 0 and m["versions"]["torch"] and m["config"]["crop_size"] == 32
    # C2ST's crop rule is recorded, so figures from box crops (before) are not mixed up with these
    assert m["c2st_crops"]["canvas"] == 64 and m["c2st_crops"]["margin"] == 0.25 and m["c2st_crops"]["min_margin"] == 8
    assert good["c2st"]["real_box_scale"][0] > 1 and good["c2st"]["n_per_side"] == 90
    assert noise["seam"]["log_dev"] > good["seam"]["log_dev"] and good["seam"]["offsets"] == [5, 6, 7, 8]


class _FakeCheckpointGenerator:
    """The interface of midg.augment.checkpoint.MIDGGenerator that the inpainting metric uses:
    a flat grey fill at its own crop size; `seen` records the crops it was given."""

    config = {"crop_size": 24, "context": 2.0, "min_window": 16, "channels": 1}

    def __init__(self, seen: dict):
        self.seen = seen

    def inpaint(self, crops, holes):
        self.seen["shape"] = tuple(crops.shape)
        return crops * (1 - holes) + holes * 0.5


@pytest.fixture(scope="module")
def checkpoint_runs(eval_sets, tmp_path_factory):
    """The one set "good" judged at seed 0 with a (fake) --checkpoint, twice: through
    evaluate_generator and through `midg evaluate-generator`. One pair of runs serves the
    same-bytes test and the checkpoint test (each run is a whole evaluation, ~20 s)."""
    import sys
    import types

    from typer.testing import CliRunner

    import midg.augment.metrics.evaluate as ev
    from midg.pipelines.cli import app

    root, tmp = eval_sets, tmp_path_factory.mktemp("genmetrics_ckpt")
    seen: dict = {}
    fake = types.ModuleType("midg.augment.checkpoint")
    fake.load_generator = lambda path, device: _FakeCheckpointGenerator(seen)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "midg.augment.checkpoint", fake)
        out = tmp / "api" / "metrics.json"
        run = evaluate_generator(root / "real", [root / "good"], out, cfg=TINY, seed=0, checkpoint=tmp,
                                 show_progress=False, log=lambda *_: None)
        api_seen = dict(seen)
        mp.setattr(ev, "EvalConfig", lambda crop_size: TINY)  # the command at the test's small config
        cli_out = tmp / "cli" / "metrics.json"
        res = CliRunner().invoke(app, ["evaluate-generator", "--real", str(root / "real"), "--synthetic",
                                       str(root / "good"), "--out", str(cli_out), "--seed", "0", "--checkpoint", str(tmp)])
    return {"out": out, "run": run, "seen": api_seen, "cli_out": cli_out, "cli": res}


def test_evaluate_generator_same_seed_same_bytes_through_the_api_and_the_cli(two_set_run, checkpoint_runs):
    """The same seed gives the same bytes twice: once from evaluate_generator, once from
    `midg evaluate-generator` (one run each: the command is the second run), which also
    prints the summary. Both runs score a --checkpoint, so its inpainting is in the bytes too."""
    res, out, cli_out = checkpoint_runs["cli"], checkpoint_runs["out"], checkpoint_runs["cli_out"]
    assert res.exit_code == 0, res.output
    assert "good" in res.output and "C2ST" in res.output
    assert cli_out.read_bytes() == out.read_bytes()
    assert cli_out.with_suffix(".png").read_bytes() == out.with_suffix(".png").read_bytes()
    # a set's numbers do not depend on which other sets are compared with it (nor on --checkpoint,
    # which adds the inpainting section only)
    run = checkpoint_runs["run"]
    assert run["methods"]["good"] == two_set_run[1]["methods"]["good"]
    assert run["reference"] == two_set_run[1]["reference"]


def test_cli_reports_bad_input_in_one_line(tmp_path):
    import subprocess
    import sys

    midg = Path(sys.executable).with_name("midg")
    proc = subprocess.run([str(midg), "evaluate-generator", "--real", str(tmp_path / "nope"), "--synthetic",
                           str(tmp_path / "nope2"), "--out", str(tmp_path / "m.json")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "nope" in proc.stderr and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "m.json").exists()


def test_cli_refuses_a_device_it_does_not_have(eval_sets, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import midg.augment.metrics.evaluate as ev
    from midg.pipelines.cli import app

    monkeypatch.setattr(ev, "EvalConfig", lambda crop_size: TINY)  # fast, should it get as far as evaluating
    out = tmp_path / "m.json"
    bad = CliRunner().invoke(app, ["evaluate-generator", "--real", str(eval_sets / "real"), "--synthetic",
                                   str(eval_sets / "good"), "--out", str(out), "--device", "cuda:7"])
    assert bad.exit_code != 0


def test_checkpoint_inpainting_uses_the_checkpoints_geometry(checkpoint_runs):
    """--checkpoint: its inpaint() is scored beside the baselines, on crops of its own size."""
    inp = checkpoint_runs["run"]["inpainting"]
    assert checkpoint_runs["seen"]["shape"][1:] == (1, 24, 24) and inp["crop_size"] == 24 and inp["min_window"] == 16
    assert set(inp["methods"]) == {"telea", "ns", "midg"} and "note" not in inp
    assert inp["methods"]["midg"]["psnr"] < inp["methods"]["telea"]["psnr"]
