"""`midg data ...`: bring datasets into the canonical layout, derive and check them.

    midg data import deeppcb ../shared/datasets/DeepPCB data/deeppcb --seed 0
    midg data import yolo path/to/yolo_dataset data/mine
    midg data import coco instances.json images/ data/mine --split train --val-frac 0.1
    midg data import voc Annotations/ JPEGImages/ data/mine --empty-as normal
    midg data import auto path/to/cloned_repo data/mine                 # finds the dataset a few levels down
    midg data import masks CLASSES_DIR data/mine                        # CLASS/Imgs/NAME.jpg + NAME.png
    midg data import masks images/ masks/ data/mine --normals normals/ --class-map classes.yaml
    midg data download deeppcb data/deeppcb            # network: GitHub, pinned commit
    midg data subset data/deeppcb data/deeppcb_n100 --n-images 100 --seed 0
    midg data merge data/deeppcb_n100 data/synthetic data/train_mix
    midg data check data/deeppcb

Every command writes through DatasetWriter: the output appears complete or not at all.
Bad input is a DatasetError naming the file (and line); `midg` prints it and exits 2.
The work itself lives in midg.datasets; these functions only parse arguments and report.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

data_app = typer.Typer(no_args_is_help=True, help="Create, import, subset, merge and check canonical datasets.")
import_app = typer.Typer(no_args_is_help=True, help="Bring a dataset (DeepPCB, YOLO, COCO, image + mask folders) into the canonical layout.")
download_app = typer.Typer(no_args_is_help=True, help="Download a public dataset (needs network) and import it.")
data_app.add_typer(import_app, name="import")
data_app.add_typer(download_app, name="download")

console = Console()

NORMALS_HELP = "Folder of defect-free images (same camera and surface) to add as normals/."
MIN_AREA_HELP = ("Drop mask components smaller than this many pixels, with a count (default 4: JPEG-saved masks, "
                 "soft edges and stray annotation clicks leave 1-3 px specks; no detector here learns a defect "
                 "under 2x2 px).")


def _empty_as_help(default: str, what: str) -> str:
    return f"{what}: normal (into normals/, for the generator) | background (a training image without boxes). Default {default}."


def _say(msg: str) -> None:
    console.print(msg, highlight=False)


def _report(ds, what: str) -> None:
    from midg.datasets.check import counts_table

    console.print(f"[green]{what}[/] -> {ds.root}")
    console.print(counts_table(ds))


@import_app.command("deeppcb")
def import_deeppcb_command(
    src: Path = typer.Argument(..., help="DeepPCB folder (holding PCBData/) or PCBData itself."),
    out: Path = typer.Argument(..., help="Output dataset folder (replaced atomically)."),
    seed: int = typer.Option(0, help="Seed of the trainval -> train 900 / val 100 split."),
) -> None:
    """Import DeepPCB: train/val from trainval.txt (seeded), test from test.txt, templates as normals."""
    from midg.datasets.deeppcb import import_deeppcb

    _report(import_deeppcb(src, out, seed=seed), "imported DeepPCB")


@import_app.command("yolo")
def import_yolo_command(
    src: Path = typer.Argument(..., help="ultralytics dataset folder with its data.yaml (or the yaml itself)."),
    out: Path = typer.Argument(..., help="Output dataset folder (replaced atomically)."),
    empty_as: str = typer.Option("background", "--empty-as", help=_empty_as_help("background", "An image without labels")),
    normals: Optional[Path] = typer.Option(None, help=NORMALS_HELP),
) -> None:
    """Import an ultralytics (YOLO) detection dataset."""
    from midg.datasets.imports import import_yolo

    ds = import_yolo(src, out, empty_as=empty_as, normals=normals)
    _report(ds, "imported YOLO dataset")


@import_app.command("coco")
def import_coco_command(
    annotations: Path = typer.Argument(..., help="COCO instances JSON file."),
    images: Path = typer.Argument(..., help="Folder the file_name entries are relative to."),
    out: Path = typer.Argument(..., help="Output dataset folder (replaced atomically)."),
    split: str = typer.Option("train", help="Split the images go to: train, val or test."),
    val_frac: float = typer.Option(0.0, "--val-frac", help="With --split train: fraction moved to val (seeded)."),
    seed: int = typer.Option(0, help="Seed of the --val-frac choice."),
    empty_as: str = typer.Option("background", "--empty-as", help=_empty_as_help("background", "An image without annotations")),
    normals: Optional[Path] = typer.Option(None, help=NORMALS_HELP),
) -> None:
    """Import a COCO instances file and its image folder."""
    from midg.datasets.imports import import_coco

    ds = import_coco(annotations, images, out, split=split, val_frac=val_frac, seed=seed, empty_as=empty_as,
                     normals=normals)
    _report(ds, "imported COCO dataset")


@import_app.command("voc")
def import_voc_command(
    annotations: Path = typer.Argument(..., help="Folder of Pascal VOC .xml files (searched recursively)."),
    images: Path = typer.Argument(..., help="Folder the <filename> entries are in."),
    out: Path = typer.Argument(..., help="Output dataset folder (replaced atomically)."),
    split: str = typer.Option("train", help="Split the images go to: train, val or test."),
    val_frac: float = typer.Option(0.0, "--val-frac", help="Fraction of annotated images moved to val (seeded)."),
    seed: int = typer.Option(0, help="Seed of the --val-frac choice."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Comma-separated class names, in class order "
                                                                  "(default: the sorted names found in the files)."),
    empty_as: str = typer.Option("normal", "--empty-as", help=_empty_as_help("normal", "An XML without objects")),
    normals: Optional[Path] = typer.Option(None, help=NORMALS_HELP),
) -> None:
    """Import Pascal VOC XML annotations and their images."""
    from midg.datasets.voc import import_voc

    ds = import_voc(annotations, images, out, split=split, val_frac=val_frac, seed=seed,
                    classes=classes.split(",") if classes is not None else None, empty_as=empty_as,
                    normals=normals, report=_say)
    _report(ds, "imported VOC dataset")


@import_app.command("labelme")
def import_labelme_command(
    src: Path = typer.Argument(..., help="Folder of LabelMe .json files (searched recursively)."),
    out: Path = typer.Argument(..., help="Output dataset folder (replaced atomically)."),
    split: str = typer.Option("train", help="Split the images go to: train, val or test."),
    val_frac: float = typer.Option(0.0, "--val-frac", help="Fraction of annotated images moved to val (seeded)."),
    seed: int = typer.Option(0, help="Seed of the --val-frac choice."),
    empty_as: str = typer.Option("normal", "--empty-as", help=_empty_as_help("normal", "A file without shapes")),
    normals: Optional[Path] = typer.Option(None, help=NORMALS_HELP),
) -> None:
    """Import LabelMe JSON (rectangles and polygons; image beside it, in ../data/, or embedded)."""
    from midg.datasets.labelme import import_labelme

    ds = import_labelme(src, out, split=split, val_frac=val_frac, seed=seed, empty_as=empty_as, normals=normals,
                        report=_say)
    _report(ds, "imported LabelMe dataset")


@import_app.command("auto")
def import_auto_command(
    src: Path = typer.Argument(..., help="A dataset folder or file in any supported format, or a folder above it "
                                         "(a repo: sub-folders are searched a few levels down)."),
    out: Path = typer.Argument(..., help="Output dataset folder (replaced atomically)."),
    normals: Optional[Path] = typer.Option(None, help=NORMALS_HELP),
    empty_as: Optional[str] = typer.Option(None, "--empty-as", help="Images without labels: normal | background "
                                                                    "(default: the detected importer's)."),
) -> None:
    """Find the dataset (yolo, coco, voc, labelme, masks, deeppcb), say where, which and why, import it."""
    from midg.datasets.detect import import_auto

    _report(import_auto(src, out, report=_say, normals=normals, empty_as=empty_as), "imported")


@import_app.command("masks")
def import_masks_command(
    paths: List[Path] = typer.Argument(..., help="IMAGES MASKS OUT (two folders), or SRC OUT: masks beside their "
                                                 "images (NAME.png beside NAME.jpg, or NAME_mask/_label/_gt.*)."),
    normals: Optional[Path] = typer.Option(None, help=NORMALS_HELP),
    class_map: Optional[Path] = typer.Option(None, "--class-map", help="YAML/JSON mapping mask value or folder name -> class name."),
    class_from: str = typer.Option("parent", "--class-from", help="SRC OUT only: class from the image's parent "
                                                                  "folder (Imgs/images levels skipped) | grandparent "
                                                                  "folder, the mask value, or a folder map. Files in "
                                                                  "no class folder are skipped and listed."),
    mask_threshold: Optional[int] = typer.Option(None, "--mask-threshold", help="SRC OUT only: a mask pixel above "
                                                                               "this is defect (default 127)."),
    val_frac: float = typer.Option(0.1, "--val-frac", help="Fraction of images for val."),
    test_frac: float = typer.Option(0.1, "--test-frac", help="Fraction of images for test."),
    min_area: int = typer.Option(4, "--min-area", help=MIN_AREA_HELP),
    empty_as: Optional[str] = typer.Option(None, "--empty-as", help="Defect-free images (no mask in IMAGES MASKS OUT; "
                                                                    "a folder whose masks are all empty beside images): "
                                                                    "normal | background. Default: background for "
                                                                    "IMAGES MASKS OUT, normal beside images."),
    empty_mask: str = typer.Option("skip", "--empty-mask", help="A defect image whose mask is empty (or only specks): "
                                                               "skip (counted, listed in meta.json) | normal."),
    seed: int = typer.Option(0, help="Seed of the train/val/test split."),
) -> None:
    """Import images and masks: one box per connected component of each class."""
    from midg.datasets.errors import ConfigError
    from midg.datasets.folder import MaskSplit, import_masks, import_masks_beside

    split = MaskSplit(val=val_frac, test=test_frac)
    if len(paths) == 3 and paths[0].resolve() == paths[1].resolve():
        paths = [paths[0], paths[2]]  # masks in the image folder itself: masks beside images
    if len(paths) == 2:
        ds = import_masks_beside(paths[0], paths[1], class_from=class_from, class_map=class_map,
                                 mask_threshold=mask_threshold, seed=seed, split=split, min_area=min_area,
                                 empty_as=empty_as or "normal", empty_mask=empty_mask, normals=normals, report=_say)
    elif len(paths) == 3:
        ds = import_masks(paths[0], paths[1], paths[2], normals=normals, class_map=class_map, seed=seed,
                          split=split, min_area=min_area, empty_as=empty_as or "background", empty_mask=empty_mask,
                          report=_say)
    else:
        raise ConfigError(f"masks takes IMAGES MASKS OUT or SRC OUT, got {len(paths)} path(s)")
    _report(ds, "imported image + mask folders")


@download_app.command("deeppcb")
def download_deeppcb_command(
    out: Path = typer.Argument(..., help="Output dataset folder (replaced atomically)."),
    seed: int = typer.Option(0, help="Seed of the trainval -> train/val split."),
) -> None:
    """Download DeepPCB from GitHub at the pinned commit, then import it."""
    from midg.datasets.download import download_deeppcb

    _report(download_deeppcb(out, seed=seed), "downloaded and imported DeepPCB")


@data_app.command("subset")
def subset_command(
    src: Path = typer.Argument(..., help="Canonical dataset."),
    out: Path = typer.Argument(..., help="Output dataset folder (replaced atomically)."),
    n_images: int = typer.Option(..., "--n-images", help="Annotated training images to keep."),
    seed: int = typer.Option(0, help="Seed of the choice (subsets of one seed are nested)."),
) -> None:
    """Defect-scarce training set: N annotated train images, all normals, val and test as they are."""
    from midg.datasets.splits import subset

    _report(subset(src, out, n_images=n_images, seed=seed), f"subset of {n_images} training images")


@data_app.command("merge")
def merge_command(
    paths: List[Path] = typer.Argument(..., help="Two or more canonical datasets, then the output folder."),
) -> None:
    """Union of datasets (e.g. real + synthetic) with unique names and per-image provenance."""
    from midg.datasets.errors import ConfigError
    from midg.datasets.splits import merge

    if len(paths) < 3:
        raise ConfigError("merge needs at least two source datasets and an output folder")
    _report(merge(paths[:-1], paths[-1]), f"merged {len(paths) - 1} datasets")


@data_app.command("check")
def check_command(
    root: Path = typer.Argument(..., help="Canonical dataset."),
    decode: bool = typer.Option(False, "--decode", help="Also decode every image (slower; finds any corruption)."),
) -> None:
    """Check a dataset (YOLO and COCO agree, image sizes, normals) and print its counts."""
    from midg.datasets.check import check_dataset, counts_table

    ds = check_dataset(root, decode=decode)
    console.print(counts_table(ds))
    console.print(f"[green]ok[/]: {root}")


@data_app.command("demo")
def demo_command(
    out: Path = typer.Argument(..., help="Output dataset folder (replaced atomically)."),
    n_images: int = typer.Option(400, "--n-images", help="Board pairs to draw (defect image + its template)."),
    seed: int = typer.Option(0, help="Seed: the same seed gives the same bytes."),
    size: int = typer.Option(256, help="Image side in pixels."),
    val_frac: float = typer.Option(0.15, "--val-frac", help="Fraction of images for val."),
    test_frac: float = typer.Option(0.25, "--test-frac", help="Fraction of images for test."),
    color: bool = typer.Option(False, "--color/--gray", help="Amber RGB flexible circuits instead of grayscale."),
    zoom: float = typer.Option(1.0, help="Magnify the design (traces, pads, defects): 2 doubles defect sizes."),
) -> None:
    """Procedural flexible-circuit boards: template/defect pairs with exact boxes, six DeepPCB classes."""
    from midg.datasets.demo import make_demo_dataset

    ds = make_demo_dataset(out, n_images=n_images, seed=seed, size=size, color=color,
                           val_frac=val_frac, test_frac=test_frac, zoom=zoom)
    _report(ds, f"drew {n_images} demo boards")
