"""DeepPCB into the canonical layout.

    midg data import deeppcb ../shared/datasets/DeepPCB data/deeppcb --seed 0

Source layout (github.com/tangsanli5201/DeepPCB, folder `PCBData`):
`trainval.txt` (1000 pairs) and `test.txt` (500 pairs) list `groupG/G/NNN.jpg
groupG/G_not/NNN.txt`. The listed image is not on disk as such: `NNN_test.jpg` (the
defect image) and `NNN_temp.jpg` (its aligned defect-free template) lie beside it.
Annotation lines are `x1 y1 x2 y2 type` (spaces here, commas in the upstream README),
type 1..6 = open, short, mousebite, spur, copper, pin-hole (YOLO classes 0..5).

Result: train 900 / val 100 (a seeded split of trainval) and test 500; every box kept;
JPEG bytes copied as they are. The trainval templates become `normals/`; the test
templates go to `templates/test/` so that no test pixel can reach training, and
meta.json `pairs` records the template of every image.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from .boxes import Box
from .coco import safe_relative
from .errors import DatasetError
from .images import image_size
from .layout import DEFECT_CLASSES, Dataset, DatasetWriter
from .progress import track
from .yolo import read_text

DEEPPCB_COMMIT = "08e98c4db5922613fb97176eb3d6497d48260cb1"  # the upstream commit we import
VAL_FRACTION = 0.1  # of trainval: 1000 pairs -> 900 train / 100 val
_FIELD_SEP = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class DeepPCBPair:
    stem: str  # e.g. "00041000": unique across the dataset
    test_image: Path  # NNN_test.jpg: the image with defects
    template: Path  # NNN_temp.jpg: the aligned defect-free image
    annotation: Path  # NNN.txt


def find_pcbdata(src: str | Path) -> Path:
    """The folder holding trainval.txt/test.txt: SRC itself or SRC/PCBData."""
    src = Path(src)
    for cand in (src, src / "PCBData"):
        if (cand / "trainval.txt").is_file() and (cand / "test.txt").is_file():
            return cand
    raise DatasetError(src, "not a DeepPCB folder: expected PCBData/trainval.txt and PCBData/test.txt")


def read_pair_list(list_path: Path) -> list[DeepPCBPair]:
    """Parse trainval.txt / test.txt: `groupG/G/NNN.jpg groupG/G_not/NNN.txt` per line."""
    root = list_path.parent
    pairs = []
    for lineno, line in enumerate(read_text(list_path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DatasetError(list_path, f"expected 2 fields 'IMAGE.jpg ANNOTATION.txt', got {len(fields)}", line=lineno)
        img_rel = safe_relative(fields[0], f"{list_path}:{lineno}")
        ann_rel = safe_relative(fields[1], f"{list_path}:{lineno}")
        img = root / img_rel
        stem = img.stem
        pairs.append(DeepPCBPair(
            stem=stem,
            test_image=img.with_name(f"{stem}_test{img.suffix}"),
            template=img.with_name(f"{stem}_temp{img.suffix}"),
            annotation=root / ann_rel,
        ))
    return pairs


def parse_annotation(path: Path, width: int, height: int) -> list[Box]:
    """`x1 y1 x2 y2 type` lines (space or comma separated) -> boxes of classes 0..5."""
    boxes = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        fields = [f for f in _FIELD_SEP.split(line.strip()) if f]
        if not fields:
            continue
        if len(fields) != 5:
            raise DatasetError(path, f"expected 5 fields 'x1 y1 x2 y2 type', got {len(fields)}", line=lineno)
        try:
            x1, y1, x2, y2, kind = (float(f) for f in fields)
        except ValueError:
            raise DatasetError(path, f"non-numeric field in {line.strip()!r}", line=lineno) from None
        if not all(abs(v) < float("inf") for v in (x1, y1, x2, y2, kind)):
            raise DatasetError(path, "NaN or inf in an annotation", line=lineno)
        if kind != int(kind) or not 1 <= int(kind) <= len(DEFECT_CLASSES):
            raise DatasetError(path, f"defect type {fields[4]} out of range 1..{len(DEFECT_CLASSES)}", line=lineno)
        if x2 <= x1 or y2 <= y1:
            raise DatasetError(path, f"box {fields[:4]} has no area", line=lineno)
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise DatasetError(path, f"box {fields[:4]} reaches outside the {width}x{height} image", line=lineno)
        boxes.append(Box(int(kind) - 1, x1, y1, x2, y2))
    return boxes


def split_trainval(stems: list[str], seed: int, val_fraction: float = VAL_FRACTION) -> set[str]:
    """The stems that go to val: a seeded choice that does not depend on list order."""
    ordered = sorted(stems)
    n_val = round(len(ordered) * val_fraction)
    return set(random.Random(seed).sample(ordered, n_val))


def import_deeppcb(src: str | Path, out: str | Path, seed: int = 0, origin: str | None = None) -> Dataset:
    """Import DeepPCB from `src` (the DeepPCB folder or its PCBData) into `out`.

    `origin` is what meta.json records as the source (default: `src`; the downloader
    gives the URL rather than its temporary folder)."""
    pcb = find_pcbdata(src)
    trainval = read_pair_list(pcb / "trainval.txt")
    test = read_pair_list(pcb / "test.txt")
    seen: dict[str, Path] = {}
    for p in trainval + test:
        if p.stem in seen:
            raise DatasetError(p.annotation, f"image {p.stem} is listed twice (also {seen[p.stem]})")
        seen[p.stem] = p.annotation
    val_stems = split_trainval([p.stem for p in trainval], seed)
    jobs = [("val" if p.stem in val_stems else "train", p) for p in trainval] + [("test", p) for p in test]

    inside = pcb.resolve()
    with DatasetWriter(out, list(DEFECT_CLASSES), source="deeppcb", seed=seed,
                       params={"val_fraction": VAL_FRACTION}) as writer:
        for split, p in track(jobs, "importing DeepPCB"):
            for f in (p.test_image, p.template, p.annotation):
                if f.exists() and not f.resolve().is_relative_to(inside):
                    raise DatasetError(f, f"leads outside the DeepPCB folder {pcb} (a link?)")
            width, height = image_size(p.test_image)
            t_size = image_size(p.template)
            if t_size != (width, height):
                raise DatasetError(p.template, f"template is {t_size[0]}x{t_size[1]} but {p.test_image.name} is {width}x{height}")
            if not p.annotation.is_file():
                raise DatasetError(p.annotation, "annotation file does not exist")
            boxes = parse_annotation(p.annotation, width, height)
            template_name = f"{p.stem}_temp{p.template.suffix.lower()}"
            if split == "test":  # paired, but kept out of normals: no test pixel reaches training
                template = writer.add_file(f"templates/test/{template_name}", src=p.template)
            else:
                template = writer.add_normal(template_name, src=p.template)
            writer.add_image(split, f"{p.stem}{p.test_image.suffix.lower()}", src=p.test_image, boxes=boxes, template=template)
        writer.update_meta(deeppcb={
            "upstream": "github.com/tangsanli5201/DeepPCB",
            "commit": DEEPPCB_COMMIT,
            "origin": origin or str(src),
            "type_to_class": {str(i + 1): name for i, name in enumerate(DEFECT_CLASSES)},
            "val_images": sorted(val_stems),
            "test_templates": "templates/test (not normals: kept out of training)",
        })
        dataset = writer.commit()
    return dataset
