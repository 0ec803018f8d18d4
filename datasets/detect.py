"""`midg data import auto SRC OUT`: where the dataset lies under SRC, which format, why, then that importer.

SRC and its sub-folders down to SEARCH_DEPTH levels are searched, skipping hidden folders
(.git, .venv, ...), caches, environments and model/weight/run folders
(`images.is_skipped_folder`). A folder that looks like a dataset is a candidate and is not
searched further; one that does not is entered. Exactly one candidate is imported, after
saying where it was found and why; none or several are refused, the several listed.

Each format is recognised by what its own importer needs (shallow looks: the folder's own
files, a few levels for masks and LabelMe files, the first bytes of a file). Folder names
are matched without regard to case (`Annotations`/`ANNOTATIONS`, `JPEGImages`/`IMAGES`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import ConfigError, DatasetError
from .images import is_image_file, is_skipped_folder, walk_files
from .layout import Dataset

SEARCH_DEPTH = 3  # repo/ultralytics/dataset/data.yaml is 2 levels down; deeper is another project's data
VOC_ANNOTATION_FOLDERS = ("annotations",)
IMAGE_FOLDERS = ("jpegimages", "images", "imgs", "img", "image")  # where datasets keep images, by habit
MIN_MASK_PAIRS = 2  # one image beside one .png is a README figure more often than a dataset


@dataclass(frozen=True)
class Candidate:
    format: str  # yolo | coco | voc | labelme | masks | deeppcb
    reason: str  # what was seen, for the user
    run: Callable[..., Dataset]  # run(OUT, normals=..., empty_as=...): import into OUT
    root: Path = field(default=Path("."))  # the folder (or file) the dataset was found at


def _only_normals_none(options: dict[str, Any]) -> dict[str, Any]:
    """DeepPCB brings its own normals (the templates) and has no unlabelled images."""
    if options:
        raise ConfigError(f"DeepPCB takes neither {' nor '.join('--' + k.replace('_', '-') for k in options)}: "
                          "its templates are the normals")
    return {}


def child_folder(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The sub-folder of `folder` whose name is one of `names` in any case (first name first)."""
    try:
        subs = {p.name.lower(): p for p in sorted(folder.iterdir()) if p.is_dir()}
    except OSError:
        return None
    return next((subs[n] for n in names if n in subs), None)


def _json_keys(path: Path) -> set[str]:
    try:
        if path.stat().st_size > 200_000_000:  # not read whole just to look
            return set()
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return set()
    return set(doc) if isinstance(doc, dict) else set()


def _dataset_yaml(path: Path) -> dict[str, Any] | None:
    """The mapping of an ultralytics dataset yaml (`train` and `names` or `nc`), else None."""
    try:
        if path.stat().st_size > 1_000_000:
            return None
        doc = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError, yaml.YAMLError, RecursionError):
        return None
    if isinstance(doc, dict) and doc.get("train") and ("names" in doc or "nc" in doc):
        return doc
    return None


def _detect_file(src: Path) -> list[Candidate]:
    from .imports import import_coco, import_yolo

    if src.suffix in (".yaml", ".yml"):
        return [Candidate("yolo", f"{src.name} is a yaml file", lambda out, **kw: import_yolo(src, out, **kw), src)]
    if src.suffix == ".json" and {"images", "annotations"} <= _json_keys(src):
        images = child_folder(src.parent, ("images",)) or src.parent
        return [Candidate("coco", f"{src.name} has 'images' and 'annotations' (images: {images})",
                          lambda out, **kw: import_coco(src, images, out, **kw), src)]
    return []


def _voc_xmls(folder: Path) -> list[Path]:
    """The .xml files of `folder` when its first ones are VOC annotations, else []."""
    xmls = sorted(folder.glob("*.xml"))
    if not xmls or not any(b"<annotation" in p.read_bytes()[:4096] for p in xmls[:20]):
        return []
    return xmls


