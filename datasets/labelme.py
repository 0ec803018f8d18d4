"""LabelMe JSON files into the canonical layout.

    midg data import labelme DIR data/mine [--val-frac 0.1] [--empty-as normal|background]

One JSON per image (searched recursively under DIR). `rectangle` shapes (two corners, any
order) and `polygon` shapes (their extent) become boxes in LabelMe's pixel coordinates,
clipped to the image; polygons are kept in meta.json (`provenance.files[...].polygons`).
The image is `imagePath` relative to the JSON; else, for a bare or foreign path, its file
name in the JSON's folder or in an image folder beside it (`../data/`, `../images/`, as
BSData keeps `label/*.json` and `data/*.jpg`); else an image with the JSON's stem; else
the embedded base64 `imageData` (its bytes written as they are). Images are looked for
only inside DIR's parent. A .json without a `shapes` list is not a LabelMe file: skipped
and counted. Classes: the sorted labels. A JSON without shapes is a normal (default) or a
background image; `normals` adds a folder of defect-free images.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
import tempfile
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from .boxes import Box
from .errors import ConfigError, DatasetError
from .images import IMAGE_SUFFIXES, image_size
from .layout import SPLITS, Dataset, DatasetWriter
from .naming import UniqueNames
from .progress import track
from .yolo import read_text

SHAPES = ("rectangle", "polygon")


def read_labelme(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes", []), list):
        raise DatasetError(path, "expected a LabelMe object with a 'shapes' list")
    for k, shape in enumerate(doc.get("shapes", [])):
        if not isinstance(shape, dict) or not isinstance(shape.get("label"), str) or not shape["label"].strip():
            raise DatasetError(path, f"shape {k}: 'label' must be a non-empty string")
        kind = shape.get("shape_type", "polygon")
        if kind not in SHAPES:
            raise DatasetError(path, f"shape {k} ({shape['label']}): shape_type {kind!r} is not one of {list(SHAPES)}")
        pts = shape.get("points")
        ok = isinstance(pts, list) and all(isinstance(p, list) and len(p) == 2 and
                                           all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               and math.isfinite(v) for v in p) for p in pts)
        if not ok or len(pts) < (2 if kind == "rectangle" else 3):
            raise DatasetError(path, f"shape {k} ({shape['label']}): 'points' must be "
                                     f"{'2' if kind == 'rectangle' else '3 or more'} finite [x, y] pairs")
    return doc


IMAGE_FOLDERS = ("data", "images", "imgs", "img", "jpegimages")  # beside a label folder, by habit


def _image_for(path: Path, doc: dict[str, Any], scratch: Path, src: Path) -> Path:
    """imagePath relative to the JSON (inside SRC), its file name beside the JSON or in an
    image folder beside the JSON's folder (inside SRC's parent: `label/` + `data/`), an image
    with the JSON's stem, else the embedded imageData. A path leading elsewhere is never read."""
    rel = doc.get("imagePath")
    tried = []
    if isinstance(rel, str) and rel:
        rel_path = Path(rel.replace("\\", "/"))
        candidates = [(path.parent / rel_path, src), (path.parent / rel_path.name, src)]
        up = path.parent.parent
        if up.is_dir():
            subs = {q.name.lower(): q for q in sorted(up.iterdir()) if q.is_dir()}
            candidates += [(subs[n] / rel_path.name, src.parent) for n in IMAGE_FOLDERS if n in subs]
        for p, allowed in candidates:
            if p.is_file() and p.resolve().is_relative_to(allowed.resolve()):
                return p
            tried.append(str(p))
    for s in IMAGE_SUFFIXES:
        p = path.with_suffix(s)
        if p.is_file():
            return p
    data = doc.get("imageData")
    if isinstance(data, str) and data:
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise DatasetError(path, "imageData is not valid base64") from None
        out = scratch / f"{path.stem}.img"
        out.write_bytes(raw)
        try:
            with Image.open(out) as im:
                fmt = (im.format or "png").lower()
        except Exception:
            raise DatasetError(path, "imageData is not an image") from None
        named = out.with_suffix(".jpg" if fmt == "jpeg" else f".{fmt}")
        out.rename(named)
        return named
    raise DatasetError(path, f"no image: imagePath {rel!r} not beside it, no {path.stem}.* image, no imageData"
                             + (f" (tried {', '.join(tried)})" if tried else ""))


