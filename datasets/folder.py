"""Image + mask folders into the canonical layout: boxes from connected components.

    midg data import masks IMAGES MASKS data/mine --normals NORMALS --class-map classes.yaml

Two mask layouts (a mask has the image's stem, any image suffix; PNG keeps values exact):
- by value:  MASKS/<stem>.png, pixel value = class (0 background). Binary masks
  (only 255, or only 1) are one class, `defect`; indexed masks 1..K give classes
  `class1`..`classK` unless a class map names them.
- by folder: MASKS/<class>/<stem>.png, any non-zero pixel belongs to that folder's class;
  an image may have masks in several class folders.
`--class-map` (YAML or JSON) maps a mask value or folder name to a class name; several
keys may share a name. Every connected component (8-connected, per class) of at least
`--min-area` pixels becomes one box (smaller ones are specks: dropped and counted).
Images without a mask are background images (`--empty-as background`, the default here)
or normals (`normal`); an image whose masks are empty (or only specks) is skipped and
listed (`--empty-mask skip`) or a normal (`normal`). Images are split train/val/test by
seeded fractions and copied byte for byte; `--normals` adds defect-free images.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from .boxes import Box
from .errors import ConfigError, DatasetError
from .images import image_size, is_image_file, read_mask, walk_files
from .layout import Dataset, DatasetWriter
from .naming import UniqueNames
from .progress import track
from .yolo import read_text

BINARY_CLASS = "defect"
# Mask components below this many pixels are specks, not defects: JPEG-saved masks, soft
# edges and stray clicks of annotation tools leave 1-3 px islands, while no detector here
# learns a defect under 2x2 px. Tiny real defects survive (a 2x2 pin-hole is 4 px).
DEFAULT_MIN_AREA = 4
EMPTY_AS = ("normal", "background")


def check_empty_options(empty_as: str, empty_mask: str, min_area: int) -> None:
    if empty_as not in EMPTY_AS:
        raise ConfigError(f"--empty-as must be one of {list(EMPTY_AS)}, got {empty_as!r}")
    if empty_mask not in ("skip", "normal"):
        raise ConfigError(f"--empty-mask must be one of ['skip', 'normal'], got {empty_mask!r}")
    if min_area < 1:
        raise ConfigError(f"--min-area {min_area} must be at least 1 pixel")


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
                 min_area: int = DEFAULT_MIN_AREA, empty_as: str = "background", empty_mask: str = "skip",
                 report: Callable[[str], None] | None = None) -> Dataset:
    """Import IMAGES with boxes from the connected components of MASKS (see the module doc)."""
    images, masks = Path(images), Path(masks)
    if not (0 <= split.val < 1 and 0 <= split.test < 1 and split.val + split.test < 1):
        raise ConfigError(f"split fractions val={split.val} test={split.test}: each in [0, 1), sum below 1")
    check_empty_options(empty_as, empty_mask, min_area)
    report = report or (lambda _msg: None)
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

    dropped, unlabelled, n_unmasked = 0, [], 0
    with DatasetWriter(out, names, source="masks", seed=seed,
                       params={"val": split.val, "test": split.test, "min_area": min_area, "empty_as": empty_as,
                               "empty_mask": empty_mask, "layout": "by_folder" if by_folder else "by_value"}) as writer:
        normal_names = UniqueNames()
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
            if stem not in per_image:  # no mask: the source calls it defect-free
                n_unmasked += 1
                if empty_as == "normal":
                    writer.add_normal(normal_names.claim(img.name, "normal"), src=img)
                    continue
            elif not boxes:  # masks, but empty or only specks: an unlabelled defect image
                unlabelled.append(img.name)
                if empty_mask == "skip":
                    continue
                writer.add_normal(normal_names.claim(img.name, "normal"), src=img)
                continue
            writer.add_image(split_of.get(stem, "train"), img.name, src=img, boxes=boxes)
        n_extra = writer.add_normals_folder(normals) if normals is not None else 0
        writer.update_meta(masks={"images": str(images), "masks": str(masks),
                                  "class_map": str(class_map) if class_map else None,
                                  "components_below_min_area": dropped, "images_without_mask": n_unmasked,
                                  "unlabelled_defect_images": unlabelled, "normals_folder": n_extra})
        ds = writer.commit()
    if unlabelled:
        report(f"note: {len(unlabelled)} image(s) whose masks are empty or only specks "
               f"({'skipped' if empty_mask == 'skip' else 'taken as normals'}, --empty-mask {empty_mask}; "
               f"listed in meta.json masks.unlabelled_defect_images)")
    if dropped:
        report(f"note: dropped {dropped} mask component(s) smaller than --min-area {min_area} px")
    return ds


# ---------------------------------------------------------------- masks beside their images

MASK_SUFFIXES = ("_mask", "_label", "_gt")  # NAME_mask.png beside NAME.jpg
ClassFrom = str  # "parent" | "grandparent" | "value" | "map"
CLASS_FROM = ("parent", "grandparent", "value", "map")
DEFAULT_MASK_THRESHOLD = 127  # a pixel above half of 0..255 is defect: anti-aliased edges stay binary
# The folder level that holds a class's images, never a class itself (CLASS/Imgs/NAME.jpg)
IMAGE_LEVEL_FOLDERS = frozenset({"imgs", "img", "images", "image", "jpegimages", "pics", "photos"})


def pair_masks_beside(src: Path) -> tuple[list[tuple[Path, Path | None, str]], dict[str, int]]:
    """(image, its mask or None, rule) for every image under `src` (skipped folders left
    out: .git, caches, model folders), and how often each rule matched. A mask is
    NAME_mask/_label/_gt.* beside NAME.*, or NAME.png beside a NAME of another (non-PNG) type."""
    files = [p for p in walk_files(src) if is_image_file(p)]
    inside = src.resolve()
    by_key: dict[tuple[Path, str], list[Path]] = {}
    for p in files:
        if not p.resolve().is_relative_to(inside):
            raise DatasetError(p, f"file leads outside {src} (a link?)")
        by_key.setdefault((p.parent, p.stem), []).append(p)
    masks: dict[Path, tuple[Path, str]] = {}  # image -> (mask, rule)
    taken: set[Path] = set()
    for (folder, stem), group in sorted(by_key.items()):
        for suffix in MASK_SUFFIXES:
            if stem.lower().endswith(suffix) and (folder, stem[: -len(suffix)]) in by_key:
                if len(group) > 1:
                    raise DatasetError(group[1], f"two masks share the stem {stem!r} (also {group[0].name})")
                owners = by_key[(folder, stem[: -len(suffix)])]
                owner = next((o for o in owners if o.suffix.lower() != ".png"), owners[0]) if len(owners) > 1 else owners[0]
                masks[owner] = (group[0], f"suffix {suffix}")
                taken.add(group[0])
                break
    for (folder, stem), group in sorted(by_key.items()):
        group = [p for p in group if p not in taken]
        if len(group) == 2 and not any(p in masks for p in group):
            pngs = [p for p in group if p.suffix.lower() == ".png"]
            if len(pngs) != 1:
                raise DatasetError(group[1], f"two image files share the stem {stem!r} (also {group[0].name}) and "
                                             "neither is a PNG mask: name masks NAME_mask.png")
            image = next(p for p in group if p is not pngs[0])
            masks[image] = (pngs[0], "same stem, .png")
            taken.add(pngs[0])
        elif len(group) > 2:
            raise DatasetError(group[0], f"{len(group)} image files share the stem {stem!r}: which is the mask?")
    rules: dict[str, int] = {}
    out = []
    for p in files:
        if p in taken:
            continue
        mask, rule = masks.get(p, (None, "no mask"))
        rules[rule] = rules.get(rule, 0) + 1
        out.append((p, mask, rule))
    return out, rules


def class_folder_of(image: Path, src: Path, class_from: str, cmap: dict[Any, str] | None) -> tuple[str, ...] | None:
    """The folder that decides the image's class, as path parts from SRC's own name down
    (SRC/crack/Imgs/a.jpg -> (SRC, crack) for parent and grandparent), or None when no
    folder fits (a map that knows none of its folders; no grandparent inside SRC).
    The image-folder level (Imgs, images, ...) is never the class folder."""
    parts = (src.name, *image.relative_to(src).parent.parts)  # SRC's own name counts: SRC/NAME.jpg is in SRC
    if class_from == "map":
        assert cmap is not None
        hits = [k for k in range(len(parts)) if parts[k] in cmap]  # the nearest ancestor the map knows
        return parts[: hits[-1] + 1] if hits else None
    if class_from == "grandparent":
        return parts[:-1] if len(parts) >= 2 else None
    while len(parts) > 1 and parts[-1].lower() in IMAGE_LEVEL_FOLDERS:  # parent and value: CLASS/Imgs -> CLASS
        parts = parts[:-1]
    return parts


def _class_name(folder: tuple[str, ...], class_from: str, cmap: dict[Any, str] | None) -> str:
    return cmap[folder[-1]] if class_from == "map" and cmap is not None else folder[-1]


def _listing(paths: list[str], n: int = 5) -> str:
    return ", ".join(paths[:n]) + (f" and {len(paths) - n} more" if len(paths) > n else "")


EmptyMask = str  # "skip" | "normal"
EMPTY_MASK = ("skip", "normal")


def import_masks_beside(src: str | Path, out: str | Path, *, class_from: ClassFrom = "parent",
                        class_map: str | Path | None = None, mask_threshold: int | None = None,
                        seed: int = 0, split: MaskSplit = MaskSplit(), min_area: int = DEFAULT_MIN_AREA,
                        empty_as: str = "normal", empty_mask: EmptyMask = "skip", normals: str | Path | None = None,
                        report: Callable[[str], None] | None = None) -> Dataset:
    """Images and their masks in the same folders under SRC (e.g. CLASS/Imgs/NAME.jpg beside
    NAME.png). Class folders come first: the image's parent (the image-folder level such as
    `Imgs` skipped) or grandparent folder, the nearest folder a class map names (`map`), or
    the parent's folder with classes from the mask values (`value`). Then:
    - images in no class folder (a README figure at SRC's root beside class folders, a
      folder the map does not name, a folder without any mask) are skipped and listed in
      one note;
    - a class folder whose masks are all empty holds defect-free images: no class; its
      images are normals (`empty_as="background"`: background images of the splits);
    - in a folder of defect images, an image whose mask is empty, left only specks below
      `min_area`, or is missing shows an unlabelled defect: skipped and listed in meta.json
      (`empty_mask="skip"`) or taken as a normal (`"normal"`).
    Masks are thresholded (`> mask_threshold`, default 127) except with `value`."""
    src = Path(src)
    report = report or (lambda _msg: None)
    if class_from not in CLASS_FROM:
        raise ConfigError(f"--class-from {class_from!r} is not one of {list(CLASS_FROM)}")
    if (class_from == "map") != (class_map is not None) and class_from != "value":
        raise ConfigError("--class-from map needs --class-map (a mapping folder name -> class), and only it uses one")
    check_empty_options(empty_as, empty_mask, min_area)
    threshold = DEFAULT_MASK_THRESHOLD if mask_threshold is None else mask_threshold
    if not 0 <= threshold < 255:
        raise ConfigError(f"--mask-threshold {threshold} must be in 0..254")
    if not (0 <= split.val < 1 and 0 <= split.test < 1 and split.val + split.test < 1):
        raise ConfigError(f"split fractions val={split.val} test={split.test}: each in [0, 1), sum below 1")
    if not src.is_dir():
        raise DatasetError(src, "folder does not exist")
    pairs, rules = pair_masks_beside(src)
    if not any(m is not None for _, m, _ in pairs):
        raise DatasetError(src, "no masks beside the images (NAME.png beside NAME.jpg, or NAME_mask/_label/_gt.*)")
    cmap = read_class_map(Path(class_map), by_folder=class_from != "value") if class_map is not None else None

    # 1. class folders first: every image's folder; SRC itself is one only when nothing deeper is
    folder_of = {img: class_folder_of(img, src, class_from, cmap) for img, _, _ in pairs}
    with_masks = {folder_of[img] for img, m, _ in pairs if m is not None and folder_of[img] is not None}
    if any(len(f) > 1 for f in with_masks):
        with_masks.discard((src.name,))
    strays = [img for img, _, _ in pairs if folder_of[img] not in with_masks]
    pairs = [p for p in pairs if folder_of[p[0]] in with_masks]

    # 2. masks read only for images in class folders (a stray figure's RGBA "mask" is never opened)
    binary: dict[Path, np.ndarray] = {}
    for img, m, _ in track(pairs, "reading masks"):
        if m is None:
            continue
        mask = read_mask(m)
        width, height = image_size(img)
        if mask.shape != (height, width):
            raise DatasetError(m, f"mask is {mask.shape[1]}x{mask.shape[0]} but image {img.name} is {width}x{height}")
        binary[img] = mask if class_from == "value" else (mask > threshold).astype(np.uint8)
    defect_folders = sorted({folder_of[img] for img, a in binary.items() if a.any()})
    free_folders = sorted(with_masks - set(defect_folders))
    if not defect_folders:
        raise DatasetError(src, "every mask is empty: no defects to import (are the masks inverted, or is "
                                f"--mask-threshold {threshold} too high?)")
    if class_from == "value":
        values = set().union(*({int(v) for v in np.unique(binary[img])} - {0} for img in binary))
        names, value_class = _value_classes(values, cmap, src)
    else:
        names = sorted({_class_name(f, class_from, cmap) for f in defect_folders})

    keys = {img: img.relative_to(src).as_posix() for img, _, _ in pairs}
    order = sorted(keys.values())
    random.Random(seed).shuffle(order)
    n_val, n_test = round(len(order) * split.val), round(len(order) * split.test)
    split_of = {k: "val" for k in order[:n_val]} | {k: "test" for k in order[n_val:n_val + n_test]}

    dropped, provenance, free_images = 0, {}, 0
    unlabelled: list[dict[str, str]] = []  # defect-folder images without a usable mask
    with DatasetWriter(out, names, source="masks", seed=seed,
                       params={"val": split.val, "test": split.test, "min_area": min_area, "layout": "beside",
                               "class_from": class_from, "mask_threshold": threshold, "empty_as": empty_as,
                               "empty_mask": empty_mask}) as writer:
        unique = {s: UniqueNames() for s in ("train", "val", "test", "normal")}
        for img, m, rule in track(pairs, "importing images beside their masks"):
            key, folder = keys[img], folder_of[img]
            parent = img.relative_to(src).parent.as_posix()
            prefix = parent if parent != "." else "img"
            record = {"image": key, "mask": m.relative_to(src).as_posix() if m else None, "rule": rule}
            boxes: list[Box] = []
            if img in binary and folder not in free_folders:
                if class_from == "value":
                    boxes, n_small = boxes_from_mask(binary[img], value_class, m, min_area)
                else:
                    cls = names.index(_class_name(folder, class_from, cmap))
                    boxes, n_small = boxes_from_mask(binary[img], {1: cls}, m, min_area)
                dropped += n_small
            if folder in free_folders:  # a defect-free folder
                free_images += 1
                as_normal = empty_as == "normal"
            elif not boxes:  # a defect image without a usable mask
                why = "no mask" if m is None else ("empty mask" if not binary[img].any() else
                                                   f"only components below --min-area {min_area}")
                unlabelled.append({"image": key, "why": why})
                if empty_mask == "skip":
                    continue
                as_normal = True
            else:
                as_normal = False
            if as_normal:
                rel = writer.add_normal(unique["normal"].claim(img.name, prefix), src=img)
            else:
                dest = split_of.get(key, "train")
                rel = writer.add_image(dest, unique[dest].claim(img.name, prefix), src=img, boxes=boxes)
            provenance[rel] = record
        n_extra = writer.add_normals_folder(normals) if normals is not None else 0
        stray_keys = [p.relative_to(src).as_posix() for p in strays]
        writer.update_meta(masks={"src": str(src), "class_from": class_from, "mask_threshold": threshold,
                                  "class_map": str(class_map) if class_map else None, "rules": rules,
                                  "class_folders": {"/".join(f[1:]) or ".": _class_name(f, class_from, cmap)
                                                    for f in defect_folders} if class_from != "value" else
                                                   ["/".join(f[1:]) or "." for f in defect_folders],
                                  "defect_free_folders": ["/".join(f[1:]) or "." for f in free_folders],
                                  "components_below_min_area": dropped, "unlabelled_defect_images": unlabelled,
                                  "skipped_outside_class_folders": stray_keys, "normals_folder": n_extra},
                           provenance={"root": str(src), "files": provenance})
        ds = writer.commit()
    report("masks paired by: " + ", ".join(f"{rule} ({n})" for rule, n in sorted(rules.items())))
    if class_from != "value":
        report("classes from folders: " + ", ".join(f"{'/'.join(f[1:]) or src.name} -> {_class_name(f, class_from, cmap)}"
                                                   for f in defect_folders))
    if free_folders:
        report(f"defect-free folder(s), all masks empty: {', '.join('/'.join(f[1:]) or src.name for f in free_folders)} "
               f"({free_images} image(s) -> {'normals' if empty_as == 'normal' else 'background images'}; no class)")
    if stray_keys:
        report(f"note: skipped {len(stray_keys)} file(s) in no class folder: {_listing(stray_keys)}")
    if unlabelled:
        report(f"note: {len(unlabelled)} defect image(s) without a usable mask "
               f"({'skipped' if empty_mask == 'skip' else 'taken as normals'}, --empty-mask {empty_mask}; "
               f"listed in meta.json masks.unlabelled_defect_images): {_listing([u['image'] for u in unlabelled])}")
    if dropped:
        report(f"note: dropped {dropped} mask component(s) smaller than --min-area {min_area} px")
    return ds
