"""Pascal VOC XML annotations into the canonical layout.

    midg data import voc Annotations/ JPEGImages/ data/mine --val-frac 0.1 --empty-as normal

One XML per image. The image is `<filename>` in the image folder, with or without its
extension; when that is missing, the XML's own stem with any image extension. The image
file is the truth for the size: a `<size>` that disagrees is reported (once, with a
count), not trusted. VOC's `<bndbox>` is 1-based and inclusive, so pixel columns
xmin..xmax become x1 = xmin - 1, x2 = xmax (0-based, exclusive). A box reaching past the
border is clipped to the image; one left without area is dropped; both are counted.
`difficult` / `truncated` of every object stay in meta.json (provenance.files).
An XML without objects is a defect-free image: a normal (`empty_as="normal"`) or a
background image of its split (`"background"`). `normals` adds a folder of defect-free images.

Classes: the sorted names found in the files, or the given `classes` list (a name outside
it is an error naming the file). The XML parser refuses DTDs and entities (no entity
expansion bombs, no external files); a malformed file is an error naming file and line.
"""

from __future__ import annotations

import math
import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from .boxes import Box
from .errors import ConfigError, DatasetError
from .images import IMAGE_SUFFIXES, image_size
from .layout import SPLITS, Dataset, DatasetWriter
from .naming import UniqueNames
from .progress import track

EmptyAs = Literal["normal", "background"]


@dataclass(frozen=True)
class VocObject:
    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: int
    truncated: int


@dataclass
class VocFile:
    xml: Path
    filename: str
    size: tuple[int, int] | None  # (width, height) as the XML says, or None
    objects: list[VocObject] = field(default_factory=list)


def parse_xml_safely(path: Path) -> ET.Element:
    """The root element; a DTD or entity declaration is refused, a syntax error names the line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(path, f"cannot read ({exc.strerror})") from None
    for marker in (b"<!DOCTYPE", b"<!ENTITY"):
        at = data.find(marker)
        if at >= 0:
            raise DatasetError(path, f"{marker.decode()} is refused (DTDs and entities are not read)",
                               line=data.count(b"\n", 0, at) + 1)
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise DatasetError(path, f"malformed XML ({str(exc).split(':')[0]})", line=line) from None


def _number(obj: ET.Element, tag: str, xml: Path, k: int) -> float:
    text = obj.findtext(f"bndbox/{tag}")
    try:
        value = float(text.strip()) if text is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DatasetError(xml, f"object {k}: <bndbox><{tag}> is {text!r}, not a number")
    return value


def _flag(obj: ET.Element, tag: str, xml: Path, k: int) -> int:
    text = (obj.findtext(tag) or "0").strip()
    if text not in ("0", "1"):
        raise DatasetError(xml, f"object {k}: <{tag}> is {text!r}, expected 0 or 1")
    return int(text)


def read_voc_file(xml: Path) -> VocFile:
    root = parse_xml_safely(xml)
    if root.tag != "annotation":
        raise DatasetError(xml, f"root element is <{root.tag}>, expected <annotation>")
    filename = (root.findtext("filename") or "").strip()
    size = None
    w, h = root.findtext("size/width"), root.findtext("size/height")
    if w is not None and h is not None:
        try:
            size = (int(float(w)), int(float(h)))
        except ValueError:
            size = None  # the image decides the size anyway
    vf = VocFile(xml, filename, size)
    for k, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DatasetError(xml, f"object {k}: <name> is missing or empty")
        if obj.find("bndbox") is None:
            raise DatasetError(xml, f"object {k} ({name}): <bndbox> is missing")
        vals = [_number(obj, t, xml, k) for t in ("xmin", "ymin", "xmax", "ymax")]
        vf.objects.append(VocObject(name, *vals, difficult=_flag(obj, "difficult", xml, k),
                                    truncated=_flag(obj, "truncated", xml, k)))
    return vf


def find_voc_image(vf: VocFile, images: Path) -> Path:
    """`<filename>` as given, with each image extension when it has none, then the XML's stem."""
    tried = []
    candidates = []
    if vf.filename:
        fn = Path(vf.filename)
        if fn.is_absolute() or ".." in fn.parts:
            raise DatasetError(vf.xml, f"<filename> {vf.filename!r} leads outside the image folder")
        candidates.append(images / fn)
        if fn.suffix.lower() not in IMAGE_SUFFIXES:
            candidates += [images / f"{vf.filename}{s}" for s in IMAGE_SUFFIXES]
    candidates += [images / f"{vf.xml.stem}{s}" for s in IMAGE_SUFFIXES]
    for c in candidates:
        for variant in (c, c.with_suffix(c.suffix.upper())):
            if variant.is_file():
                if not variant.resolve().is_relative_to(images.resolve()):
                    raise DatasetError(vf.xml, f"image {variant} leads outside the image folder (a link?)")
                return variant
            tried.append(variant.name)
    raise DatasetError(vf.xml, f"no image for <filename> {vf.filename!r} in {images} "
                               f"(tried {', '.join(dict.fromkeys(tried))})")


