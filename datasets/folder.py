"""Image + mask folders into the canonical layout: boxes from connected components.

    midg data import masks IMAGES MASKS data/mine --normals NORMALS --class-map classes.yaml

Two mask layouts (a mask has the image's stem, any image suffix; PNG keeps values exact):
- by value:  MASKS/<stem>.png, pixel value = class (0 background). Binary masks
  (only 255, or only 1) are one class, `defect`; indexed masks 1..K give classes
  `class1`..`classK` unless a class map names them.
- by folder: MASKS/<class>/<stem>.png, any non-zero pixel belongs to that folder's class;
  an image may have masks in several class folders.
`--class-map` (YAML or JSON) maps a mask value or folder name to a class name; several
keys may share a name. Every connected component (8-connected, per class) becomes one
box. Images without a mask are background images. Images are split train/val/test by
seeded fractions and copied byte for byte; `--normals` adds defect-free images.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .boxes import Box
from .errors import ConfigError, DatasetError
from .images import image_size, is_image_file, read_mask
from .layout import Dataset, DatasetWriter
from .naming import UniqueNames
from .progress import track
from .yolo import read_text

BINARY_CLASS = "defect"


@dataclass(frozen=True)
class MaskSplit:
    val: float = 0.1  # fraction of images for val
    test: float = 0.1  # fraction of images for test; the rest is train


def _image_files(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(folder, f"{what} folder does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    stems: dict[str, Path] = {}
    inside = folder.resolve()
    for p in files:
        if not p.resolve().is_relative_to(inside):  # a link to a file elsewhere is not this folder's
            raise DatasetError(p, f"{what} file leads outside {folder} (a link?)")
        if p.stem in stems:
            raise DatasetError(p, f"two {what} files share the stem {p.stem!r} (also {stems[p.stem].name})")
        stems[p.stem] = p
    return files


def read_class_map(path: Path, by_folder: bool) -> dict[Any, str]:
    """{mask value (int) or folder name (str): class name} from a YAML/JSON mapping."""
    try:
        doc = yaml.safe_load(read_text(path))  # JSON is YAML too
    except (yaml.YAMLError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DatasetError(path, f"not valid YAML/JSON ({getattr(exc, 'problem', exc)})",
                           line=mark.line + 1 if mark else None) from None
    if not isinstance(doc, dict) or not doc:
        raise DatasetError(path, "expected a non-empty mapping {mask value or folder: class name}")
    out: dict[Any, str] = {}
    for key, name in doc.items():
        if not isinstance(name, str) or not name.strip():
            raise DatasetError(path, f"class name for {key!r} must be a non-empty string, got {name!r}")
        if by_folder:
            out[str(key)] = name
        else:
            try:
                value = int(key)  # JSON keys are strings: "1" means 1
            except (TypeError, ValueError):
                raise DatasetError(path, f"key {key!r} is not a mask value (masks are by value, not by folder)") from None
            if not 1 <= value <= 255:
                raise DatasetError(path, f"mask value {value} out of range 1..255")
            out[value] = name
    return out


def boxes_from_mask(mask: np.ndarray, value_to_class: dict[int, int], where: Path, min_area: int = 1) -> tuple[list[Box], int]:
    """One box per 8-connected component of each class value, and how many specks below
    `min_area` pixels were dropped (JPEG-saved masks make them)."""
    import cv2

    boxes, dropped = [], 0
    for value in np.unique(mask):
        value = int(value)
        if value == 0:
            continue
        if value not in value_to_class:
            raise DatasetError(where, f"mask value {value} has no class (known values: {sorted(value_to_class)})")
        _, _, stats, _ = cv2.connectedComponentsWithStats((mask == value).astype(np.uint8), connectivity=8)
        for x, y, w, h, area in stats[1:].tolist():  # row 0 is the background
            if area >= min_area:
                boxes.append(Box(value_to_class[value], float(x), float(y), float(x + w), float(y + h)))
            else:
                dropped += 1
    return sorted(boxes, key=lambda b: (b.cls, b.y1, b.x1, b.y2, b.x2)), dropped


def _value_classes(values: set[int], class_map: dict[Any, str] | None, masks: Path) -> tuple[list[str], dict[int, int]]:
    """Class names and {mask value: class index} for masks by value."""
    if class_map is not None:
        names = list(dict.fromkeys(class_map[v] for v in sorted(class_map)))
        return names, {v: names.index(n) for v, n in class_map.items()}
    if values in ({255}, {1}) or not values:
        return [BINARY_CLASS], {v: 0 for v in values}
    if 255 in values:
        raise DatasetError(masks, f"masks hold values {sorted(values)}: both 255 and class indices; give --class-map")
    k = max(values)
    return [f"class{v}" for v in range(1, k + 1)], {v: v - 1 for v in range(1, k + 1)}


def import_masks(images: str | Path, masks: str | Path, out: str | Path, normals: str | Path | None = None,
                 class_map: str | Path | None = None, seed: int = 0, split: MaskSplit = MaskSplit(),
                 min_area: int = 1) -> Dataset:
    """Import IMAGES with boxes from the connected components of MASKS (see the module doc)."""
    images, masks = Path(images), Path(masks)
    if not (0 <= split.val < 1 and 0 <= split.test < 1 and split.val + split.test < 1):
        raise ConfigError(f"split fractions val={split.val} test={split.test}: each in [0, 1), sum below 1")
    if min_area < 1:
        raise ConfigError(f"--min-area {min_area} must be at least 1 pixel")
    image_files = _image_files(images, "image")
    if not image_files:
        raise DatasetError(images, "no image files")
    by_stem = {p.stem: p for p in image_files}
    if not masks.is_dir():
        raise DatasetError(masks, "mask folder does not exist")
    class_dirs = sorted(p for p in masks.iterdir() if p.is_dir() and not p.name.startswith("."))
    flat = _image_files(masks, "mask")
    if class_dirs and flat:
        raise DatasetError(masks, "holds both mask files and class folders; use one layout")
    by_folder = bool(class_dirs)
    cmap = read_class_map(Path(class_map), by_folder) if class_map is not None else None

    # per image stem: its mask files, each with its class folder (None for masks by value)
    per_image: dict[str, list[tuple[Path, str | None]]] = {}
    mask_list = [(m, d.name) for d in class_dirs for m in _image_files(d, "mask")] if by_folder else [(m, None) for m in flat]
    for m, folder in mask_list:
        if m.stem not in by_stem:
            raise DatasetError(m, f"mask without image (no {m.stem}.* in {images})")
        per_image.setdefault(m.stem, []).append((m, folder))

    if by_folder:
        if cmap is not None:
            missing = [d.name for d in class_dirs if d.name not in cmap]
            if missing:
                raise DatasetError(class_map, f"no class for mask folder(s) {missing}; the map has {sorted(cmap)}")
            names = list(dict.fromkeys(cmap[d.name] for d in class_dirs))
            folder_class = {d.name: names.index(cmap[d.name]) for d in class_dirs}
        else:
            names = [d.name for d in class_dirs]
            folder_class = {d.name: i for i, d in enumerate(class_dirs)}
    else:
        values: set[int] = set()
        if cmap is None:  # a first pass over the masks to see which values occur
            for m, _ in track(mask_list, "reading mask values"):
                values |= {int(v) for v in np.unique(read_mask(m))} - {0}
        names, value_class = _value_classes(values, cmap, masks)

    stems = sorted(by_stem)
    order = stems[:]
    random.Random(seed).shuffle(order)
    n_val, n_test = round(len(order) * split.val), round(len(order) * split.test)
    split_of = {s: "val" for s in order[:n_val]} | {s: "test" for s in order[n_val:n_val + n_test]}

    dropped = 0
    with DatasetWriter(out, names, source="masks", seed=seed,
                       params={"val": split.val, "test": split.test, "min_area": min_area,
                               "layout": "by_folder" if by_folder else "by_value"}) as writer:
        for stem in track(stems, "importing image + mask folders"):
            img = by_stem[stem]
            width, height = image_size(img)
            boxes: list[Box] = []
            for m, folder in per_image.get(stem, []):
                mask = read_mask(m)
                if mask.shape != (height, width):
                    raise DatasetError(m, f"mask is {mask.shape[1]}x{mask.shape[0]} but image {img.name} is {width}x{height}")
                if by_folder:  # any non-zero pixel belongs to the folder's class
                    found, n_small = boxes_from_mask((mask > 0).astype(np.uint8), {1: folder_class[folder]}, m, min_area)
                else:
                    found, n_small = boxes_from_mask(mask, value_class, m, min_area)
                boxes += found
                dropped += n_small
            writer.add_image(split_of.get(stem, "train"), img.name, src=img, boxes=boxes)
        if normals is not None:
            unique = UniqueNames()
            for p in track(_image_files(Path(normals), "normal"), "copying normals"):
                writer.add_normal(unique.claim(p.name, "normal"), src=p)
        writer.update_meta(masks={"images": str(images), "masks": str(masks),
                                  "class_map": str(class_map) if class_map else None,
                                  "components_below_min_area": dropped})
        return writer.commit()
