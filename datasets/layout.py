"""The canonical dataset folder: the one reader and the one writer every stage uses.

```
DATASET/
  data.yaml                 ultralytics dataset file (train, val, test, nc, names; no `path:`)
  images/{train,val,test}/  image files
  labels/{train,val,test}/  YOLO txt: cls cx cy w h (normalised), one file per image
  annotations/{split}.json  COCO instances, same boxes; category_id = YOLO class + 1
  normals/                  defect-free images (templates), when the source has them
  meta.json                 source, tool version, seed, params, counts, pairs, extras
```
Writes happen in a temporary folder beside the target, renamed into place on success.
"""

from __future__ import annotations

import platform
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml

from .atomic import dumps_json, replace_dir, temp_dir_beside
from .boxes import Box
from .coco import build_coco, load_coco
from .errors import DatasetError
from .images import encode_png, image_size, is_image_file
from .locking import OutputLock, recover_leftovers
from .naming import UniqueNames
from .yolo import format_label_lines, parse_names, read_label_file, read_text, read_yaml_mapping

SPLITS = ("train", "val", "test")
DEFECT_CLASSES = ("open", "short", "mousebite", "spur", "copper", "pin-hole")  # DeepPCB's order


def tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("midg")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


@dataclass(frozen=True)
class ImageEntry:
    split: str
    file: str  # relative to the dataset root, e.g. "images/train/00041000.jpg"
    width: int
    height: int
    boxes: tuple[Box, ...]
    image_id: int  # COCO image id in annotations/{split}.json
    template: str | None = None  # relative path of the aligned defect-free image, if any


@dataclass
class Dataset:
    root: Path
    names: list[str]
    splits: dict[str, list[ImageEntry]]
    normals: list[str]  # relative paths, e.g. "normals/00041000_temp.jpg"
    meta: dict[str, Any]

    def path(self, rel: str) -> Path:
        return self.root / rel

    def images(self, split: str) -> list[ImageEntry]:
        return self.splits.get(split, [])

    def normal_paths(self) -> list[Path]:
        return [self.root / n for n in self.normals]

    def background_paths(self) -> list[Path]:
        """The images without boxes in every split (an importer's `--empty-as background`):
        defect-free images of the source, usable as normals where the dataset has none."""
        return [self.root / e.file for split in SPLITS for e in self.images(split) if not e.boxes]

    def counts(self) -> dict[str, Any]:
        return count_boxes(self.names, self.splits, len(self.normals))


