"""Derived datasets: defect-scarce subsets and merges (real + synthetic).

    midg data subset data/deeppcb data/deeppcb_n100 --n-images 100 --seed 0
    midg data merge data/deeppcb_n100 data/synthetic data/train_mix

`subset` keeps N annotated training images (a seeded choice), every normal, and val and
test as they are: the benchmark's "few defects, many normals" setting.
`merge` unions the images of each split; names that collide get the source's index as a
prefix, and meta.json `provenance` maps every output image back to its source file.
Both copy image bytes as they are and write through DatasetWriter (atomic).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from .errors import ConfigError, DatasetError
from .layout import SPLITS, Dataset, DatasetWriter, ImageEntry, load_dataset
from .naming import UniqueNames
from .progress import track

_MANAGED = ("images/", "normals/")


def _template_in_output(writer: DatasetWriter, ds: Dataset, template: str | None, normals: dict[str, str],
                        copied: dict[str, str], tag: str) -> str | None:
    """Where an image's template lives in the output: its normal's new path, or a copy of
    the extra file (e.g. `templates/test/...`), prefixed with `tag` if the path is taken."""
    if template is None:
        return None
    if template in normals:
        return normals[template]
    if template in copied:
        return copied[template]
    if template.startswith(_MANAGED):
        raise DatasetError(ds.root / "meta.json", f"pairs: template {template!r} is not among the dataset's normals")
    dest = Path(template)
    if (writer.tmp / dest).exists():
        dest = dest.with_name(f"{tag}_{dest.name}")
    copied[template] = writer.add_file(dest.as_posix(), src=ds.path(template))
    return copied[template]


def subset(src: str | Path, out: str | Path, n_images: int, seed: int = 0) -> Dataset:
    """N annotated training images chosen with `seed`; all normals; val and test untouched."""
    ds = load_dataset(src)
    annotated = [e for e in ds.images("train") if e.boxes]
    if n_images < 1:
        raise ConfigError(f"--n-images {n_images} must be at least 1")
    if n_images > len(annotated):
        raise DatasetError(ds.root, f"asked for {n_images} annotated training images, the dataset has {len(annotated)}")
    # a seeded shuffle, then the first N: subsets of one seed are nested (N=50 inside N=100)
    order = annotated[:]
    random.Random(seed).shuffle(order)
    chosen = sorted(order[:n_images], key=lambda e: e.file)

    with DatasetWriter(out, ds.names, source="subset", seed=seed, params={"n_images": n_images}) as writer:
        normals = {rel: writer.add_normal(Path(rel).name, src=ds.path(rel)) for rel in track(ds.normals, "copying normals")}
        copied: dict[str, str] = {}
        kept = chosen + ds.images("val") + ds.images("test")
        for e in track(kept, "copying images"):
            template = _template_in_output(writer, ds, e.template, normals, copied, tag="subset")
            writer.add_image(e.split, Path(e.file).name, src=ds.path(e.file), boxes=list(e.boxes), template=template)
        writer.update_meta(subset={
            "parent": str(src),
            "parent_source": ds.meta.get("source"),
            "parent_seed": ds.meta.get("seed"),
            "n_images": n_images,
            "seed": seed,
            "annotated_train_images_in_parent": len(annotated),
            "chosen": [e.file for e in chosen],
        })
        return writer.commit()


def merge(sources: list[str | Path], out: str | Path) -> Dataset:
    """Union of several datasets with the same class names, split by split."""
    if len(sources) < 2:
        raise ConfigError("merge needs at least two source datasets")
    datasets = [load_dataset(s) for s in sources]
    first = datasets[0]
    for ds in datasets[1:]:
        if ds.names != first.names:
            raise DatasetError(ds.root, f"class names {ds.names} differ from {first.names} of {first.root}")

    provenance: dict[str, dict[str, Any]] = {}
    with DatasetWriter(out, first.names, source="merge") as writer:
        normal_names, split_names = UniqueNames(), {s: UniqueNames() for s in SPLITS}
        for k, (ds, src) in enumerate(zip(datasets, sources)):
            tag = f"s{k}"  # the prefix a colliding name of source k gets
            renamed: dict[str, str] = {}
            for rel in ds.normals:
                new = writer.add_normal(normal_names.claim(Path(rel).name, tag), src=ds.path(rel))
                renamed[rel] = new
                provenance[new] = {"source": str(src), "file": rel}
            copied: dict[str, str] = {}
            entries: list[ImageEntry] = [e for s in SPLITS for e in ds.images(s)]
            for e in track(entries, f"merging {src}"):
                template = _template_in_output(writer, ds, e.template, renamed, copied, tag)
                name = split_names[e.split].claim(Path(e.file).name, tag)
                new = writer.add_image(e.split, name, src=ds.path(e.file), boxes=list(e.boxes), template=template)
                provenance[new] = {"source": str(src), "file": e.file}
            for old, new in copied.items():
                provenance[new] = {"source": str(src), "file": old}
        writer.update_meta(
            sources=[{"path": str(src), "source": ds.meta.get("source"), "seed": ds.meta.get("seed"),
                      "version": ds.meta.get("version"), "counts": ds.counts()} for ds, src in zip(datasets, sources)],
            provenance=provenance,
        )
        return writer.commit()