def voc_boxes(vf: VocFile, width: int, height: int, class_of: dict[str, int]) -> tuple[list[Box], int, int]:
    """Boxes in 0-based exclusive pixels, clipped to the image; (boxes, clipped, dropped)."""
    boxes, clipped, dropped = [], 0, 0
    for obj in vf.objects:
        x1, y1, x2, y2 = obj.xmin - 1, obj.ymin - 1, obj.xmax, obj.ymax
        c = (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
        if c != (x1, y1, x2, y2):
            clipped += 1
        if c[2] <= c[0] or c[3] <= c[1]:
            dropped += 1
            continue
        boxes.append(Box(class_of[obj.name], *c))
    return boxes, clipped, dropped


def import_voc(annotations: str | Path, images: str | Path, out: str | Path, *, split: str = "train",
               val_frac: float = 0.0, seed: int = 0, classes: list[str] | None = None,
               empty_as: EmptyAs = "normal", normals: str | Path | None = None,
               report: Callable[[str], None] | None = None) -> Dataset:
    """Import a folder of VOC XML files and their image folder as `split` (optionally
    moving a seeded `val_frac` of the annotated images into val)."""
    annotations, images = Path(annotations), Path(images)
    report = report or (lambda _msg: None)
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is not one of {list(SPLITS)}")
    if not 0.0 <= val_frac < 1.0:
        raise ConfigError(f"--val-frac {val_frac} must be in [0, 1)")
    if empty_as not in ("normal", "background"):
        raise ConfigError(f"--empty-as must be normal or background, got {empty_as!r}")
    if not annotations.is_dir():
        raise DatasetError(annotations, "annotation folder does not exist")
    if not images.is_dir():
        raise DatasetError(images, "image folder does not exist")
    xmls = sorted(annotations.rglob("*.xml"))
    if not xmls:
        raise DatasetError(annotations, "no .xml files")
    files = [read_voc_file(x) for x in xmls]
    found = sorted({o.name for vf in files for o in vf.objects})
    if classes is not None:
        names = [c.strip() for c in classes if c.strip()]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"--classes must be distinct non-empty names, got {classes}")
        for vf in files:
            for o in vf.objects:
                if o.name not in names:
                    raise DatasetError(vf.xml, f"class {o.name!r} is not in --classes {names}")
    else:
        names = found
    if not names:
        raise DatasetError(annotations, "no objects in any XML file: no classes (give --classes)")
    class_of = {n: i for i, n in enumerate(names)}

    annotated = sorted(str(vf.xml) for vf in files if vf.objects)
    n_val = round(len(annotated) * val_frac)
    val_files = set(random.Random(seed).sample(annotated, n_val)) if n_val else set()
    mismatched, clipped, dropped, provenance = [], 0, 0, {}
    with DatasetWriter(out, names, source="voc", seed=seed if val_frac else None,
                       params={"annotations": str(annotations), "split": split, "val_frac": val_frac,
                               "empty_as": empty_as}) as writer:
        unique = {s: UniqueNames() for s in SPLITS}
        normal_names = UniqueNames()
        for vf in track(files, "importing VOC dataset"):
            img = find_voc_image(vf, images)
            width, height = image_size(img)
            if vf.size is not None and vf.size != (width, height):
                mismatched.append(vf.xml.name)
            parent = img.parent.relative_to(images).as_posix()
            if not vf.objects and empty_as == "normal":
                rel = writer.add_normal(normal_names.claim(img.name, "normals" if parent == "." else parent), src=img)
            else:
                boxes, c, d = voc_boxes(vf, width, height, class_of)
                clipped, dropped = clipped + c, dropped + d
                dest = "val" if str(vf.xml) in val_files else split
                name = unique[dest].claim(img.name, dest if parent == "." else parent)
                rel = writer.add_image(dest, name, src=img, boxes=boxes)
            provenance[rel] = {"xml": vf.xml.relative_to(annotations).as_posix(), "image": img.name,
                               "objects": [{"name": o.name, "difficult": o.difficult, "truncated": o.truncated}
                                           for o in vf.objects]}
        if normals is not None:
            writer.add_normals_folder(normals)
        writer.update_meta(provenance={"annotations": str(annotations), "images": str(images), "files": provenance},
                           voc={"size_mismatch": mismatched, "clipped_boxes": clipped, "dropped_boxes": dropped})
        ds = writer.commit()
    if mismatched:
        report(f"note: <size> disagrees with the image in {len(mismatched)} file(s) (first: {mismatched[0]}); "
               "the image's size was used")
    if clipped:
        report(f"note: {clipped} box(es) reached past the image border and were clipped ({dropped} dropped: no area left)")
    return ds
