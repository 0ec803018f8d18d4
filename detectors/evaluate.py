"""The one evaluator: every detector's COCO results are scored here, with pycocotools.

    midg evaluate --gt data/real --split test --pred runs/y8/preds_test.json --out runs/y8/metrics_test.json

    from midg.detectors.evaluate import evaluate_coco
    m = evaluate_coco(Path("data/real/annotations/test.json"), Path("preds.json"))
    m["map50"], m["map50_95"], m["map33"], m["per_class"]["short"]["ap50"]

All figures are fractions in 0..1, read from COCOeval's own `eval["precision"]` and
`eval["recall"]` arrays (area "all", maxDets 100: what `summarize()` prints as AP, AP50
and AR@100) so thresholds other than COCO's can be asked for without `summarize()`
printing -1. `map33` is COCO mAP at IoU 0.33 ("COCO mAP@0.33"), from a second COCOeval
with `iouThrs = [0.33]`; it is not the figure DeepPCB's scorer gives, which `deeppcb_ap`,
`deeppcb_precision`, `deeppcb_recall` and `deeppcb_f` are (see deeppcb_score.py).
pycocotools' prints are silenced.

ultralytics reports its own mAP (other interpolation, up to 300 boxes an image): it is
not this one and is never used for a comparison.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from midg.datasets.atomic import atomic_write_json
from midg.datasets.coco import load_coco
from midg.datasets.errors import DatasetError
from midg.datasets.yolo import read_text

from .deeppcb_score import deeppcb_scores

EVALUATOR = "pycocotools"
DEEPPCB_IOU = 0.33  # map33 is COCO mAP@0.33; DeepPCB's own score (IoU > 0.33) is deeppcb_score.py
_AREA_ALL, _MAXDET_100 = 0, 2  # indices into COCOeval's area ranges and maxDets [1, 10, 100]


def _evaluator_version() -> str:
    try:
        return version("pycocotools")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def _load_gt(gt_json: Path):
    """pycocotools COCO from a file we first check with the data layer (clear errors)."""
    from pycocotools.coco import COCO

    load_coco(gt_json)  # DatasetError naming the file for anything malformed
    doc = json.loads(read_text(gt_json))
    for a in doc["annotations"]:  # fields COCOeval reads that other writers may omit
        a.setdefault("iscrowd", 0)
        a.setdefault("area", float(a["bbox"][2]) * float(a["bbox"][3]))
    coco = COCO()
    coco.dataset = doc
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _check_preds(preds: list[Any], coco_gt, where: str) -> list[dict[str, Any]]:
    """A copy of the results, checked the way loadRes would fail, but naming the problem."""
    if not isinstance(preds, list):
        raise DatasetError(where, "predictions must be a JSON list of {image_id, category_id, bbox, score}")
    image_ids, cat_ids = set(coco_gt.getImgIds()), set(coco_gt.getCatIds())
    out = []
    for i, p in enumerate(preds):
        if not isinstance(p, dict):
            raise DatasetError(where, f"prediction {i} is not an object")
        missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in p]
        if missing:
            raise DatasetError(where, f"prediction {i} lacks {missing}")
        if p["image_id"] not in image_ids:
            raise DatasetError(where, f"prediction {i}: image_id {p['image_id']!r} is not in the ground truth")
        if p["category_id"] not in cat_ids:
            raise DatasetError(where, f"prediction {i}: category_id {p['category_id']!r} is not one of {sorted(cat_ids)}")
        bbox, score = p["bbox"], p["score"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                   and math.isfinite(v) for v in bbox)):
            raise DatasetError(where, f"prediction {i}: bbox {bbox!r} is not 4 finite numbers [x, y, w, h]")
        if bbox[2] < 0 or bbox[3] < 0:
            raise DatasetError(where, f"prediction {i}: bbox {bbox!r} has a negative width or height")
        if not (isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score)):
            raise DatasetError(where, f"prediction {i}: score {score!r} is not a finite number")
        out.append({"image_id": p["image_id"], "category_id": p["category_id"],
                    "bbox": [float(v) for v in bbox], "score": float(score)})
    return out


def _run_cocoeval(coco_gt, dets: list[dict[str, Any]], iou_thrs: list[float]):
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(dets))  # loadRes adds fields to the dicts it gets
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.iouThrs = np.array(iou_thrs, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
    return ev


def _mean_valid(a: np.ndarray) -> float | None:
    """summarize()'s rule: the mean over entries > -1 (-1 marks 'no ground truth')."""
    valid = a[a > -1]
    return float(np.mean(valid)) if valid.size else None


