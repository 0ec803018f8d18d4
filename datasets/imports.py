"""YOLO (ultralytics) and COCO datasets into the canonical layout.

    midg data import yolo path/to/dataset data/mine              # folder with data.yaml
    midg data import coco instances.json path/to/images data/mine --split train --val-frac 0.1

YOLO: `data.yaml` gives `names` (list or 0-based dict) and `train`/`val`/`test`, each a
folder, a .txt list of images or a list of those, relative to the yaml's folder or to
its `path:`. Nothing may lead outside that dataset folder. Labels are found by
ultralytics' rule: the last `/images/` of an image path becomes `/labels/`, the suffix
`.txt`; an image without a label file (or with an empty one) is a background image of its
split (`empty_as="background"`, the default: ultralytics trains on them) or a normal
(`"normal"`: the defect-free images the generator paints on).

COCO: categories sorted by id become classes 0..K-1; every `file_name` must stay inside
the image folder; every image's size must match its entry. An image without annotations
is a background image (default) or a normal (`empty_as="normal"`).

Both take `normals`: a folder of defect-free images copied into normals/.

Images are copied byte for byte; nested folders are flattened with unique stems.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any


from .coco import load_coco, safe_relative
from .errors import ConfigError, DatasetError
from .images import image_size, is_image_file
from .layout import SPLITS, Dataset, DatasetWriter
from .naming import UniqueNames, safe_part
from .progress import track
from .yolo import parse_names, read_label_file, read_text, read_yaml_mapping

# ---------------------------------------------------------------- YOLO


def find_data_yaml(src: str | Path) -> Path:
    """SRC itself when it is a yaml file, else its data.yaml (or its only *.yaml)."""
    src = Path(src)
    if src.is_file():
        return src
    if not src.is_dir():
        raise DatasetError(src, "does not exist")
    if (src / "data.yaml").is_file():
        return src / "data.yaml"
    found = sorted(p for p in src.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if len(found) != 1:
        raise DatasetError(src, f"expected a data.yaml (found {len(found)} yaml files)")
    return found[0]


def label_path_for(image: Path) -> Path:
    """ultralytics' img2label_paths: the last /images/ becomes /labels/, suffix .txt."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return Path(sb.join(str(image).rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt")


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _images_of_list(txt: Path, root: Path) -> list[Path]:
    """An ultralytics image list: one path per line, relative to the list's folder."""
    images = []
    for lineno, line in enumerate(read_text(txt).splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        p = Path(entry) if os.path.isabs(entry) else txt.parent / entry.removeprefix("./")
        if not _inside(p, root):
            raise DatasetError(txt, f"image {entry!r} leads outside the dataset folder {root}", line=lineno)
        if not p.is_file():
            raise DatasetError(txt, f"image {entry!r} does not exist", line=lineno)
        if not is_image_file(p):
            raise DatasetError(txt, f"{entry!r} is not an image file ({p.suffix or 'no suffix'})", line=lineno)
        images.append(p)
    return images


def _check_orphan_labels(image_dir: Path, images: list[Path]) -> None:
    """A label file in the matching labels folder whose image is missing is an error."""
    label_dir = label_path_for(image_dir / "x.jpg").parent
    if label_dir.resolve() == image_dir.resolve() or not label_dir.is_dir():
        return  # labels beside images: other .txt files (READMEs) may live there
    expected = {label_path_for(p).resolve() for p in images}
    for lbl in sorted(label_dir.rglob("*.txt")):
        if lbl.resolve() not in expected:
            raise DatasetError(lbl, f"label without image (no image with stem {lbl.stem!r} in {image_dir})")


def yolo_split_images(doc: dict[str, Any], lines: dict[str, int], yaml_path: Path, root: Path, split: str) -> list[tuple[Path, Path]]:
    """(image path, folder it is named relative to) for one split of a data.yaml."""
    entry = doc.get(split)
    if entry is None:
        return []
    entries = entry if isinstance(entry, list) else [entry]
    out = []
    for e in entries:
        if not isinstance(e, str) or not e:
            raise DatasetError(yaml_path, f"{split}: {e!r} is not a path", line=lines.get(split))
        p = Path(e) if os.path.isabs(e) else root / e
        if not _inside(p, root):
            raise DatasetError(yaml_path, f"{split}: {e!r} leads outside the dataset folder {root}", line=lines.get(split))
        if p.is_dir():
            images = sorted(q for q in p.rglob("*") if q.is_file() and is_image_file(q))
            for q in images:  # a link inside the folder may point anywhere
                if not _inside(q, root):
                    raise DatasetError(q, f"leads outside the dataset folder {root} (a link?)")
            _check_orphan_labels(p, images)
            out += [(q, p) for q in images]
        elif p.is_file() and p.suffix == ".txt":
            out += [(q, root) for q in _images_of_list(p, root)]
        elif p.exists():
            raise DatasetError(yaml_path, f"{split}: {e!r} is neither a folder nor a .txt image list", line=lines.get(split))
        else:
            raise DatasetError(yaml_path, f"{split}: {e!r} does not exist (looked for {p})", line=lines.get(split))
    return out


def resolve_yaml_root(entry: str, yaml_path: Path, line: int | None) -> Path:
    """A data.yaml's `path:` as ultralytics users write it: absolute, relative to the yaml's
    folder, relative to the working directory, or the yaml's own folder by name (data.yaml in
    `dataset/` saying `path: dataset`). The first that is a folder inside the yaml's folder
    wins (a yaml may not widen what an import reads); none: the error lists what was tried."""
    p = Path(entry).expanduser()
    here = yaml_path.parent
    # the yaml's folder before the working directory: `path: .` means the yaml's folder
    tried = [p] if p.is_absolute() else [here / p, Path.cwd() / p]
    if not p.is_absolute() and p.name == here.resolve().name:
        tried.append(here)
    found = [t for t in tried if t.is_dir()]
    for t in found:
        if _inside(t, here):
            return t
    if found:
        raise DatasetError(yaml_path, f"path: {entry!r} leads outside the folder of {yaml_path.name} "
                                      f"({here}); import that dataset folder itself", line=line)
    raise DatasetError(yaml_path, f"path: {entry!r} is not a folder (tried {', '.join(str(t) for t in tried)})",
                       line=line)


def check_empty_as(empty_as: str) -> None:
    if empty_as not in ("normal", "background"):
        raise ConfigError(f"--empty-as must be one of ['normal', 'background'], got {empty_as!r}")


def import_yolo(src: str | Path, out: str | Path, *, empty_as: str = "background",
                normals: str | Path | None = None) -> Dataset:
    """Import an ultralytics detection dataset (folder with data.yaml, or the yaml)."""
    check_empty_as(empty_as)
    yaml_path = find_data_yaml(src)
    doc, lines = read_yaml_mapping(yaml_path)
    if doc.get("names") is None and isinstance(doc.get("nc"), int) and doc["nc"] > 0:
        doc["names"] = [f"class_{i}" for i in range(doc["nc"])]  # ultralytics' names for an nc-only yaml
    names = parse_names(doc, yaml_path)
    root = yaml_path.parent
    if doc.get("path"):
        root = resolve_yaml_root(str(doc["path"]), yaml_path, lines.get("path"))
    if not doc.get("train"):
        raise DatasetError(yaml_path, "'train' is missing: it names the training images")
    jobs, seen = [], set()
    for split in SPLITS:
        for img, base in yolo_split_images(doc, lines, yaml_path, root, split):
            if (split, img.resolve()) not in seen:  # one image named twice (list + folder) is one image
                seen.add((split, img.resolve()))
                jobs.append((split, img, base))

    provenance, instance_masks = {}, {}
    with DatasetWriter(out, names, source="yolo", params={"data_yaml": str(yaml_path), "empty_as": empty_as}) as writer:
        unique = {split: UniqueNames() for split in (*SPLITS, "normal")}
        for split, img, base in track(jobs, "importing YOLO dataset"):
            width, height = image_size(img)
            lbl = label_path_for(img)
            if lbl.is_file() and not _inside(lbl, root):
                raise DatasetError(lbl, f"label leads outside the dataset folder {root} (a link?)")
            polygons: list = []
            boxes = read_label_file(lbl, len(names), width, height, polygons) if lbl.is_file() else []
            parent = img.parent.relative_to(base).as_posix() if img.parent != base else split
            if not boxes and empty_as == "normal":
                rel = writer.add_normal(unique["normal"].claim(img.name, parent if img.parent != base else split),
                                        src=img)
                provenance[rel] = _display(img, root)
                continue
            name = unique[split].claim(img.name, parent)
            rel = writer.add_image(split, name, src=img, boxes=boxes)
            if any(p is not None for p in polygons):
                instance_masks[rel] = _write_instance_mask(writer, split, name, polygons, width, height)
            provenance[rel] = _display(img, root)
        if normals is not None:
            writer.add_normals_folder(normals)
        writer.update_meta(provenance={"root": str(root), "files": provenance})
        if instance_masks:
            writer.update_meta(instance_masks=instance_masks)
        return writer.commit()


def _write_instance_mask(writer: DatasetWriter, split: str, name: str, polygons: list, width: int, height: int) -> str:
    """masks/{split}/{stem}.png: pixel value k+1 is the polygon of the image's k-th box
    (box-only lines of a mixed file leave no pixels); uint16 PNG when over 255 boxes."""
    import cv2
    import numpy as np

    from .images import encode_png

    mask = np.zeros((height, width), np.uint16 if len(polygons) > 255 else np.uint8)
    for k, poly in enumerate(polygons):
        if poly is not None:
            cv2.fillPoly(mask, [np.round(np.array(poly)).astype(np.int32)], k + 1)
    rel = f"masks/{split}/{Path(name).stem}.png"
    dest = writer.tmp / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(encode_png(mask) if mask.dtype == np.uint8 else cv2.imencode(".png", mask)[1].tobytes())
    return rel


def _display(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- COCO


def import_coco(annotations: str | Path, images: str | Path, out: str | Path, split: str = "train",
                val_frac: float = 0.0, seed: int = 0, *, empty_as: str = "background",
                normals: str | Path | None = None) -> Dataset:
    """Import one COCO instances file and its image folder as `split` (optionally
    splitting a seeded `val_frac` of the images off into val)."""
    annotations, images = Path(annotations), Path(images)
    check_empty_as(empty_as)
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is not one of {list(SPLITS)}")
    if not 0.0 <= val_frac < 1.0:
        raise ConfigError(f"--val-frac {val_frac} must be in [0, 1)")
    if val_frac > 0 and split != "train":
        raise ConfigError(f"--val-frac splits the training images; it cannot be used with --split {split}")
    if not images.is_dir():
        raise DatasetError(images, "image folder does not exist")
    names, coco_images = load_coco(annotations)
    if not names:
        raise DatasetError(annotations, "no categories")
    if len(set(names)) != len(names):
        raise DatasetError(annotations, f"category names repeat: {names}")

    file_names = sorted(im.file_name for im in coco_images)
    n_val = round(len(file_names) * val_frac)
    val_files = set(random.Random(seed).sample(file_names, n_val)) if n_val else set()

    provenance = {}
    with DatasetWriter(out, names, source="coco", seed=seed if val_frac else None,
                       params={"annotations": str(annotations), "split": split, "val_frac": val_frac,
                               "empty_as": empty_as}) as writer:
        unique = {s: UniqueNames() for s in (*SPLITS, "normal")}
        for im in track(sorted(coco_images, key=lambda im: im.file_name), "importing COCO dataset"):
            rel_name = safe_relative(im.file_name, annotations)
            path = images / rel_name
            if not _inside(path, images):
                raise DatasetError(annotations, f"file_name {im.file_name!r} leads outside the image folder (a link?)")
            if not path.is_file():
                raise DatasetError(annotations, f"image {im.file_name!r} (id {im.id}) is not in {images}")
            width, height = image_size(path)
            if (width, height) != (im.width, im.height):
                raise DatasetError(path, f"image is {width}x{height} but {annotations.name} says {im.width}x{im.height} (image id {im.id})")
            dest_split = "val" if im.file_name in val_files else split
            parent = Path(rel_name).parent.as_posix()
            if not im.boxes and empty_as == "normal":
                dest_split = "normal"
            name = unique[dest_split].claim(path.name, safe_part(parent) if parent != "." else dest_split)
            if dest_split == "normal":
                rel = writer.add_normal(name, src=path)
            else:
                rel = writer.add_image(dest_split, name, src=path, boxes=im.boxes)
            provenance[rel] = {"file_name": im.file_name, "image_id": im.id}
        if normals is not None:
            writer.add_normals_folder(normals)
        writer.update_meta(provenance={"annotations": str(annotations), "images": str(images), "files": provenance})
        return writer.commit()
