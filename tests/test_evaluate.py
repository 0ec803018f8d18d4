"""The one evaluator (detectors/evaluate.py) against hand-computed values and pycocotools itself."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from midg.datasets.boxes import Box
from midg.datasets.errors import DatasetError
from midg.datasets.layout import DatasetWriter
from midg.detectors.evaluate import evaluate_coco, evaluate_split

NAMES = ["open", "short"]
GT = {  # image name -> boxes
    "a": [Box(0, 10, 10, 110, 110), Box(0, 130, 130, 180, 190)],
    "b": [Box(1, 40, 40, 90, 80)],
}


@pytest.fixture(scope="module")
def gt_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "gt"
    with DatasetWriter(out, NAMES, source="test") as w:
        for name, boxes in GT.items():
            w.add_image("test", name, array=np.zeros((200, 200), np.uint8), boxes=boxes)
    return out


def _ids(gt_json: Path) -> dict[str, int]:
    doc = json.loads(gt_json.read_text())
    return {Path(im["file_name"]).stem: im["id"] for im in doc["images"]}


def _det(image_id: int, cls: int, x1: float, y1: float, x2: float, y2: float, score: float) -> dict:
    return {"image_id": image_id, "category_id": cls + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score}


def test_ground_truth_as_predictions_scores_one(gt_dataset):
    gt_json = gt_dataset / "annotations" / "test.json"
    ids = _ids(gt_json)
    preds = [_det(ids[n], b.cls, *b.xyxy(), 1.0) for n, boxes in GT.items() for b in boxes]
    m = evaluate_coco(gt_json, preds)
    assert m["map50"] == 1.0 and m["map50_95"] == 1.0 and m["map33"] == 1.0 and m["ar100"] == 1.0
    assert m["per_class"]["open"] == {"ap50": 1.0, "ap": 1.0, "ap33": 1.0, "gt_boxes": 2}
    assert m["counts"] == {"images": 2, "gt_boxes": 3, "predictions": 3}
    assert m["evaluator"] == "pycocotools" and m["evaluator_version"]


def test_no_predictions_scores_zero_without_crashing(gt_dataset, tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    m = evaluate_coco(gt_dataset / "annotations" / "test.json", empty)
    assert (m["map50"], m["map50_95"], m["map33"], m["ar100"]) == (0.0, 0.0, 0.0, 0.0)
    assert m["per_class"]["short"]["ap50"] == 0.0
    assert m["counts"]["predictions"] == 0


def _hand_case(ids):
    # Class 0 ("open"), two GT boxes in image a: the small one found exactly (0.9), a false
    # positive (0.85) ranked above the big one's detection shifted 24 px (0.8; IoU 76/124 = 0.613).
    # Class 1: one exact detection.
    return [
        _det(ids["a"], 0, 130, 130, 180, 190, 0.9),
        _det(ids["b"], 0, 100, 100, 150, 150, 0.85),
        _det(ids["a"], 0, 10 + 24, 10, 110 + 24, 110, 0.8),
        _det(ids["b"], 1, 40, 40, 90, 80, 0.95),
    ]


def test_hand_built_case_matches_reasoning_and_pycocotools(gt_dataset):
    gt_json = gt_dataset / "annotations" / "test.json"
    preds = _hand_case(_ids(gt_json))
    m = evaluate_coco(gt_json, preds)

    # By hand, class 0, COCO's 101-point interpolated precision:
    #   IoU thresholds 0.50, 0.55, 0.60 (the shifted box matches): TP, FP, TP -> precision 1 up to
    #   recall 0.5 (51 points), then 2/3 up to recall 1 (50 points).
    #   thresholds 0.65 .. 0.95 (7 of them): TP, FP, FP -> 1 up to recall 0.5 (51 points), then 0.
    ap_hit, ap_miss = (51 + 50 * 2 / 3) / 101, 51 / 101
    open_ap = (3 * ap_hit + 7 * ap_miss) / 10
    assert m["per_class"]["open"]["ap50"] == pytest.approx(ap_hit, abs=1e-6)
    assert m["per_class"]["open"]["ap"] == pytest.approx(open_ap, abs=1e-6)
    assert m["per_class"]["short"]["ap50"] == 1.0
    assert m["map50"] == pytest.approx((ap_hit + 1) / 2, abs=1e-6)  # 0.917492
    assert m["map50_95"] == pytest.approx((open_ap + 1) / 2, abs=1e-6)  # 0.801980
    assert m["map33"] == pytest.approx((ap_hit + 1) / 2, abs=1e-6)  # the shifted box matches at 0.33 too
    assert m["ar100"] == pytest.approx(((3 * 1.0 + 7 * 0.5) / 10 + 1) / 2, abs=1e-6)  # 0.825

    # And pycocotools run directly, the way its own docs do, agrees.
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_json))
        ev = COCOeval(gt, gt.loadRes(json.loads(json.dumps(preds))), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert m["map50_95"] == pytest.approx(ev.stats[0], abs=1e-6)
    assert m["map50"] == pytest.approx(ev.stats[1], abs=1e-6)
    assert m["ar100"] == pytest.approx(ev.stats[8], abs=1e-6)


def test_custom_iou_thresholds_without_half(gt_dataset):
    gt_json = gt_dataset / "annotations" / "test.json"
    m = evaluate_coco(gt_json, _hand_case(_ids(gt_json)), iou_thrs=[0.7])
    assert m["map50"] is None  # 0.5 was not asked for
    assert m["map50_95"] == pytest.approx((51 / 101 + 1) / 2, abs=1e-6)  # the shifted box misses at 0.7


def test_bad_predictions_name_the_file_and_problem(gt_dataset, tmp_path):
    gt_json = gt_dataset / "annotations" / "test.json"
    bad = tmp_path / "preds.json"
    bad.write_text(json.dumps([{"image_id": 999, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]))
    with pytest.raises(DatasetError, match=r"preds\.json.*image_id 999"):
        evaluate_coco(gt_json, bad)
    bad.write_text(json.dumps([{"image_id": 1, "category_id": 7, "bbox": [0, 0, 5, 5], "score": 0.5}]))
    with pytest.raises(DatasetError, match="category_id 7"):
        evaluate_coco(gt_json, bad)
    bad.write_text('[{"image_id": 1,')
    with pytest.raises(DatasetError, match="not valid JSON"):
        evaluate_coco(gt_json, bad)


def test_midg_evaluate_writes_metrics(gt_dataset, tmp_path):
    from typer.testing import CliRunner

    from midg.pipelines.cli import app

    gt_json = gt_dataset / "annotations" / "test.json"
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps(_hand_case(_ids(gt_json))))
    out = tmp_path / "sub" / "metrics.json"
    r = CliRunner().invoke(app, ["evaluate", "--gt", str(gt_dataset), "--split", "test", "--pred", str(preds), "--out", str(out)])
    assert r.exit_code == 0, r.output
    m = json.loads(out.read_text())
    assert m["map50"] == pytest.approx(0.917492, abs=1e-6) and m["split"] == "test"
    assert m == evaluate_split(gt_dataset, "test", preds)  # same numbers as the library call
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp file left behind
