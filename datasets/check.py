"""Check a canonical dataset and summarise it.

    midg data check data/deeppcb            # labels, annotations, image headers, normals
    midg data check data/deeppcb --decode   # also decode every image (finds any corruption)

Everything load_dataset(check_images=True) checks (YOLO and COCO agree, sizes match the
image headers, no bombs, no truncated JPEG/PNG), plus: normals and templates open, and
`--decode` reads every pixel.
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from .errors import DatasetError
from .images import image_size, read_image
from .layout import SPLITS, Dataset, load_dataset
from .progress import track


def check_dataset(root: str | Path, decode: bool = False) -> Dataset:
    """Load `root` with every check; raise DatasetError naming the first bad file."""
    ds = load_dataset(root, check_images=True)
    for rel in ds.normals:
        image_size(ds.path(rel))
    for split in SPLITS:
        for e in ds.images(split):
            if e.template is not None:
                t = ds.path(e.template)
                if not t.is_file():
                    raise DatasetError(ds.root / "meta.json", f"pairs: template {e.template!r} of {e.file} does not exist")
                if image_size(t) != (e.width, e.height):
                    raise DatasetError(t, f"template size differs from its image {e.file} ({e.width}x{e.height})")
    if decode:
        files = [e.file for s in SPLITS for e in ds.images(s)] + ds.normals
        for rel in track(files, "decoding images"):
            read_image(ds.path(rel))
    return ds


def counts_table(ds: Dataset) -> Table:
    """Images, background images and boxes per split, then boxes per class: one column
    per split, so any number of classes fits a terminal."""
    counts = ds.counts()
    table = Table(title=f"{ds.root}  ({ds.meta.get('source', '?')}, {counts['normals']} normals)")
    table.add_column("")
    for split in SPLITS:
        table.add_column(split, justify="right")
    for key, label in (("images", "images"), ("background_images", "background images"), ("boxes", "boxes")):
        table.add_row(label, *(str(counts[s][key]) for s in SPLITS), end_section=key == "boxes")
    for name in ds.names:
        table.add_row(name, *(str(counts[s]["per_class"][name]) for s in SPLITS))
    return table
