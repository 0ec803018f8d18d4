"""COCO instances files: build them from boxes, and read them with every check a user needs."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .boxes import Box
from .errors import DatasetError
from .yolo import read_text


def build_coco(images: list[dict[str, Any]], names: list[str], description: str = "") -> dict[str, Any]:
    """`images`: dicts with id, file_name, width, height and boxes (list[Box]).

    Annotation ids run 1..N in image order; category_id is the YOLO class + 1.
    """
    out_images, out_anns = [], []
    ann_id = 1
    for im in images:
        out_images.append({"id": im["id"], "file_name": im["file_name"], "width": im["width"], "height": im["height"]})
        for b in im["boxes"]:
            x, y, w, h = (round(v, 3) for v in b.xywh())
            out_anns.append({"id": ann_id, "image_id": im["id"], "category_id": b.cls + 1,
                             "bbox": [x, y, w, h], "area": round(w * h, 3), "iscrowd": 0})
            ann_id += 1
    return {
        "info": {"description": description, "version": "1.0"},
        "licenses": [],
        "images": out_images,
        "annotations": out_anns,
        "categories": [{"id": i + 1, "name": n, "supercategory": "defect"} for i, n in enumerate(names)],
    }


@dataclass
class CocoImage:
    id: int
    file_name: str
    width: int
    height: int
    boxes: list[Box]


def safe_relative(name: Any, where: str | Path) -> str:
    """A file name that stays inside its folder: no absolute paths, no `..`, no backslashes."""
    if not isinstance(name, str) or not name:
        raise DatasetError(where, f"file_name {name!r} is not a non-empty string")
    if "\\" in name or "\x00" in name:
        raise DatasetError(where, f"file_name {name!r} contains a backslash or NUL")
    p = PurePosixPath(name)
    if p.is_absolute() or any(part == ".." for part in p.parts) or name.startswith("~"):
        raise DatasetError(where, f"file_name {name!r} escapes the image folder")
    return str(p)


MAX_SIDE = 1_000_000  # pixels: a larger side is a broken (or hostile) entry, not an image


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_id(value: Any, what: str, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DatasetError(path, f"{what} {value!r} is not an integer")
    return value


def load_coco(path: str | Path, names: list[str] | None = None) -> tuple[list[str], list[CocoImage]]:
    """Read and validate a COCO instances file.

    Returns the category names in id order (mapped to classes 0..K-1) and the images with
    their boxes in pixels. With `names` given, categories must be exactly those names.
    """
    path = Path(path)
    try:
        doc = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
    except RecursionError:
        raise DatasetError(path, "not a COCO file: JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise DatasetError(path, "top level is not a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise DatasetError(path, f"missing or malformed '{key}' list")

    cats = {}
    for c in doc["categories"]:
        if not isinstance(c, dict) or "id" not in c or not isinstance(c.get("name"), str):
            raise DatasetError(path, f"malformed category {c!r}")
        cid = _int_id(c["id"], "category id", path)
        if cid in cats:
            raise DatasetError(path, f"duplicate category id {cid}")
        cats[cid] = c["name"]
    order = sorted(cats)
    cat_names = [cats[i] for i in order]
    if names is not None and cat_names != list(names):
        raise DatasetError(path, f"categories {cat_names} differ from the dataset's names {list(names)}")
    cls_of = {cid: i for i, cid in enumerate(order)}

    images: dict[int, CocoImage] = {}
    seen_files = set()
    for im in doc["images"]:
        if not isinstance(im, dict):
            raise DatasetError(path, f"malformed image entry {im!r}")
        iid = _int_id(im.get("id"), "image id", path)
        if iid in images:
            raise DatasetError(path, f"duplicate image id {iid}")
        fname = safe_relative(im.get("file_name"), path)
        if fname in seen_files:
            raise DatasetError(path, f"file_name {fname!r} listed twice")
        seen_files.add(fname)
        w, h = im.get("width"), im.get("height")
        if not (_is_int(w) and _is_int(h) and 0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
            raise DatasetError(path, f"image {iid}: width/height {w!r}x{h!r} are not integers 1..{MAX_SIDE}")
        images[iid] = CocoImage(iid, fname, w, h, [])

    ann_ids = set()
    for a in doc["annotations"]:
        if not isinstance(a, dict):
            raise DatasetError(path, f"malformed annotation {a!r}")
        aid = _int_id(a.get("id"), "annotation id", path)
        if aid in ann_ids:
            raise DatasetError(path, f"duplicate annotation id {aid}")
        ann_ids.add(aid)
        iid = a.get("image_id")
        if not _is_int(iid) or iid not in images:  # (a list or dict is not even hashable)
            raise DatasetError(path, f"annotation {aid}: unknown image_id {iid!r}")
        cid = a.get("category_id")
        if not _is_int(cid) or cid not in cls_of:
            raise DatasetError(path, f"annotation {aid}: unknown category_id {cid!r}")
        bbox = a.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
            raise DatasetError(path, f"annotation {aid}: bbox {bbox!r} is not [x, y, w, h]")
        try:
            x, y, w, h = (float(v) for v in bbox)
        except OverflowError:  # a JSON integer beyond any float
            x = y = w = h = math.inf
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            raise DatasetError(path, f"annotation {aid}: NaN or inf in bbox")
        if w <= 0 or h <= 0 or x + w <= x or y + h <= y:  # (a width below float precision is none)
            raise DatasetError(path, f"annotation {aid}: box has no area")
        img = images[iid]
        tol = 0.5
        if x < -tol or y < -tol or x + w > img.width + tol or y + h > img.height + tol:
            raise DatasetError(path, f"annotation {aid}: box {bbox} reaches outside image {img.file_name} ({img.width}x{img.height})")
        img.boxes.append(Box(cls_of[cid], max(0.0, x), max(0.0, y), min(float(img.width), x + w), min(float(img.height), y + h)))
    return cat_names, list(images.values())
