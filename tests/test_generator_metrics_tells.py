"""Generator metrics against constructed tells: C2ST's crops see a faint rectangle outline
that box crops miss, the seam score catches a blurred border, and C2ST on templates sees
past a surface difference yet still catches a tell.

    .venv/bin/python -m pytest tests/test_generator_metrics_tells.py -x -q
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from midg.augment.metrics.c2st import classifier_two_sample_test
from midg.augment.metrics.classifier import ClassifierConfig
from midg.augment.metrics.crops import defect_crops
from midg.augment.metrics.evaluate import evaluate_generator
from midg.augment.metrics.seams import seam_scores
from midg.datasets.boxes import Box
from midg.datasets.layout import DatasetWriter, load_dataset
from metric_builders import NAMES, TINY, draw_defect, make_board

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


# --------------------------------------------------------------------------- constructed tells (C2ST crops, seams)


def faint_outline(image: np.ndarray, rect) -> None:
    """The constructed tell, in place: +12 grey levels on the 1 px border of `rect`."""
    x1, y1, x2, y2 = rect
    ring = np.zeros(image.shape, bool)
    ring[y1:y2, x1:x2] = True
    ring[y1 + 1:y2 - 1, x1 + 1:x2 - 1] = False
    image[ring] = np.clip(image[ring].astype(int) + 12, 0, 255).astype(np.uint8)


def write_tell_sets(root: Path, n: int, seed: int, grow: int = 8) -> None:
    """Three sets of the same defect boards: "real" (labels only), "null" (re-saved, with the
    meta rects a generator writes: each box grown by `grow` px) and "outline" (the same
    pixels plus a faint +12 grey 1-px outline on each rect's border: a constructed tell)."""
    rng = np.random.default_rng(seed)
    boards = []
    for i in range(n):
        image = make_board(rng)
        boxes = [draw_defect(image, (i + k) % 3, rng, half=k) for k in range(2)]
        boards.append((image, boxes))
    for kind in ("real", "null", "outline"):
        defects = []
        with DatasetWriter(root / kind, NAMES, source="test-tells", seed=seed) as w:
            for i, (image, boxes) in enumerate(boards):
                out = image.copy()
                for b in boxes:
                    h, wd = out.shape
                    rect = [max(int(b.x1) - grow, 0), max(int(b.y1) - grow, 0), min(int(b.x2) + grow, wd), min(int(b.y2) + grow, h)]
                    if kind == "outline":
                        faint_outline(out, rect)
                    defects.append({"image": f"images/train/b_{i:03d}.png", "rect": rect, "box": b.xyxy(),
                                    "class": NAMES[b.cls]})
                w.add_image("train", f"b_{i:03d}", array=out, boxes=boxes)
            if kind != "real":
                w.update_meta(method=kind, defects=defects)


@pytest.fixture(scope="module")
def tell_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("tells")
    write_tell_sets(root, 70, seed=5)
    return root


C2ST_FAST = ClassifierConfig(width=8, epochs=4, min_steps=300, batch_size=32)  # ~10 s on one core


def _native(root: Path, kind: str):
    from midg.augment.metrics.crops import native_defect_crops, rect_box_ratio

    real_ds, ds = load_dataset(root / "real"), load_dataset(root / kind)
    real = native_defect_crops(real_ds, ("train",), NAMES, channels=1, box_scale=rect_box_ratio(ds), use_rects=False)
    return real, native_defect_crops(ds, ("train",), NAMES, channels=1)


def test_native_crops_show_the_whole_rect_at_native_resolution(tell_sets):
    from midg.augment.metrics.crops import NativeCropConfig, native_crop, rect_box_ratio

    image = np.arange(200 * 200, dtype=np.int64).reshape(200, 200) % 251
    crop = native_crop(image.astype(np.uint8), (90, 95, 100, 105), NativeCropConfig())
    assert crop.shape == (1, 64, 64)
    window = image[68:132, 63:127]  # 64 px centred on the grown region, not resampled
    assert np.array_equal(np.round(crop[0] * 255).astype(int), window)
    big = native_crop(np.zeros((300, 300), np.uint8), (10, 10, 150, 120), NativeCropConfig())
    assert big.shape == (1, 64, 64)  # bigger than the canvas: resized down to it
    assert native_crop(np.zeros((40, 30), np.uint8), (5, 5, 15, 15), NativeCropConfig()).shape == (1, 64, 64)
    # the real boxes are scaled to the synthetic rects' size: rect = box + 16 px a side
    sx, sy = rect_box_ratio(load_dataset(tell_sets / "outline"))
    assert sx > 1.5 and sy > 1.5


def test_c2st_catches_a_faint_rect_outline_that_box_crops_miss(tell_sets):
    real, synth = _native(tell_sets, "outline")
    assert len(real) == len(synth) == 140
    new = classifier_two_sample_test(real, synth, C2ST_FAST, seed=0, show_progress=False)
    assert new["accuracy"] > 0.8, new
    # the old crops (1.5x the label box, resized to 32 px) do not reach the rect's border
    old_real = defect_crops(load_dataset(tell_sets / "real"), ("train",), NAMES, channels=1)
    old_synth = defect_crops(load_dataset(tell_sets / "outline"), ("train",), NAMES, channels=1)
    old = classifier_two_sample_test(old_real, old_synth, C2ST_FAST, seed=0, show_progress=False)
    assert old["accuracy"] < 0.65 and old["ci95"][0] < 0.5 < old["ci95"][1], old


def test_c2st_null_case_resaved_real_defects(tell_sets):
    real, synth = _native(tell_sets, "null")
    res = classifier_two_sample_test(real, synth, C2ST_FAST, seed=0, show_progress=False)
    assert res["accuracy"] < 0.65 and res["ci95"][0] < 0.5, res


def test_seam_score_catches_a_blurred_rect_border(tell_sets):
    ds = load_dataset(tell_sets / "null")
    rects = [(d["image"], d["rect"]) for d in ds.meta["defects"]]
    exact = seam_scores(ds, rects)  # an exact paste: the real pixels, rect border invisible
    # the same rects with a soft edge: the image blurred in a band 3 px either side of the border
    root = tell_sets / "blurred"
    with DatasetWriter(root, NAMES, source="test-tells", seed=0) as w:
        by_image: dict[str, list] = {}
        for img, rect in rects:
            by_image.setdefault(img, []).append(rect)
        for entry in ds.images("train"):
            image = cv2.imread(str(ds.path(entry.file)), cv2.IMREAD_GRAYSCALE)
            soft = cv2.GaussianBlur(image, (0, 0), 1.5)
            band = np.zeros(image.shape, bool)
            for x1, y1, x2, y2 in by_image[entry.file]:
                band[max(y1 - 3, 0):y2 + 3, max(x1 - 3, 0):x2 + 3] = True
                band[y1 + 3:y2 - 3, x1 + 3:x2 - 3] = False
            image[band] = soft[band]
            w.add_image("train", Path(entry.file).stem, array=image, boxes=entry.boxes)
    blurred = seam_scores(load_dataset(root), rects)
    assert exact["n"] == blurred["n"] > 100
    assert blurred["log_dev"] > 2.5 * exact["log_dev"], (exact, blurred)  # measured 1.17 vs 0.36
    assert blurred["share_soft"] > 0.5 > exact["share_soft"]


def test_c2st_judges_only_what_was_painted_not_the_labels_an_annotated_canvas_carried(tell_sets, tmp_path):
    """A set painted into annotated images (`--canvas annotated`) keeps each canvas' real
    labels: the generator did not make them, so they are in no metric. Built: each board's
    second defect carries the faint-outline tell (painted), its first is the canvas' own real
    label (meta.json canvases[].real_boxes). Counted, the carried half dilutes the tell."""
    from midg.augment.metrics.crops import carried_boxes, native_defect_crops, rect_box_ratio

    outline = load_dataset(tell_sets / "outline")
    for carried_listed in (True, False):
        root = tmp_path / ("annotated" if carried_listed else "unlisted")
        defects, canvases = [], []
        with DatasetWriter(root, NAMES, source="test-tells", seed=0) as w:
            by_image = {}
            for d in outline.meta["defects"]:
                by_image.setdefault(d["image"], []).append(d)
            for entry in outline.images("train"):
                real = cv2.imread(str(load_dataset(tell_sets / "real").path(entry.file)), cv2.IMREAD_GRAYSCALE)
                told = cv2.imread(str(outline.path(entry.file)), cv2.IMREAD_GRAYSCALE)
                first, second = by_image[entry.file]
                x1, y1, x2, y2 = second["rect"]
                image = real.copy()
                image[y1:y2, x1:x2] = told[y1:y2, x1:x2]  # the tell on the painted defect only
                defects.append(second)
                canvases.append({"image": entry.file, "source": entry.file, "canvas": "annotated",
                                 "real_boxes": [[entry.boxes[0].cls, *entry.boxes[0].xyxy()]]})
                w.add_image("train", Path(entry.file).stem, array=image, boxes=entry.boxes)
            w.update_meta(method="annotated", defects=defects, **({"canvases": canvases} if carried_listed else {}))
    painted_ds, unlisted_ds = load_dataset(tmp_path / "annotated"), load_dataset(tmp_path / "unlisted")
    assert sum(len(b) for b in carried_boxes(painted_ds).values()) == 70
    real = native_defect_crops(load_dataset(tell_sets / "real"), ("train",), NAMES, channels=1,
                               box_scale=rect_box_ratio(painted_ds), use_rects=False)
    painted = native_defect_crops(painted_ds, ("train",), NAMES, channels=1)
    counted = native_defect_crops(unlisted_ds, ("train",), NAMES, channels=1)
    assert len(painted) == 70 and len(counted) == 140
    assert len(defect_crops(painted_ds, ("train",), NAMES, channels=1)) == 70  # FD, KID, CAS's crops too
    judged = classifier_two_sample_test(real, painted, C2ST_FAST, seed=0, show_progress=False)
    diluted = classifier_two_sample_test(real, counted, C2ST_FAST, seed=0, show_progress=False)
    assert judged["accuracy"] > 0.8, judged
    assert diluted["accuracy"] < judged["accuracy"] - 0.1, (judged, diluted)


# --------------------------------------------------------------------------- the templates' surface


@pytest.fixture(scope="module")
def surface_sets(tmp_path_factory):
    """Paired boards whose defect images are captured 10 grey levels brighter than their
    templates (under the change threshold: a surface difference, not a defect), and two
    synthetic sets on the templates: "exact" (each real defect's changed pixels put on its
    own template, as a perfect generator would paint) and "outline" (the same plus a faint
    +12 grey outline on each rect: a generator's tell)."""
    from midg.augment.metrics.crops import on_template

    root = tmp_path_factory.mktemp("surface")
    rng = np.random.default_rng(11)
    boards = []
    for i in range(70):
        template = make_board(rng)
        defect = template.copy()
        boxes = [draw_defect(defect, (i + k) % 3, rng, half=k) for k in range(2)]
        boards.append((template, np.clip(defect.astype(int) + 10, 0, 255).astype(np.uint8), boxes))
    with DatasetWriter(root / "real", NAMES, source="test-surface", seed=0) as w:
        for i, (template, captured, boxes) in enumerate(boards):
            t = w.add_normal(f"b_{i:03d}_temp", array=template)
            w.add_image("train" if i < 50 else "val", f"b_{i:03d}", array=captured, boxes=boxes, template=t)
    for kind in ("exact", "outline"):
        defects = []
        with DatasetWriter(root / kind, NAMES, source="test-surface", seed=0) as w:
            for i, (template, captured, boxes) in enumerate(boards):
                out = on_template(captured, template, boxes, threshold=24)
                for b in boxes:
                    rect = [int(b.x1) - 8, int(b.y1) - 8, int(b.x2) + 8, int(b.y2) + 8]
                    if kind == "outline":
                        faint_outline(out, rect)
                    defects.append({"image": f"images/train/b_{i:03d}.png", "rect": rect, "box": b.xyxy(),
                                    "class": NAMES[b.cls]})
                w.add_image("train", f"b_{i:03d}", array=out, boxes=boxes)
            w.update_meta(method=kind, defects=defects)
    return root


def _surface_c2st(root: Path, kind: str, against: tuple[str, ...] = ("real", "on_templates")) -> tuple[float, ...]:
    """C2ST accuracy of the set against each reference named in `against`: "real" (the real
    defects) and "on_templates" (the real defects on their templates). Each is a classifier
    trained (~10 s on one core): only the ones a test reads are run."""
    from midg.augment.metrics.crops import native_defect_crops, rect_box_ratio, template_defect_crops

    real_ds, ds = load_dataset(root / "real"), load_dataset(root / kind)
    scale = rect_box_ratio(ds)
    synth = native_defect_crops(ds, ("train",), NAMES, channels=1)
    real = native_defect_crops(real_ds, ("train", "val"), NAMES, channels=1, box_scale=scale, use_rects=False)
    on_templates = template_defect_crops(real_ds, ("train", "val"), NAMES, channels=1, threshold=24, box_scale=scale)
    assert len(real) == len(on_templates) == len(synth) == 140
    references = {"real": real, "on_templates": on_templates}
    return tuple(classifier_two_sample_test(references[r], synth, C2ST_FAST, seed=0, show_progress=False)["accuracy"]
                 for r in against)


def test_on_template_puts_only_the_changed_pixels_of_each_box():
    from midg.augment.metrics.crops import on_template

    template = np.full((20, 20), 50, np.uint8)
    image = template + 10  # the surface differs by 10 everywhere (under the threshold)
    image[5:8, 5:8] = 200  # the defect
    image[15, 15] = 200  # a change outside every box stays out
    out = on_template(image, template, [Box(0, 4, 4, 10, 10)], threshold=24)
    want = template.copy()
    want[5:8, 5:8] = 200
    assert np.array_equal(out, want)


def test_c2st_on_templates_sees_past_the_surface_and_still_catches_a_tell(surface_sets):
    exact_real, exact_tmpl = _surface_c2st(surface_sets, "exact")
    # a perfect defect on the template is told from the real capture by the surface alone ...
    assert exact_real > 0.85, exact_real
    # ... and not from the same defects on their templates
    assert exact_tmpl < 0.65, exact_tmpl
    # a generator's own tell is still caught against the templates
    (outline_tmpl,) = _surface_c2st(surface_sets, "outline", against=("on_templates",))
    assert outline_tmpl > 0.8, outline_tmpl


def test_evaluate_reports_the_surface_gap_and_c2st_on_templates(surface_sets, tmp_path):
    m = evaluate_generator(surface_sets / "real", [surface_sets / "exact"], tmp_path / "m.json", cfg=TINY, seed=0,
                           show_progress=False, log=lambda *a: None)
    gap = m["reference"]["c2st_surface_gap"]
    assert gap["accuracy"] > 0.8 and gap["n_per_side"] > 0
    tmpl = m["methods"]["exact"]["c2st_on_templates"]
    assert tmpl["accuracy"] < m["methods"]["exact"]["c2st"]["accuracy"] and tmpl["real_box_scale"][0] > 1