def _voc_image_folder(ann_dir: Path) -> Path | None:
    """The image folder beside an annotation folder: `<prefix>Images` for `<prefix>Annotations`
    (NEU-DET's clone keeps `Validation_Annotations/` beside `Validation_Images/`), else the
    usual names (`JPEGImages`, `IMAGES`, ...) when the annotation folder has no prefix."""
    prefix = ann_dir.name.lower()[: -len("annotations")]
    if not prefix:
        return child_folder(ann_dir.parent, IMAGE_FOLDERS)
    return child_folder(ann_dir.parent, tuple(prefix + n for n in IMAGE_FOLDERS))


def _other_voc_folders(src: Path, ann_dir: Path) -> list[tuple[Path, int]]:
    """Sub-folders of `src` besides `ann_dir` named `*annotations` that hold VOC files, with
    their counts: a second set (a held-out `Validation_Annotations/`) that is not imported."""
    try:
        subs = sorted(p for p in src.iterdir() if p.is_dir() and p != ann_dir)
    except OSError:
        return []
    found = [(p, len(_voc_xmls(p))) for p in subs if p.name.lower().endswith("annotations")]
    return [(p, n) for p, n in found if n]


def _detect_voc(src: Path, report: Callable[[str], None] | None) -> Candidate | None:
    from .voc import import_voc

    ann_dir = child_folder(src, VOC_ANNOTATION_FOLDERS)
    xml_dir = ann_dir or src
    xmls = _voc_xmls(xml_dir)
    if not xmls:
        return None
    if ann_dir is not None:
        img_dir = child_folder(src, IMAGE_FOLDERS) or src
    elif src.name.lower().endswith("annotations"):  # SRC is the annotation folder itself: images in a sibling
        img_dir = _voc_image_folder(src) or src
    else:
        img_dir = src
    where = "the folder itself" if xml_dir == src else f"{xml_dir.name}/"
    others = _other_voc_folders(src, ann_dir) if ann_dir is not None else []
    # a second VOC set beside the first is said, not merged: which split it is, only its author knows
    rest = "".join(f"; not imported: {d.name}/ ({n} .xml, images: {_voc_image_folder(d) or 'not found'}), "
                   f"run `midg data import auto {d}` for it" for d, n in others)
    return Candidate("voc", f"{len(xmls)} VOC .xml file(s) in {where} (images: {img_dir}){rest}",
                     lambda out, **kw: import_voc(xml_dir, img_dir, out, report=report, **kw), src)