def shape_box(shape: dict[str, Any], cls: int, width: int, height: int) -> Box | None:
    xs = [float(p[0]) for p in shape["points"]]
    ys = [float(p[1]) for p in shape["points"]]
    x1, y1 = max(0.0, min(xs)), max(0.0, min(ys))
    x2, y2 = min(float(width), max(xs)), min(float(height), max(ys))
    return Box(cls, x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def import_labelme(src: str | Path, out: str | Path, *, split: str = "train", val_frac: float = 0.0,
                   seed: int = 0, empty_as: str = "normal", normals: str | Path | None = None,
                   report: Callable[[str], None] | None = None) -> Dataset:
    """Import a folder of LabelMe JSON files (see the module doc)."""
    src = Path(src)
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is not one of {list(SPLITS)}")
    if not 0.0 <= val_frac < 1.0:
        raise ConfigError(f"--val-frac {val_frac} must be in [0, 1)")
    if empty_as not in ("normal", "background"):
        raise ConfigError(f"--empty-as must be normal or background, got {empty_as!r}")
    if not src.is_dir():
        raise DatasetError(src, "folder does not exist")
    files = sorted(src.rglob("*.json"))
    if not files:
        raise DatasetError(src, "no LabelMe .json files")
    docs, not_labelme = [], []
    for p in files:
        doc = read_labelme(p)
        (docs if "shapes" in doc else not_labelme).append((p, doc))
    if not docs:
        raise DatasetError(src, f"no LabelMe .json files (none of {len(files)} .json file(s) has a 'shapes' list)")
    names = sorted({s["label"].strip() for _, d in docs for s in d.get("shapes", [])})
    if not names:
        raise DatasetError(src, "no shapes in any JSON file: no classes")
    annotated = sorted(str(p) for p, d in docs if d.get("shapes"))
    n_val = round(len(annotated) * val_frac)
    val_files = set(random.Random(seed).sample(annotated, n_val)) if n_val else set()
    provenance, dropped = {}, 0
    with tempfile.TemporaryDirectory() as scratch, \
            DatasetWriter(out, names, source="labelme", seed=seed if val_frac else None,
                          params={"split": split, "val_frac": val_frac, "empty_as": empty_as}) as writer:
        unique = {s: UniqueNames() for s in (*SPLITS, "normal")}
        for path, doc in track(docs, "importing LabelMe files"):
            img = _image_for(path, doc, Path(scratch), src)
            width, height = image_size(img)
            parent = path.parent.relative_to(src).as_posix()
            prefix = parent if parent != "." else "img"
            name = f"{path.stem}{img.suffix}"
            shapes = doc.get("shapes", [])
            if not shapes and empty_as == "normal":
                rel = writer.add_normal(unique["normal"].claim(name, prefix), src=img)
            else:
                boxes = [shape_box(s, names.index(s["label"].strip()), width, height) for s in shapes]
                dropped += sum(b is None for b in boxes)
                dest = "val" if str(path) in val_files else split
                rel = writer.add_image(dest, unique[dest].claim(name, prefix), src=img,
                                       boxes=[b for b in boxes if b is not None])
            provenance[rel] = {"json": path.relative_to(src).as_posix(), "embedded": img.parent == Path(scratch),
                               "polygons": [{"label": s["label"], "points": s["points"]}
                                            for s in shapes if s.get("shape_type", "polygon") == "polygon"]}
        n_extra = writer.add_normals_folder(normals) if normals is not None else 0
        embedded = sum(1 for v in provenance.values() if v["embedded"])
        writer.update_meta(provenance={"root": str(src), "files": provenance},
                           labelme={"shapes_outside_image": dropped, "images_embedded": embedded,
                                    "not_labelme": [p.relative_to(src).as_posix() for p, _ in not_labelme],
                                    "normals_folder": n_extra})
        ds = writer.commit()
    if report is not None:
        report(f"{len(docs)} LabelMe file(s): {len(docs) - embedded} image(s) found on disk, {embedded} from the "
               f"embedded imageData" + (f"; {n_extra} normal(s) from {normals}" if normals is not None else ""))
        if not_labelme:
            report(f"note: skipped {len(not_labelme)} .json file(s) without 'shapes' (not LabelMe): "
                   + ", ".join(p.name for p, _ in not_labelme[:5]))
    return ds
