"""YOLO label files: `cls cx cy w h` per line, normalised to [0, 1]; segmentation lines
`cls x1 y1 x2 y2 ...` (three or more points, ultralytics' `task: segment`) give the
polygon's bounding box, and the polygon itself to a caller that asks for it; and the
ultralytics data.yaml (its mapping with key lines, its `names`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from .boxes import Box
from .errors import DatasetError


def read_text(path: str | Path) -> str:
    """UTF-8 text or a DatasetError naming the file (a BOM is tolerated)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(path, f"cannot read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(path, f"not UTF-8 text (byte {exc.start})") from None


def parse_label_text(text: str, path: str | Path, n_classes: int, width: int, height: int,
                     polygons: list | None = None) -> list[Box]:
    """Boxes in pixels from a YOLO label file's text; every defect of a line is an error.
    With `polygons` (a list), it gets one entry per box: the polygon in pixels as
    [(x, y), ...] for a segmentation line, None for a box line (files may mix both)."""
    boxes = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue  # blank lines are harmless
        if len(fields) >= 7 and len(fields) % 2 == 1:
            boxes.append(_polygon_box(fields, path, lineno, n_classes, width, height, polygons))
            continue
        if len(fields) != 5:
            raise DatasetError(path, f"expected 5 fields 'cls cx cy w h' or a polygon 'cls x1 y1 x2 y2 x3 y3 ...', "
                                     f"got {len(fields)}", line=lineno)
        try:
            cls_f = float(fields[0])
            cx, cy, w, h = (float(f) for f in fields[1:])
        except ValueError:
            raise DatasetError(path, f"non-numeric field in {line.strip()!r}", line=lineno) from None
        if not all(math.isfinite(v) for v in (cls_f, cx, cy, w, h)):
            raise DatasetError(path, "NaN or inf in a label", line=lineno)
        if cls_f != int(cls_f) or not 0 <= int(cls_f) < n_classes:
            raise DatasetError(path, f"class index {fields[0]} out of range 0..{n_classes - 1}", line=lineno)
        if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)):
            raise DatasetError(path, "coordinates outside [0, 1]", line=lineno)
        if w <= 0 or h <= 0:
            raise DatasetError(path, "box has no area (w or h is 0)", line=lineno)
        x1, y1, x2, y2 = (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height
        eps = 1e-3 * max(width, height)
        if x1 < -eps or y1 < -eps or x2 > width + eps or y2 > height + eps:
            raise DatasetError(path, "box reaches outside the image", line=lineno)
        boxes.append(Box(int(cls_f), max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)))
        if polygons is not None:
            polygons.append(None)
    return boxes


def _polygon_box(fields: list[str], path, lineno: int, n_classes: int, width: int, height: int,
                 polygons: list | None) -> Box:
    """ultralytics' segments2boxes for one line: the polygon's extent, in pixels."""
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise DatasetError(path, "non-numeric field in a polygon", line=lineno) from None
    if not all(math.isfinite(v) for v in values):
        raise DatasetError(path, "NaN or inf in a label", line=lineno)
    cls_f = values[0]
    if cls_f != int(cls_f) or not 0 <= int(cls_f) < n_classes:
        raise DatasetError(path, f"class index {fields[0]} out of range 0..{n_classes - 1}", line=lineno)
    xs, ys = values[1::2], values[2::2]
    if not all(0.0 <= v <= 1.0 for v in xs + ys):
        raise DatasetError(path, "polygon coordinates outside [0, 1]", line=lineno)
    x1, x2, y1, y2 = min(xs) * width, max(xs) * width, min(ys) * height, max(ys) * height
    if x2 <= x1 or y2 <= y1:
        raise DatasetError(path, "polygon has no area (all points on one line)", line=lineno)
    if polygons is not None:
        polygons.append([(x * width, y * height) for x, y in zip(xs, ys)])
    return Box(int(cls_f), x1, y1, x2, y2)


def read_label_file(path: str | Path, n_classes: int, width: int, height: int,
                    polygons: list | None = None) -> list[Box]:
    return parse_label_text(read_text(path), path, n_classes, width, height, polygons)


def format_label_lines(boxes: list[Box], width: int, height: int) -> str:
    lines = []
    for b in boxes:
        cx = (b.x1 + b.x2) / 2 / width
        cy = (b.y1 + b.y2) / 2 / height
        w = (b.x2 - b.x1) / width
        h = (b.y2 - b.y1) / height
        lines.append(f"{b.cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)


# ---------------------------------------------------------------- data.yaml


def read_yaml_mapping(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """A dataset yaml's mapping and the line of each top-level key (for error messages)."""
    text = read_text(path)
    try:
        doc = yaml.safe_load(text)
        node = yaml.compose(text)
    except (yaml.YAMLError, RecursionError) as exc:  # (nesting beyond Python's stack: a hostile file)
        mark = getattr(exc, "problem_mark", None)
        raise DatasetError(path, f"not valid YAML ({getattr(exc, 'problem', exc)})",
                           line=mark.line + 1 if mark else None) from None
    if not isinstance(doc, dict):
        raise DatasetError(path, "expected a mapping with train/val/names keys")
    lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value} if isinstance(node, yaml.MappingNode) else {}
    return doc, lines


def parse_names(doc: dict[str, Any], path: Path) -> list[str]:
    """ultralytics' `names`: a list, or a dict {0: name, ...} with keys 0..K-1."""
    names = doc.get("names")
    if isinstance(names, dict):
        try:  # ultralytics accepts quoted keys ("0": a), as JSON-written yaml files have
            names = {int(k) if isinstance(k, str) else k: v for k, v in names.items()}
        except ValueError:
            raise DatasetError(path, f"names keys must be integers 0..K-1, got {sorted(map(str, names))}") from None
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in names):
            raise DatasetError(path, f"names keys must be integers 0..K-1, got {list(names)}")
        keys = sorted(names)
        if keys != list(range(len(keys))):
            raise DatasetError(path, f"names keys must be 0..{len(keys) - 1}, got {keys}")
        names = [names[k] for k in keys]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise DatasetError(path, "'names' must be a non-empty list (or 0-based dict) of class names")
    if len(set(names)) != len(names):
        raise DatasetError(path, f"class names repeat: {names}")
    nc = doc.get("nc")
    if nc is not None and nc != len(names):
        raise DatasetError(path, f"nc is {nc} but {len(names)} names are given")
    return names