def count_boxes(names: list[str], splits: dict[str, list[ImageEntry]], n_normals: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for split in SPLITS:
        entries = splits.get(split, [])
        per_class = Counter(names[b.cls] for e in entries for b in e.boxes)
        out[split] = {
            "images": len(entries),
            "background_images": sum(1 for e in entries if not e.boxes),
            "boxes": sum(per_class.values()),
            "per_class": {n: per_class.get(n, 0) for n in names},
        }
    out["normals"] = n_normals
    return out


# ---------------------------------------------------------------- reading


def _read_meta(path: Path) -> dict[str, Any]:
    import json

    try:
        meta = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
    except RecursionError:
        raise DatasetError(path, "not valid meta.json: nested too deeply") from None
    if not isinstance(meta, dict):
        raise DatasetError(path, "top level is not a JSON object")
    return meta


def _inside(root: Path, rel: str, where: Path) -> Path:
    """Resolve `rel` under `root`, refusing anything (`..`, symlinks) that leaves it."""
    p = (root / rel).resolve()
    if not p.is_relative_to(root.resolve()):
        raise DatasetError(where, f"path {rel!r} leads outside the dataset folder")
    return p


def _check_meta_paths(meta: dict[str, Any], meta_path: Path) -> None:
    """File names meta.json hands to other stages (`defects[].image`: the report and the
    generator metrics open them) stay inside the dataset: checked by their text, cheaply."""
    defects = meta.get("defects")
    if not isinstance(defects, list):
        return
    for i, d in enumerate(defects):
        image = d.get("image") if isinstance(d, dict) else None
        if isinstance(image, str):
            p = PurePosixPath(image)
            if p.is_absolute() or ".." in p.parts or "\\" in image or "\x00" in image:
                raise DatasetError(meta_path, f"defects[{i}].image {image!r} leads outside the dataset folder")


def load_dataset(root: str | Path, check_images: bool = False) -> Dataset:
    """Read a canonical dataset and check that its YOLO and COCO files agree.

    `check_images` also opens every image header (size against the annotation, bombs,
    unreadable files); labels and annotations are always checked.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, "dataset folder does not exist")
    yaml_path = root / "data.yaml"
    if not yaml_path.is_file():
        raise DatasetError(yaml_path, "missing: not a canonical dataset (run `midg data import ...` first)")
    _inside(root, "data.yaml", yaml_path)  # a link to a file elsewhere is not this dataset's
    doc, _ = read_yaml_mapping(yaml_path)
    names = parse_names(doc, yaml_path)
    meta_path = root / "meta.json"
    meta = {}
    if meta_path.is_file():
        _inside(root, "meta.json", meta_path)
        meta = _read_meta(meta_path)
        _check_meta_paths(meta, meta_path)
    pairs = meta.get("pairs", {}) if isinstance(meta.get("pairs", {}), dict) else {}

    splits: dict[str, list[ImageEntry]] = {}
    for split in SPLITS:
        img_dir = root / "images" / split
        ann_path = root / "annotations" / f"{split}.json"
        if not img_dir.is_dir():
            splits[split] = []
            continue
        files = sorted(p for p in img_dir.iterdir() if is_image_file(p))
        label_dir = root / "labels" / split
        stems = {p.stem for p in files}
        if label_dir.is_dir():
            for lbl in sorted(label_dir.glob("*.txt")):
                if lbl.stem not in stems:
                    raise DatasetError(lbl, f"label without image (no images/{split}/{lbl.stem}.*)")
        if len(stems) != len(files):
            dup = [s for s, c in Counter(p.stem for p in files).items() if c > 1]
            raise DatasetError(img_dir, f"two images share the stem {dup[0]!r}: their labels would collide")
        if files and not ann_path.is_file():
            raise DatasetError(ann_path, "missing: every split with images needs its COCO file")
        coco_by_file = {}
        if ann_path.is_file():
            _inside(root, f"annotations/{split}.json", ann_path)
            cat_names, coco_images = load_coco(ann_path, names)
            coco_by_file = {im.file_name: im for im in coco_images}
            on_disk = {p.name for p in files}
            for fname in coco_by_file:
                if fname not in on_disk:
                    raise DatasetError(ann_path, f"image {fname!r} is listed but not in images/{split}/")
        entries = []
        for p in files:
            coco_im = coco_by_file.get(p.name)
            if coco_im is None:
                raise DatasetError(ann_path, f"images/{split}/{p.name} is not listed")
            _inside(root, f"images/{split}/{p.name}", img_dir)
            if check_images:
                w, h = image_size(p)
                if (w, h) != (coco_im.width, coco_im.height):
                    raise DatasetError(p, f"image is {w}x{h} but {ann_path.name} says {coco_im.width}x{coco_im.height}")
            lbl = label_dir / f"{p.stem}.txt"
            if lbl.is_file():
                _inside(root, f"labels/{split}/{lbl.name}", lbl)
            yolo_boxes = read_label_file(lbl, len(names), coco_im.width, coco_im.height) if lbl.is_file() else []
            _check_same_boxes(yolo_boxes, coco_im.boxes, lbl, ann_path)
            rel = f"images/{split}/{p.name}"
            template = pairs.get(rel)
            if template is not None:
                _inside(root, template, meta_path)
            entries.append(ImageEntry(split, rel, coco_im.width, coco_im.height, tuple(coco_im.boxes), coco_im.id, template))
        splits[split] = entries

    normals = []
    ndir = root / "normals"
    if ndir.is_dir():
        for p in sorted(ndir.iterdir()):
            if is_image_file(p):
                _inside(root, f"normals/{p.name}", ndir)
                normals.append(f"normals/{p.name}")
    return Dataset(root, names, splits, normals, meta)


def _check_same_boxes(yolo: list[Box], coco: list[Box], lbl: Path, ann: Path) -> None:
    if len(yolo) != len(coco):
        raise DatasetError(lbl, f"{len(yolo)} boxes, but {ann.name} has {len(coco)} for this image")
    key = lambda b: (b.cls, round(b.x1), round(b.y1), round(b.x2), round(b.y2))  # noqa: E731
    for a, b in zip(sorted(yolo, key=key), sorted(coco, key=key)):
        if a.cls != b.cls or max(abs(a.x1 - b.x1), abs(a.y1 - b.y1), abs(a.x2 - b.x2), abs(a.y2 - b.y2)) > 1.0:
            raise DatasetError(lbl, f"box {a.xyxy()} (class {a.cls}) disagrees with {ann.name} {b.xyxy()} (class {b.cls})")


# ---------------------------------------------------------------- writing


@dataclass
class _Pending:
    split: str
    name: str
    width: int
    height: int
    boxes: list[Box]
    template: str | None


@dataclass
class DatasetWriter:
    """Build a canonical dataset in a temporary folder; `commit()` moves it into place.

    Use as a context manager: an exception inside the block removes the temporary
    folder and leaves whatever was at `out` untouched. The writer holds `out`'s lock
    (datasets/locking.py) from creation to commit/abort: a second writer is refused at once.
    """

    out: Path
    names: list[str]
    source: str
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    _tmp: Path | None = None
    _pending: list[_Pending] = field(default_factory=list)
    _normals: list[str] = field(default_factory=list)
    _extra: dict[str, Any] = field(default_factory=dict)
    _lock: OutputLock | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.names = list(self.names)
        if len(set(self.names)) != len(self.names) or not self.names:
            raise ValueError(f"class names must be unique and non-empty: {self.names}")
        self._lock = OutputLock(self.out, what="dataset").acquire()
        try:
            recover_leftovers(self.out)  # a killed writer's temporary folders (we hold the lock)
            if self.out.exists() and not self.out.is_dir():
                raise DatasetError(self.out, "output exists and is not a folder")
            if self.out.is_dir() and any(self.out.iterdir()) and not (self.out / "data.yaml").exists():
                raise DatasetError(self.out, "output folder is not empty and is not a dataset; refusing to replace it")
            self._tmp = temp_dir_beside(self.out)
            for split in SPLITS:
                (self._tmp / "images" / split).mkdir(parents=True)
                (self._tmp / "labels" / split).mkdir(parents=True)
            (self._tmp / "annotations").mkdir()
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise self._write_error(exc) from None
            raise

    def _write_error(self, exc: OSError) -> DatasetError:
        """A failed write (disk full, read-only folder) as one clear line; nothing changed at `out`."""
        detail = f" ({exc.filename})" if exc.filename else ""
        return DatasetError(self.out, f"could not write the dataset: {exc.strerror or exc}{detail}; "
                                      "the previous state at this path is kept")

    @property
    def tmp(self) -> Path:
        assert self._tmp is not None
        return self._tmp

    def _check_boxes(self, boxes: list[Box], width: int, height: int, where: str) -> list[Box]:
        checked = []
        for b in boxes:
            if not 0 <= b.cls < len(self.names):
                raise DatasetError(where, f"class index {b.cls} out of range 0..{len(self.names) - 1}")
            vals = (b.x1, b.y1, b.x2, b.y2)
            if not all(np.isfinite(v) for v in vals):
                raise DatasetError(where, f"NaN or inf in box {list(vals)}")
            if b.x2 <= b.x1 or b.y2 <= b.y1:
                raise DatasetError(where, f"box {list(vals)} has no area")
            if b.x1 < 0 or b.y1 < 0 or b.x2 > width or b.y2 > height:
                raise DatasetError(where, f"box {list(vals)} reaches outside the {width}x{height} image")
            checked.append(Box(int(b.cls), float(b.x1), float(b.y1), float(b.x2), float(b.y2)))
        return checked

    def add_image(self, split: str, name: str, *, array: np.ndarray | None = None, src: str | Path | None = None,
                  boxes: list[Box] = (), template: str | None = None) -> str:
        """Add one image (an array, written as PNG, or a file copied byte for byte).

        `name` is the file name without folder; with `array` it gets a `.png` suffix.
        Returns the path relative to the dataset root.
        """
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if (array is None) == (src is None):
            raise ValueError("give exactly one of array= or src=")
        if array is not None:
            name = f"{Path(name).stem}.png"
            height, width = array.shape[:2]
            data_path = self.tmp / "images" / split / name
            if data_path.exists():
                raise DatasetError(src or name, f"two images named {name!r} in split {split}")
            data_path.write_bytes(encode_png(array))
        else:
            src = Path(src)
            width, height = image_size(src)
            data_path = self.tmp / "images" / split / name
            if data_path.exists():
                raise DatasetError(src, f"two images named {name!r} in split {split}")
            shutil.copyfile(src, data_path)
        rel = f"images/{split}/{name}"
        checked = self._check_boxes(list(boxes), width, height, str(src) if src is not None else rel)
        self._pending.append(_Pending(split, name, width, height, checked, template))
        return rel

    def add_normal(self, name: str, *, array: np.ndarray | None = None, src: str | Path | None = None) -> str:
        if (array is None) == (src is None):
            raise ValueError("give exactly one of array= or src=")
        ndir = self.tmp / "normals"
        ndir.mkdir(exist_ok=True)
        if array is not None:
            name = f"{Path(name).stem}.png"
        if (ndir / name).exists():  # a silent overwrite would lose a normal
            raise DatasetError(src or name, f"two normals named {name!r}")
        if array is not None:
            (ndir / name).write_bytes(encode_png(array))
        else:
            image_size(src)
            shutil.copyfile(src, ndir / name)
        rel = f"normals/{name}"
        self._normals.append(rel)
        return rel

    def add_normals_folder(self, folder: str | Path) -> int:
        """Copy every image of `folder` (not its sub-folders) into normals/, names kept unless
        taken; a file that is a link leading outside the folder is refused. Returns the count."""
        folder = Path(folder)
        if not folder.is_dir():
            raise DatasetError(folder, "normals folder does not exist")
        files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
        if not files:
            raise DatasetError(folder, "no images in the normals folder")
        taken = UniqueNames()
        for rel in self._normals:
            taken.claim(Path(rel).name, "normal")
        for p in files:
            if not p.resolve().is_relative_to(folder.resolve()):
                raise DatasetError(p, f"normal file leads outside {folder} (a link?)")
            self.add_normal(taken.claim(p.name, "normal"), src=p)
        return len(files)

    def add_file(self, rel: str, *, src: str | Path) -> str:
        """Copy an extra image byte for byte to `rel` inside the dataset (e.g. the templates
        of test images, `templates/test/...`: paired with an image, but not normals)."""
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or not parts or parts[0] in ("images", "labels", "annotations", "normals", "data.yaml", "meta.json"):
            raise ValueError(f"extra file {rel!r} must be a relative path outside the managed folders")
        image_size(src)
        dest = self.tmp / rel
        if dest.exists():
            raise DatasetError(src, f"two files would be written to {rel!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return Path(rel).as_posix()

    def update_meta(self, **extra: Any) -> None:
        """Extra meta.json keys (e.g. `defects` of a synthetic set, `provenance` of a merge)."""
        self._extra.update(extra)

    def commit(self) -> Dataset:
        try:
            return self._commit()
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise self._write_error(exc) from None
            raise

    def _commit(self) -> Dataset:
        tmp = self.tmp
        splits: dict[str, list[ImageEntry]] = {s: [] for s in SPLITS}
        pairs = {}
        for split in SPLITS:
            items = sorted((p for p in self._pending if p.split == split), key=lambda p: p.name)
            coco_images = []
            for image_id, p in enumerate(items, start=1):
                rel = f"images/{split}/{p.name}"
                (tmp / "labels" / split / f"{Path(p.name).stem}.txt").write_text(
                    format_label_lines(p.boxes, p.width, p.height), encoding="utf-8")
                coco_images.append({"id": image_id, "file_name": p.name, "width": p.width, "height": p.height, "boxes": p.boxes})
                splits[split].append(ImageEntry(split, rel, p.width, p.height, tuple(p.boxes), image_id, p.template))
                if p.template is not None:
                    pairs[rel] = p.template
            coco = build_coco(coco_images, self.names, description=f"{self.source} {split}")
            (tmp / "annotations" / f"{split}.json").write_text(dumps_json(coco), encoding="utf-8")
        data_yaml = {
            "train": "images/train",
            "val": "images/val",
            "test": "images/test",
            "nc": len(self.names),
            "names": {i: n for i, n in enumerate(self.names)},
        }
        (tmp / "data.yaml").write_text(
            "# ultralytics dataset file; no `path:` so the yaml's own folder is used\n"
            + yaml.safe_dump(data_yaml, sort_keys=False), encoding="utf-8")
        normals = sorted(self._normals)
        counts = count_boxes(self.names, splits, len(normals))
        meta = {
            "format": "midg-canonical-1",
            "source": self.source,
            "tool": "midg",
            "version": tool_version(),
            "python": platform.python_version(),
            "seed": self.seed,
            "params": self.params,
            "names": self.names,
            "counts": counts,
            "pairs": pairs,
        }
        meta.update(self._extra)
        (tmp / "meta.json").write_text(dumps_json(meta), encoding="utf-8")
        replace_dir(tmp, self.out)
        self._tmp = None
        self._release()
        return Dataset(self.out, self.names, splits, normals, meta)

    def abort(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            if isinstance(exc, OSError):  # disk full, read-only folder: a clear line, not a traceback
                raise self._write_error(exc) from None
        elif self._tmp is not None:
            self.commit()
