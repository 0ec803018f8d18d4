"""`midg data import auto SRC OUT`: which format SRC is, why, then that importer.

Each format is recognised by what its own importer needs (shallow looks only: a few
levels of folders, the first bytes of a file). More than one match is refused with the
candidates listed; pass the format's own command instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import DatasetError
from .images import is_image_file
from .layout import Dataset


@dataclass(frozen=True)
class Candidate:
    format: str  # yolo | coco | voc | labelme | masks | deeppcb
    reason: str  # what was seen, for the user
    run: Callable[[Path], Dataset]  # import into OUT


def _json_keys(path: Path) -> set[str]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return set()
    return set(doc) if isinstance(doc, dict) else set()


def detect_formats(src: str | Path, report: Callable[[str], None] | None = None) -> list[Candidate]:
    from .deeppcb import import_deeppcb
    from .folder import import_masks_beside, pair_masks_beside
    from .imports import import_coco, import_yolo
    from .labelme import import_labelme
    from .voc import import_voc

    src = Path(src)
    if not src.exists():
        raise DatasetError(src, "does not exist")
    found: list[Candidate] = []
    if src.is_file():
        if src.suffix in (".yaml", ".yml"):
            found.append(Candidate("yolo", f"{src.name} is a yaml file", lambda out: import_yolo(src, out)))
        elif src.suffix == ".json" and {"images", "annotations"} <= _json_keys(src):
            images = src.parent / "images" if (src.parent / "images").is_dir() else src.parent
            found.append(Candidate("coco", f"{src.name} has 'images' and 'annotations' (images: {images})",
                                   lambda out: import_coco(src, images, out)))
        return found
    if (src / "trainval.txt").is_file() or (src / "PCBData" / "trainval.txt").is_file():
        found.append(Candidate("deeppcb", "trainval.txt and test.txt (PCBData)", lambda out: import_deeppcb(src, out)))
    yamls = [p for p in src.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()]
    if (src / "data.yaml").is_file() or len(yamls) == 1:
        y = src / "data.yaml" if (src / "data.yaml").is_file() else yamls[0]
        found.append(Candidate("yolo", f"{y.name} in the folder", lambda out: import_yolo(src, out)))
    jsons = sorted(p for p in src.rglob("*.json") if len(p.relative_to(src).parts) <= 3)
    coco = [p for p in jsons if {"images", "annotations"} <= _json_keys(p)]
    if len(coco) == 1:
        ann = coco[0]
        images = next((d for d in (ann.parent / "images", src / "images", ann.parent, src) if d.is_dir()
                       and any(is_image_file(q) for q in d.iterdir())), src)
        found.append(Candidate("coco", f"{ann.relative_to(src)} has 'images' and 'annotations' (images: {images})",
                               lambda out: import_coco(ann, images, out)))
    labelme = [p for p in jsons if "shapes" in _json_keys(p)]
    if labelme:
        found.append(Candidate("labelme", f"{len(labelme)} .json file(s) with 'shapes' (LabelMe)",
                               lambda out: import_labelme(src, out)))
    ann_dir = src / "Annotations"
    xml_dir = ann_dir if ann_dir.is_dir() else src
    xmls = list(xml_dir.glob("*.xml"))
    if xmls and any(b"<annotation" in p.read_bytes()[:4096] for p in xmls[:20]):
        img_dir = next((d for d in (src / "JPEGImages", src / "images", src) if d.is_dir()), src)
        found.append(Candidate("voc", f"{len(xmls)} VOC .xml file(s) in {xml_dir.name}/ (images: {img_dir.name}/)",
                               lambda out: import_voc(xml_dir, img_dir, out, report=report)))
    if not any(c.format in ("yolo", "deeppcb", "coco") for c in found):
        try:
            pairs, rules = pair_masks_beside(src)
        except DatasetError:
            pairs, rules = [], {}
        n = sum(m is not None for _, m, _ in pairs)
        if n:
            found.append(Candidate("masks", f"{n} mask(s) beside their images ("
                                   + ", ".join(f"{r}: {k}" for r, k in sorted(rules.items())) + ")",
                                   lambda out: import_masks_beside(src, out, report=report)))
    return found


def import_auto(src: str | Path, out: str | Path, report: Callable[[str], None] | None = None) -> Dataset:
    found = detect_formats(src, report)
    if not found:
        raise DatasetError(src, "no known dataset format here (yolo, coco, voc, labelme, masks, deeppcb); "
                                "use `midg data import FORMAT ...`")
    if len(found) > 1:
        raise DatasetError(src, "ambiguous: looks like " + "; ".join(f"{c.format} ({c.reason})" for c in found)
                           + ". Use `midg data import FORMAT ...`")
    (cand,) = found
    if report is not None:
        report(f"format: {cand.format} ({cand.reason})")
    return cand.run(Path(out))
