"""A run-local view of one or more canonical datasets, for ultralytics to read.

ultralytics writes `labels/*.cache` beside the labels it reads, may rewrite a JPEG it
finds truncated, and resolves relative paths against its own settings. So a detector run
never hands it a dataset folder: it gets RUN_DIR/data/ instead,

```
RUN_DIR/data/
  data.yaml            train: [abs 0/images/train, abs 1/images/train, ...]; val/test: the first dataset's
  0/images/{train,val,test}/NAME  -> symlink to the real image (a copy where links are refused)
  0/labels/{train,val,test}/NAME.txt   copies of the YOLO labels (small; ultralytics may write beside them)
  1/images/train/...                   the next --data folder (real + synthetic), train split only
```
Images are links, so a view costs no disk; ultralytics replaces (never writes through) an
image it "restores", so the linked originals stay untouched. Labels are copied because
they are tiny and their folder is where the caches land.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from midg.datasets.errors import DatasetError
from midg.datasets.layout import Dataset, load_dataset


@dataclass(frozen=True)
class DataView:
    root: Path  # RUN_DIR/data
    yaml: Path  # RUN_DIR/data/data.yaml, absolute paths inside
    names: list[str]
    n_train: int  # training images over all datasets
    n_val: int
    val_source: str  # "val" of the first dataset, or "train" when it has no val images
    sources: list[dict] = field(default_factory=list)  # per dataset: path, train/val/test counts


def load_datasets(data_dirs: list[Path]) -> list[Dataset]:
    """Load every --data folder; all must share the first one's class names (in order)."""
    if not data_dirs:
        raise DatasetError(None, "no dataset given: pass at least one --data folder")
    datasets = [load_dataset(d) for d in data_dirs]
    first = datasets[0]
    for ds in datasets[1:]:
        if ds.names != first.names:
            raise DatasetError(ds.root / "data.yaml", f"class names {ds.names} differ from {first.root}'s {first.names}: "
                               "datasets trained together must share classes")
    if not any(ds.images("train") for ds in datasets):
        raise DatasetError(first.root, "no training images in any of the datasets given")
    return datasets


def _link(src: Path, dst: Path) -> None:
    try:
        os.symlink(src, dst)
    except OSError:  # filesystems or platforms without symlinks: a copy keeps the originals safe too
        shutil.copyfile(src, dst)


def _add_split(ds: Dataset, split: str, dest: Path) -> int:
    img_dir = dest / "images" / split
    lbl_dir = dest / "labels" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    lbl_dir.mkdir(parents=True, exist_ok=True)
    for entry in ds.images(split):
        name = Path(entry.file).name  # not the resolved target's: DVC links images to hash-named cache files
        _link(ds.path(entry.file).resolve(), img_dir / name)
        label = ds.root / "labels" / split / f"{Path(name).stem}.txt"
        if label.is_file():
            shutil.copyfile(label, lbl_dir / label.name)
    return len(ds.images(split))


def build_view(datasets: list[Dataset], view_root: Path) -> DataView:
    """(Re)build RUN_DIR/data from loaded datasets (`load_datasets`); the first also gives val and test."""
    view_root = Path(view_root).resolve()
    if view_root.exists():
        shutil.rmtree(view_root)  # ours: rebuilt from the datasets on every train/resume
    view_root.mkdir(parents=True)
    sources, train_dirs = [], []
    for i, ds in enumerate(datasets):
        dest = view_root / str(i)
        counts = {"path": str(ds.root.resolve()), "train": _add_split(ds, "train", dest)}
        if counts["train"]:
            train_dirs.append(str(dest / "images" / "train"))
        if i == 0:
            counts["val"] = _add_split(ds, "val", dest)
            counts["test"] = _add_split(ds, "test", dest)
        sources.append(counts)
    first = view_root / "0" / "images"
    val_source = "val" if sources[0]["val"] else "train"  # ultralytics needs a val set to build its validator
    doc = {
        "train": train_dirs,
        "val": str(first / val_source),
        "test": str(first / ("test" if sources[0]["test"] else val_source)),
        "nc": len(datasets[0].names),
        "names": {i: n for i, n in enumerate(datasets[0].names)},
    }
    yaml_path = view_root / "data.yaml"
    yaml_path.write_text("# run-local view for ultralytics (see detectors/view.py); absolute paths, no `path:`\n"
                         + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return DataView(view_root, yaml_path, list(datasets[0].names), sum(s["train"] for s in sources),
                    sources[0]["val"] or sources[0]["train"], val_source, sources)