def _ap(ev, t: int | slice = slice(None), k: int | slice = slice(None)) -> float | None:
    return _mean_valid(ev.eval["precision"][t, :, k, _AREA_ALL, _MAXDET_100])


def evaluate_coco(gt_json: Path, preds: Path | list, iou_thrs: list[float] | None = None) -> dict[str, Any]:
    """Score COCO results against a COCO instances file.

    `preds` is a results file or the list itself. `iou_thrs` (default COCO's 0.50:0.05:0.95)
    sets the thresholds `map50_95` averages over; `map50` needs 0.5 among them (else None).
    Classes without ground truth get None; everything else is a float in 0..1.
    """
    gt_json = Path(gt_json)
    iou_thrs = [round(float(t), 4) for t in (iou_thrs if iou_thrs is not None else np.linspace(0.5, 0.95, 10))]
    if not iou_thrs or not all(0 < t <= 1 for t in iou_thrs):
        raise DatasetError(None, f"iou_thrs must be numbers in (0, 1], got {iou_thrs}")
    coco_gt = _load_gt(gt_json)
    where = str(preds) if isinstance(preds, (str, Path)) else "predictions"
    if isinstance(preds, (str, Path)):
        try:
            preds = json.loads(read_text(Path(preds)))
        except json.JSONDecodeError as exc:
            raise DatasetError(where, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
    dets = _check_preds(preds, coco_gt, where)

    cats = sorted(coco_gt.getCatIds())
    names = {c["id"]: c["name"] for c in coco_gt.loadCats(cats)}
    gt_per_cat = {c: len(coco_gt.getAnnIds(catIds=[c])) for c in cats}
    n_gt = len(coco_gt.getAnnIds())

    if dets:
        ev = _run_cocoeval(coco_gt, dets, iou_thrs)
        ev33 = _run_cocoeval(coco_gt, dets, [DEEPPCB_IOU])
        t50 = iou_thrs.index(0.5) if 0.5 in iou_thrs else None
        map50 = _ap(ev, t50) if t50 is not None else None
        map50_95, map33 = _ap(ev), _ap(ev33)
        ar100 = _mean_valid(ev.eval["recall"][:, :, _AREA_ALL, _MAXDET_100])
        per_class = {}
        for k, c in enumerate(ev.params.catIds):
            per_class[names[c]] = {
                "ap50": _ap(ev, t50, k) if t50 is not None else None,
                "ap": _ap(ev, slice(None), k),
                "ap33": _ap(ev33, slice(None), k),
                "gt_boxes": gt_per_cat[c],
            }
    else:  # pycocotools' loadRes fails on an empty list: nothing found scores zero where there is something to find
        zero = 0.0 if n_gt else None
        map50 = zero if 0.5 in iou_thrs else None
        map50_95 = map33 = ar100 = zero
        per_class = {names[c]: {"ap50": (0.0 if gt_per_cat[c] else None) if 0.5 in iou_thrs else None,
                                "ap": 0.0 if gt_per_cat[c] else None, "ap33": 0.0 if gt_per_cat[c] else None,
                                "gt_boxes": gt_per_cat[c]} for c in cats}

    def fraction(v: float | None) -> float | None:
        return None if v is None else round(v, 6)

    for v in per_class.values():
        for key in ("ap50", "ap", "ap33"):
            v[key] = fraction(v[key])
    return {
        "evaluator": EVALUATOR,
        "evaluator_version": _evaluator_version(),
        "iou_thrs": iou_thrs,
        "max_dets": 100,
        "map50": fraction(map50),
        "map50_95": fraction(map50_95),
        "map33": fraction(map33),  # COCO mAP@0.33: not DeepPCB's own score (deeppcb_* below)
        **{k: fraction(v) for k, v in deeppcb_scores(coco_gt.dataset, dets).items()},
        "ar100": fraction(ar100),
        "per_class": per_class,
        "counts": {"images": len(coco_gt.getImgIds()), "gt_boxes": n_gt, "predictions": len(dets)},
    }


def evaluate_split(dataset_dir: Path, split: str, preds: Path | list, out: Path | None = None) -> dict[str, Any]:
    """Score predictions on DATASET/annotations/{split}.json; write them atomically to `out`."""
    gt_json = Path(dataset_dir) / "annotations" / f"{split}.json"
    if not gt_json.is_file():
        raise DatasetError(gt_json, f"missing: the dataset has no COCO file for split {split!r}")
    metrics = evaluate_coco(gt_json, preds)
    metrics = {"gt": str(gt_json), "split": split,
               "predictions": str(preds) if isinstance(preds, (str, Path)) else None, **metrics}
    if out is not None:
        atomic_write_json(out, metrics)
    return metrics