def detect_here(src: Path, report: Callable[[str], None] | None = None) -> list[Candidate]:
    """The formats `src` itself holds (its own files, and a few levels for masks and LabelMe)."""
    from .deeppcb import import_deeppcb
    from .folder import import_masks_beside, pair_masks_beside
    from .imports import import_coco, import_yolo
    from .labelme import import_labelme

    found: list[Candidate] = []
    pcb = child_folder(src, ("pcbdata",))
    if (src / "trainval.txt").is_file() or (pcb is not None and (pcb / "trainval.txt").is_file()):
        found.append(Candidate("deeppcb", "trainval.txt and test.txt (PCBData)", lambda out, **kw: import_deeppcb(src, out, **_only_normals_none(kw)), src))
    yamls = sorted(p for p in src.iterdir() if p.suffix.lower() in (".yaml", ".yml") and p.is_file())
    dataset_yamls = [p for p in yamls if _dataset_yaml(p) is not None]
    if dataset_yamls:
        y = next((p for p in dataset_yamls if p.name.lower() == "data.yaml"), dataset_yamls[0])
        others = f"; {len(dataset_yamls) - 1} other dataset yaml(s) ignored" if len(dataset_yamls) > 1 else ""
        found.append(Candidate("yolo", f"{y.name} names train images and classes{others}",
                               lambda out, **kw: import_yolo(y, out, **kw), src))
    files = walk_files(src, max_depth=SEARCH_DEPTH - 1)
    jsons = [p for p in files if p.suffix.lower() == ".json"]
    coco = [p for p in jsons if {"images", "annotations"} <= _json_keys(p)]
    if len(coco) == 1:
        ann = coco[0]
        images = next((d for d in (child_folder(ann.parent, ("images",)), child_folder(src, ("images",)), ann.parent, src)
                       if d is not None and any(is_image_file(q) for q in d.iterdir())), src)
        found.append(Candidate("coco", f"{ann.relative_to(src)} has 'images' and 'annotations' (images: {images})",
                               lambda out, **kw: import_coco(ann, images, out, **kw), src))
    labelme = [p for p in jsons if "shapes" in _json_keys(p)]
    if labelme:
        lm_root = Path(os.path.commonpath([p.parent for p in labelme]))
        where = "" if lm_root == src else f" under {lm_root.relative_to(src).as_posix()}/"
        found.append(Candidate("labelme", f"{len(labelme)} .json file(s) with 'shapes' (LabelMe){where}",
                               lambda out, **kw: import_labelme(lm_root, out, report=report, **kw), lm_root))
    voc = _detect_voc(src, report)
    if voc is not None:
        found.append(voc)
    if not any(c.format in ("yolo", "deeppcb", "coco", "voc") for c in found):
        try:
            pairs, rules = pair_masks_beside(src)
        except DatasetError:
            pairs, rules = [], {}
        n = sum(m is not None for _, m, _ in pairs)
        if n >= MIN_MASK_PAIRS:
            found.append(Candidate("masks", f"{n} mask(s) beside their images ("
                                   + ", ".join(f"{r}: {k}" for r, k in sorted(rules.items())) + ")",
                                   lambda out, **kw: import_masks_beside(src, out, report=report, **kw), src))
    return found


def detect_formats(src: str | Path, report: Callable[[str], None] | None = None,
                   max_depth: int = SEARCH_DEPTH) -> list[Candidate]:
    """Every dataset under SRC (SRC itself first, then its sub-folders breadth first, down to
    `max_depth` levels); a folder that is a dataset is not searched further."""
    src = Path(src)
    if not src.exists():
        raise DatasetError(src, "does not exist")
    if src.is_file():
        return _detect_file(src)
    found: list[Candidate] = []
    level = [src]
    for depth in range(max_depth + 1):
        deeper = []
        for folder in level:
            here = detect_here(folder, report)
            if here:
                found += here
            elif depth < max_depth:
                try:
                    deeper += sorted(p for p in folder.iterdir() if p.is_dir() and not is_skipped_folder(p))
                except OSError:
                    continue  # an unreadable folder holds no dataset we could import
        level = deeper
    return found


def _where(c: Candidate, src: Path) -> str:
    if c.root == src:
        return str(src)
    return f"{c.root} ({len(c.root.relative_to(src).parts)} level(s) below {src})"


def import_auto(src: str | Path, out: str | Path, report: Callable[[str], None] | None = None, *,
                normals: str | Path | None = None, empty_as: str | None = None) -> Dataset:
    """Import the one dataset found under SRC; `normals` and `empty_as` go to its importer
    (None: the importer's default)."""
    src = Path(src)
    found = detect_formats(src, report)
    if not found:
        raise DatasetError(src, f"no known dataset format here or in its sub-folders (down to {SEARCH_DEPTH} levels; "
                                "formats: yolo, coco, voc, labelme, masks, deeppcb); use `midg data import FORMAT ...`")
    if len(found) > 1:
        raise DatasetError(src, f"{len(found)} datasets found, import one: "
                           + "; ".join(f"{c.format} at {c.root} ({c.reason})" for c in found)
                           + ". Use `midg data import auto PATH` on one of them or `midg data import FORMAT ...`")
    (cand,) = found
    if report is not None:
        report(f"format: {cand.format} ({cand.reason})")
        report(f"found at: {_where(cand, src)}")
    options = {k: v for k, v in (("normals", normals), ("empty_as", empty_as)) if v is not None}
    return cand.run(Path(out), **options)
