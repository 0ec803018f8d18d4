"""DeepPCB's own score, as its published evaluation script defines it (not COCO mAP).

Rules (per image; ground-truth boxes in file order): each ground-truth box takes the
highest-scoring still-unused detection whose IoU with it is strictly above 0.33, whatever
that detection's class; the pair is a hit only if the classes agree (a wrong-class match
still uses the detection up, and the box stays missed). All detections of all images and
classes are then ranked together by score, and AP is the sum of the precision at each hit
over the number of ground-truth boxes: no precision envelope, no per-image cap, no
per-class averaging. Precision, recall and F-score count hits over all detections and
over all ground-truth boxes. Works on the COCO gt and results our evaluator reads.

    deeppcb_scores(coco_gt_dict, results)["deeppcb_ap"]
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

DEEPPCB_IOU = 0.33  # a match needs IoU strictly above this


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one xywh box `a` with each xywh box of `b` (N, 4)."""
    ix = np.clip(np.minimum(a[0] + a[2], b[:, 0] + b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[1] + a[3], b[:, 1] + b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    union = a[2] * a[3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def deeppcb_scores(gt: dict[str, Any], detections: list[dict[str, Any]], iou: float = DEEPPCB_IOU) -> dict[str, float | None]:
    """{"deeppcb_ap", "deeppcb_precision", "deeppcb_recall", "deeppcb_f"} in 0..1 (None where undefined).

    `gt`: a COCO instances dict (images, annotations with bbox xywh and category_id);
    `detections`: COCO results (image_id, category_id, bbox xywh, score).
    """
    gts: dict[Any, list[dict]] = defaultdict(list)
    for a in gt.get("annotations", []):
        gts[a["image_id"]].append(a)
    dets: dict[Any, list[int]] = defaultdict(list)
    for i, d in enumerate(detections):
        dets[d["image_id"]].append(i)
    scores = np.asarray([float(d["score"]) for d in detections], np.float64)
    hit = np.zeros(len(detections), bool)
    for image_id, idx in dets.items():
        idx = sorted(idx, key=lambda i: -scores[i])  # stable: equal scores keep file order
        boxes = np.asarray([detections[i]["bbox"] for i in idx], np.float64).reshape(-1, 4)
        used = np.zeros(len(idx), bool)
        for a in gts.get(image_id, []):
            ok = (_iou(np.asarray(a["bbox"], np.float64), boxes) > iou) & ~used
            if ok.any():
                j = int(np.argmax(ok))  # the first (highest-scoring) unused overlap, any class
                used[j] = True
                hit[idx[j]] = detections[idx[j]]["category_id"] == a["category_id"]
    n_gt, n_det, tp = sum(len(v) for v in gts.values()), len(detections), int(hit.sum())
    order = np.argsort(-scores, kind="stable")
    ranked = hit[order]
    precision_at = np.cumsum(ranked) / np.arange(1, n_det + 1)
    ap = float(precision_at[ranked].sum() / n_gt) if n_gt else None
    p = tp / n_det if n_det else (None if not n_gt else 0.0)
    r = tp / n_gt if n_gt else None
    f = (2 * p * r / (p + r) if p + r > 0 else 0.0) if p is not None and r is not None else None
    return {"deeppcb_ap": ap, "deeppcb_precision": p, "deeppcb_recall": r, "deeppcb_f": f}
