"""DeepPCB's own score (detectors/deeppcb_score.py) on hand-built cases, expected values by hand."""

from __future__ import annotations

import json

import pytest

from midg.detectors.deeppcb_score import deeppcb_scores
from midg.detectors.evaluate import evaluate_coco


def gt_doc(boxes_per_image: list[list[tuple[int, list[float]]]]) -> dict:
    images, anns = [], []
    for i, boxes in enumerate(boxes_per_image, start=1):
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 640})
        for cls, bbox in boxes:
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cls, "bbox": bbox,
                         "area": bbox[2] * bbox[3], "iscrowd": 0})
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "open"}, {"id": 2, "name": "short"}]}


def det(image_id: int, cls: int, bbox: list[float], score: float) -> dict:
    return {"image_id": image_id, "category_id": cls, "bbox": bbox, "score": score}


BOX = [10.0, 10.0, 100.0, 100.0]


def test_perfect_detections_score_one():
    gt = gt_doc([[(1, BOX)], [(2, [200.0, 200.0, 50.0, 50.0])]])
    s = deeppcb_scores(gt, [det(1, 1, BOX, 0.9), det(2, 2, [200.0, 200.0, 50.0, 50.0], 0.8)])
    assert s == {"deeppcb_ap": 1.0, "deeppcb_precision": 1.0, "deeppcb_recall": 1.0, "deeppcb_f": 1.0}


def test_no_detections_score_zero():
    s = deeppcb_scores(gt_doc([[(1, BOX)]]), [])
    assert s["deeppcb_ap"] == 0.0 and s["deeppcb_recall"] == 0.0 and s["deeppcb_precision"] == 0.0 and s["deeppcb_f"] == 0.0


def test_wrong_class_ranked_above_takes_the_match():
    # the wrong-class box scores higher: it is matched (whatever its class), the box is missed,
    # and the right-class box below finds no unused ground truth
    gt = gt_doc([[(1, BOX)]])
    s = deeppcb_scores(gt, [det(1, 2, BOX, 0.9), det(1, 1, BOX, 0.8)])
    assert s == {"deeppcb_ap": 0.0, "deeppcb_precision": 0.0, "deeppcb_recall": 0.0, "deeppcb_f": 0.0}
    # the other way round: a hit at rank 1, the wrong box unmatched
    s = deeppcb_scores(gt, [det(1, 2, BOX, 0.5), det(1, 1, BOX, 0.8)])
    assert s["deeppcb_ap"] == 1.0 and s["deeppcb_precision"] == 0.5 and s["deeppcb_f"] == pytest.approx(2 / 3)


def test_iou_of_exactly_0_33_is_no_match_just_above_is():
    gt = gt_doc([[(1, [0.0, 0.0, 100.0, 10.0])]])
    exactly = det(1, 1, [0.0, 0.0, 33.0, 10.0], 0.9)  # inside the box: IoU = 330 / 1000 = 0.33
    above = det(1, 1, [0.0, 0.0, 33.5, 10.0], 0.9)  # IoU 0.335
    assert deeppcb_scores(gt, [exactly])["deeppcb_recall"] == 0.0
    assert deeppcb_scores(gt, [above])["deeppcb_recall"] == 1.0


def test_ranking_is_pooled_across_images_with_no_envelope():
    # image 1: a miss at score 0.9 (far away) and a hit at 0.6; image 2: a hit at 0.8 and
    # a hit at 0.5. Pooled ranking: miss(0.9), hit(0.8), hit(0.6), hit(0.5); 4 ground truths,
    # one never found. AP = (1/2 + 2/3 + 3/4) / 4; precision 3/4, recall 3/4.
    b2 = [300.0, 300.0, 40.0, 40.0]
    far = [500.0, 500.0, 20.0, 20.0]
    gt = gt_doc([[(1, BOX), (2, [0.0, 400.0, 30.0, 30.0])], [(1, b2), (2, [100.0, 100.0, 60.0, 60.0])]])
    dets = [det(1, 1, far, 0.9), det(1, 1, BOX, 0.6), det(2, 1, b2, 0.8), det(2, 2, [100.0, 100.0, 60.0, 60.0], 0.5)]
    s = deeppcb_scores(gt, dets)
    assert s["deeppcb_ap"] == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 4)
    assert s["deeppcb_precision"] == 0.75 and s["deeppcb_recall"] == 0.75 and s["deeppcb_f"] == pytest.approx(0.75)


def test_coco_map33_and_deeppcb_ap_differ_on_class_confusion(tmp_path):
    # one "open" defect, detected once as "short" (0.9) and once as "open" (0.8). COCO scores
    # per class: "open" finds its box (AP 1), "short" has no ground truth (ignored): map33 = 1.
    # DeepPCB lets the higher "short" box take the match: AP 0.
    gt = gt_doc([[(1, BOX)]])
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    dets = [det(1, 2, BOX, 0.9), det(1, 1, BOX, 0.8)]
    m = evaluate_coco(path, dets)
    assert m["map33"] == pytest.approx(1.0) and m["deeppcb_ap"] == 0.0
    assert m["deeppcb_precision"] == 0.0 and m["deeppcb_recall"] == 0.0 and "map50" in m
    assert evaluate_coco(path, [])["deeppcb_ap"] == 0.0
