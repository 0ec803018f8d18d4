"""The BSData benchmark: MIDG on photographs without templates (pitting on ball screw drives).

BSData (../shared/datasets/BSData, CC BY-SA 4.0; read its SOURCE.md) is read in place and
never committed. `prepare` writes one canonical bundle (datasets/layout.py) that `run` cuts
per seed, the way benchmarks/deeppcb.py does for DeepPCB:

    # once: the bundle (authors' test split, a val split, each seed's N train images, normals)
    python benchmarks/bsdata.py prepare --out .devdata/bsdata --n-images 50 --seeds 0 1 2
    # detector cells (real vs copypaste vs midg), resumable; the cell machinery is deeppcb.py's
    python benchmarks/bsdata.py run --profile bsdata --bundle .devdata/bsdata --work data/bench_bsdata \
        --detectors yolov8n --conditions real copypaste midg --seeds 0 1 2
    python benchmarks/bsdata.py table benchmarks/results/bsdata_bsdata.json
    # look: crop sheet real | MIDG | copy-paste (native resolution) and three full images each
    python benchmarks/bsdata.py show --real WORK/s0/real --synthetic midg=WORK/s0/syn_midg copypaste=WORK/s0/syn_copypaste \
        --out-crops benchmarks/results/bsdata_crops.png --out-full benchmarks/results/bsdata_full.png

Splits, as SOURCE.md asks:
- test: the authors' `train_test_split == "test"` images (70);
- val: `--n-val` images drawn once (seed `--val-seed`) from the authors' `train` images;
- train: for each seed a fixed permutation of the other `train` images; a seed's N images
  are its first N, so the subsets nest (N=10 inside 30 inside 50 ...) by construction;
- normals: the unannotated photographs taken before the first annotated image of their
  wear sequence (682); the 28 taken after pitting began may hold unlabelled pits and are
  left out of everything.
Images are resized so the long side is at most `--long-side` (640 by default: CPU
training at 1130x460 and larger is slow), polygons scaled by the exact per-axis factor,
boxes taken from the scaled polygons; re-encoded as JPEG (quality in meta.json). Each
image's pit polygons are kept as an instance mask (`masks/{split}/{stem}.png`, value k+1
is the k-th box; meta.json `instance_masks`, the convention of `midg data import yolo`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import random
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import cell_tables  # noqa: E402  (tables of the results JSON)
import deeppcb  # noqa: E402  (the cell machinery: run, results JSON)

DEFAULT_ROOT = ROOT.parent / "shared/datasets/BSData"
CLASS_NAME = "pitting"
JPEG_QUALITY = 95
# a type-2 file name: 01_<yymmddhhmmss>_<position>_<angle>_crop_<k>.jpg; the wear sequence is
# everything after the time stamp, the time stamp orders the sequence
TYPE2_NAME = re.compile(r"^\d+_(\d{12})_(.+)\.jpg$")


@dataclass(frozen=True)
class Record:
    filename: str  # under data/
    split: str | None  # the authors' train/test, None for unannotated
    annotations: str | None  # LabelMe JSON under label/
    sequence: str | None  # wear sequence (type 2 only)
    stamp: str | None  # acquisition time stamp, orders a sequence


@dataclass(frozen=True)
class Index:
    train: list[Record]  # annotated, authors' train
    test: list[Record]  # annotated, authors' test
    normals: list[Record]  # unannotated, before pitting began in their sequence
    post_onset: list[Record]  # unannotated, after pitting began: left out


def read_index(root: Path) -> Index:
    """Classify every image of image_data.json (see the module doc); bad entries name the file."""
    from midg.datasets.errors import DatasetError

    path = root / "image_data.json"
    if not path.is_file():
        raise DatasetError(path, "missing: not a BSData folder (expected image_data.json, data/, label/)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        items = doc["images"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DatasetError(path, f"expected {{'images': [...]}} ({type(exc).__name__}: {exc})") from None
    records = []
    for k, it in enumerate(items):
        if not isinstance(it, dict) or not isinstance(it.get("filename"), str):
            raise DatasetError(path, f"images[{k}]: expected an object with a 'filename'")
        split, ann = it.get("train_test_split"), it.get("annotations")
        if split not in ("train", "test", None) or (ann is not None and not isinstance(ann, str)):
            raise DatasetError(path, f"images[{k}] ({it['filename']}): train_test_split {split!r} / annotations {ann!r}")
        if (split is None) != (ann is None):
            raise DatasetError(path, f"images[{k}] ({it['filename']}): an annotated image needs a split and vice versa")
        m = TYPE2_NAME.match(it["filename"])
        records.append(Record(it["filename"], split, ann, m.group(2) if m else None, m.group(1) if m else None))
    onset: dict[str, str] = {}
    for r in records:
        if r.annotations and r.sequence is not None:
            onset[r.sequence] = min(onset.get(r.sequence, r.stamp), r.stamp)
    normals, post = [], []
    for r in records:
        if r.annotations:
            continue
        if r.sequence is None:
            raise DatasetError(path, f"{r.filename}: an unannotated image outside any wear sequence")
        (normals if r.sequence not in onset or r.stamp < onset[r.sequence] else post).append(r)
    by_name = lambda rs: sorted(rs, key=lambda r: r.filename)  # noqa: E731
    return Index(by_name(r for r in records if r.split == "train"), by_name(r for r in records if r.split == "test"),
                 by_name(normals), by_name(post))


def draw_splits(train: list[str], n_val: int, val_seed: int, seeds: list[int], n_max: int) -> tuple[list[str], dict[str, list[str]]]:
    """The val images and, per seed, its first `n_max` train images in draw order: a seed's
    N-image subset is the first N of its list, so the subsets nest."""
    names = sorted(train)
    if n_val + n_max > len(names):
        raise ValueError(f"{n_val} val + {n_max} train images asked, {len(names)} annotated train images exist")
    val = sorted(random.Random(val_seed).sample(names, n_val))
    rest = [n for n in names if n not in set(val)]
    orders = {}
    for seed in seeds:
        order = list(rest)
        random.Random(seed).shuffle(order)
        orders[str(seed)] = order[:n_max]
    return val, orders


def working_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(width, height) with the long side at most `long_side` (0: unchanged); never upscales."""
    if long_side <= 0 or max(width, height) <= long_side:
        return width, height
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def load_photo(path: Path, long_side: int) -> tuple[bytes, tuple[int, int], tuple[int, int]]:
    """JPEG bytes at working size, the original and the new (width, height)."""
    from PIL import Image

    from midg.datasets.errors import DatasetError
    from midg.datasets.images import image_size

    image_size(path)  # header checks (missing, bomb) with the file named
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            size = im.size
            new = working_size(*size, long_side)
            if new != size:
                im = im.resize(new, Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=JPEG_QUALITY)
    except Exception as exc:
        raise DatasetError(path, f"image data is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    return buf.getvalue(), size, new


def scaled_polygons(json_path: Path, size: tuple[int, int], new: tuple[int, int]) -> list[list[list[float]]]:
    """The JSON's pit polygons in working-size pixels (x times new_w / w, y times new_h / h)."""
    from midg.datasets.errors import DatasetError
    from midg.datasets.labelme import read_labelme

    doc = read_labelme(json_path)
    w, h = size
    for key, want in (("imageWidth", w), ("imageHeight", h)):
        if key in doc and doc[key] != want:
            raise DatasetError(json_path, f"{key} {doc[key]} but the image is {w}x{h}")
    sx, sy = new[0] / w, new[1] / h
    polys = []
    for k, shape in enumerate(doc.get("shapes", [])):
        if shape.get("shape_type", "polygon") != "polygon":
            raise DatasetError(json_path, f"shape {k}: BSData's pits are polygons, got {shape.get('shape_type')!r}")
        polys.append([[float(x) * sx, float(y) * sy] for x, y in shape["points"]])
    return polys


def polygon_boxes(polys: list[list[list[float]]], width: int, height: int) -> tuple[list, list]:
    """Boxes (extent, clipped) of the polygons that keep an area, and those polygons."""
    from midg.datasets.labelme import shape_box

    boxes, kept = [], []
    for poly in polys:
        box = shape_box({"points": poly}, 0, width, height)
        if box is not None:
            boxes.append(box)
            kept.append(poly)
    return boxes, kept


def prepare(args: argparse.Namespace) -> None:
    """Write the bundle (see the module doc); nothing is written at --out unless it all succeeds."""
    from midg.datasets.errors import DatasetError
    from midg.datasets.imports import _write_instance_mask
    from midg.datasets.layout import DatasetWriter

    src = Path(args.bsdata)
    index = read_index(src)
    n_list = sorted(set(args.n_list) | {args.n_images})
    val, orders = draw_splits([r.filename for r in index.train], args.n_val, args.val_seed, args.seeds, max(n_list))
    nested = {str(n): {s: order[:n] for s, order in orders.items()} for n in n_list}
    keep = set().union(*(set(v) for v in nested[str(max(n_list))].values()))
    normals = index.normals[: args.n_normals] if args.n_normals is not None else index.normals
    by_name = {r.filename: r for r in index.train + index.test}
    jobs = [("train", by_name[n]) for n in sorted(keep)] + [("val", by_name[n]) for n in val] + \
           [("test", r) for r in index.test]
    sizes, instance_masks = {}, {}
    with tempfile.TemporaryDirectory() as scratch, \
            DatasetWriter(Path(args.out), [CLASS_NAME], source="bsdata-bundle", seed=args.val_seed,
                          params={"long_side": args.long_side, "jpeg_quality": JPEG_QUALITY, "n_val": args.n_val,
                                  "val_seed": args.val_seed, "seeds": args.seeds, "n_images": args.n_images,
                                  "n_list": n_list, "n_normals": len(normals)}) as writer:
        for k, (split, rec) in enumerate(jobs):
            jpeg, size, new = load_photo(src / "data" / rec.filename, args.long_side)
            polys = scaled_polygons(src / "label" / rec.annotations, size, new)
            boxes, kept = polygon_boxes(polys, *new)
            if not boxes:
                raise DatasetError(src / "label" / rec.annotations, "no polygon with an area inside the image")
            tmp = Path(scratch) / rec.filename
            tmp.write_bytes(jpeg)
            rel = writer.add_image(split, rec.filename, src=tmp, boxes=boxes)
            instance_masks[rel] = _write_instance_mask(writer, split, rec.filename, kept, *new)
            sizes[rel] = {"original": list(size), "working": list(new)}
            tmp.unlink()
            if k % 50 == 0:
                print(f"{k}/{len(jobs)} annotated images", flush=True)
        for k, rec in enumerate(normals):
            jpeg, size, new = load_photo(src / "data" / rec.filename, args.long_side)
            tmp = Path(scratch) / rec.filename
            tmp.write_bytes(jpeg)
            rel = writer.add_normal(rec.filename, src=tmp)
            sizes[rel] = {"original": list(size), "working": list(new)}
            tmp.unlink()
            if k % 100 == 0:
                print(f"{k}/{len(normals)} normals", flush=True)
        writer.update_meta(
            subsets={s: order[: args.n_images] for s, order in orders.items()},  # what deeppcb.seed_subset reads
            nested_subsets=nested,
            subset_rule="per seed: random.Random(seed).shuffle(sorted authors' train minus val); N images = the first N",
            val_rule=f"random.Random({args.val_seed}).sample(sorted authors' train, {args.n_val})",
            normals_rule="unannotated images taken before the first annotated image of their wear sequence",
            left_out_post_onset=[r.filename for r in index.post_onset],
            instance_masks=instance_masks,
            sizes=sizes,
            resize={"long_side": args.long_side, "resample": "PIL LANCZOS", "jpeg_quality": JPEG_QUALITY,
                    "boxes": "from the polygons scaled by new_w/w and new_h/h, clipped to the image"},
            bsdata={"root": str(src.resolve()), "upstream": "github.com/2Obe/BSData",
                    "license": "CC BY-SA 4.0", "attribution": "BSData, CC BY-SA 4.0"},
        )
    print(f"bundle written to {args.out}: {len(keep)} train, {len(val)} val, {len(index.test)} test, "
          f"{len(normals)} normals ({len(index.post_onset)} post-onset photos left out)")


# ---------------------------------------------------------------- run


def seed_subset(bundle: Path, seed: int, n_images: int, work: Path) -> Path:
    """The seed's N images with their masks where deeppcb.prepare_seed looks (WORK/n<N>/s<seed>/real)."""
    from midg.datasets.layout import load_dataset

    out = deeppcb.cell_dir(work, n_images, seed) / "real"
    if (out / "meta.json").exists():
        return out
    ds = load_dataset(bundle)
    nested = ds.meta["nested_subsets"]
    if str(n_images) not in nested:
        raise SystemExit(f"the bundle has subsets for N in {sorted(map(int, nested))}, not {n_images}: "
                         "rerun prepare with --n-list")
    names = set(nested[str(n_images)][str(seed)])
    return write_view(ds, out, "bsdata-subset", seed, len(names),  # the N images, the bundle's val; no more
                      lambda split, name: "val" if split == "val" else ("train" if name in names else None))


def write_view(ds, out: Path, source: str, seed: int, n_images: int, split_of) -> Path:
    """The bundle `ds` at `out`: an image to `split_of(split, name)` (train, val, None: out), masks and normals kept."""
    from midg.datasets.layout import DatasetWriter

    masks = ds.meta.get("instance_masks", {})
    kept = {}
    with DatasetWriter(out, ds.names, source=source, seed=seed, params={"n_images": n_images}) as w:
        for split in ("train", "val"):
            for e in ds.images(split):
                into = split_of(split, Path(e.file).name)
                if into is None:
                    continue
                rel = w.add_image(into, Path(e.file).name, src=ds.path(e.file), boxes=list(e.boxes))
                if e.file in masks:
                    kept[rel] = w.add_file(masks[e.file], src=ds.path(masks[e.file]))
        for n in ds.normals:
            w.add_normal(Path(n).name, src=ds.path(n))
        w.update_meta(instance_masks=kept, bsdata=ds.meta.get("bsdata"), resize=ds.meta.get("resize"))
    return out


def run(args: argparse.Namespace) -> None:
    bp = deeppcb.bench_params(Path(args.params), args.profile)
    for n in deeppcb.sweep_sizes(args, bp):
        for seed in args.seeds:
            seed_subset(Path(args.bundle), seed, n, Path(args.work))
    deeppcb.SCRIPT = "benchmarks/bsdata.py"
    args.executor, args.address = "local", None  # deeppcb.py's Ray path cuts DeepPCB's subsets, not these
    deeppcb.run(args)


# ---------------------------------------------------------------- look and show


TILE = 64  # crop tile side in the sheet, pixels (the crops are cut at native resolution, never resized)


def _crop_tile(image: np.ndarray, box) -> np.ndarray:
    """The box grown by a quarter a side (at least 8 px), at its own pixels, centred on a grey tile
    (defect_crops.py's window, in colour: BSData's pits are brown on steel)."""
    from defect_crops import crop_window

    xa, ya, xb, yb = crop_window(box, *image.shape[:2])
    patch = image[ya:yb, xa:xb]
    tile = np.full((TILE, TILE, 3), 128, np.uint8)
    ph, pw = min(TILE, patch.shape[0]), min(TILE, patch.shape[1])
    oy, ox = (TILE - ph) // 2, (TILE - pw) // 2
    gy, gx = (patch.shape[0] - ph) // 2, (patch.shape[1] - pw) // 2
    tile[oy:oy + ph, ox:ox + pw] = patch[gy:gy + ph, gx:gx + pw]
    return tile


def _carried(meta: dict) -> dict[str, list[tuple[float, ...]]]:
    """Per synthetic image, the real boxes its annotated canvas carried over (meta.json
    `canvases`): they are real defects, not the method's."""
    return {c["image"]: [tuple(float(v) for v in box[1:5]) for box in c.get("real_boxes") or []]
            for c in meta.get("canvases") or []}


def _tiles(root: Path, split: str, n: int) -> tuple[list[np.ndarray], list[tuple[np.ndarray, list, list]]]:
    """The first `n` crops of the boxes a set's method made in `split` (file order, no picking;
    real boxes an annotated canvas carried over are left out) and the first three images
    with their new and carried boxes."""
    from midg.datasets.images import read_image
    from midg.datasets.layout import load_dataset

    ds = load_dataset(root)
    carried = _carried(ds.meta)
    tiles, full = [], []
    for e in ds.images(split):
        if len(tiles) >= n and len(full) >= 3:
            break
        image = read_image(ds.path(e.file))
        image = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
        real = carried.get(e.file, [])
        boxes = [(b.x1, b.y1, b.x2, b.y2) for b in e.boxes]
        new = [b for b in boxes if not any(np.allclose(b, r, atol=1e-3) for r in real)]
        old = [b for b in boxes if b not in new]
        tiles += [_crop_tile(image, b) for b in new][: max(0, n - len(tiles))]
        if len(full) < 3 and new:
            full.append((image, new, old))
    return tiles, full


def show(args: argparse.Namespace) -> None:
    """Crop sheet (one row per method, `--per-row` crops of the defects it made, native
    resolution) and three full images per method with their boxes (yellow; real boxes an
    annotated canvas carried over in green), as small PNGs (BSData, CC BY-SA 4.0: say so beside them)."""
    import cv2

    from midg.datasets.atomic import atomic_write_bytes

    rows = [("real", Path(args.real), "train")] + [(label, Path(path), "train") for label, path in
                                                   (item.split("=", 1) for item in args.synthetic)]
    sheet, fulls = [], []
    for label, root, split in rows:
        tiles, full = _tiles(root, split, args.per_row)
        tiles += [np.full((TILE, TILE, 3), 128, np.uint8)] * (args.per_row - len(tiles))
        strip = np.concatenate([np.pad(t, ((1, 1), (1, 1), (0, 0)), constant_values=255) for t in tiles], axis=1)
        name = np.full((strip.shape[0], 110, 3), 255, np.uint8)
        cv2.putText(name, label, (4, strip.shape[0] // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        sheet.append(np.concatenate([name, strip], axis=1))
        drawn = []
        for image, boxes, carried in full:
            im = image.copy()
            for colour, group in (((0, 200, 0), carried), ((255, 255, 0), boxes)):  # carried real boxes green
                for x1, y1, x2, y2 in group:
                    cv2.rectangle(im, (int(x1), int(y1)), (int(np.ceil(x2)) - 1, int(np.ceil(y2)) - 1), colour, 1)
            scale = args.full_width / im.shape[1]
            drawn.append(cv2.resize(im, (args.full_width, round(im.shape[0] * scale)), interpolation=cv2.INTER_AREA))
        height = max(d.shape[0] for d in drawn)
        drawn = [np.pad(d, ((0, height - d.shape[0]), (2, 2), (0, 0)), constant_values=255) for d in drawn]
        row = np.concatenate(drawn, axis=1)
        tag = np.full((height, 110, 3), 255, np.uint8)
        cv2.putText(tag, label, (4, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        fulls.append(np.concatenate([tag, row], axis=1))
    width = max(a.shape[1] for a in fulls)
    fulls = [np.pad(a, ((0, 4), (0, width - a.shape[1]), (0, 0)), constant_values=255) for a in fulls]
    for path, img in ((Path(args.out_crops), np.concatenate(sheet, axis=0)), (Path(args.out_full), np.concatenate(fulls, axis=0))):
        ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        atomic_write_bytes(path, buf.tobytes())
        print(f"{path}: {img.shape[1]}x{img.shape[0]} (BSData, CC BY-SA 4.0)")


def placement(args: argparse.Namespace) -> None:
    """How well each placement rule tells the val images' real pit centres from random pixels
    (ROC AUC, 0.5 = uniform): the surface model fitted on the train split (pits filled in),
    and the conductor sampler's map (Otsu bright share at the same scale, in its better direction)."""
    import cv2

    from midg.augment import surface_placement as sp
    from midg.augment.library import fit_defect_stats
    from midg.augment.outlines import fill_outlines, instance_mask
    from midg.augment.masks import conductor_map
    from midg.augment.trainset import outward_rect
    from midg.datasets.atomic import atomic_write_json
    from midg.datasets.images import read_image
    from midg.datasets.layout import load_dataset

    real = load_dataset(args.real)
    model = fit_defect_stats(real)["surface"]
    images, boxes = [], []
    for e in real.images("val"):
        inst = instance_mask(real, e)
        image = read_image(real.path(e.file))
        images.append(fill_outlines(image, inst) if inst is not None else image)  # what a normal shows there
        boxes.append([outward_rect(b, e.width, e.height) for b in e.boxes])
    rng = np.random.default_rng(args.seed)
    pos, neg = [], []
    for image, bs in zip(images, boxes):
        share = cv2.blur(conductor_map(image).astype(np.float32), (model["scale"],) * 2)
        h, w = share.shape
        pos += [float(share[(y1 + y2) // 2, (x1 + x2) // 2]) for x1, y1, x2, y2 in bs]
        neg += share[rng.integers(0, h, 200), rng.integers(0, w, 200)].astype(float).tolist()
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    auc_conductor = float((p > n).mean() + 0.5 * (p == n).mean())
    record = {"what": "ROC AUC of real pit centres vs random pixels on the val images (pits filled in)",
              "surface_model_auc": round(sp.placement_auc(model, images, boxes, seed=args.seed), 3),
              # the same model without its colour table (grey features only, as before it had one)
              "surface_model_grey_only_auc": round(sp.placement_auc({k: v for k, v in model.items() if k != "colour"},
                                                                    images, boxes, seed=args.seed), 3),
              "surface_model_has_colour": "colour" in model,
              "conductor_share_auc": round(max(auc_conductor, 1 - auc_conductor), 3),
              "val_images": len(images), "val_pits": sum(map(len, boxes)), "scale": model["scale"],
              "real": str(args.real), "seed": args.seed, "device": "CPU (2 cores, shared)",
              "date": dt.date.today().isoformat(), "git_rev": deeppcb.git_rev(), "git_dirty": deeppcb.git_dirty(),
              "command": shlex.join(["python", "benchmarks/bsdata.py", *sys.argv[1:]]), "data": "BSData, CC BY-SA 4.0"}
    atomic_write_json(Path(args.out), record)
    print(record)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--bsdata", default=str(DEFAULT_ROOT))
    p.add_argument("--out", default=str(ROOT / ".devdata/bsdata"))
    p.add_argument("--n-images", type=int, default=50, help="the N that `run` cuts (meta.json `subsets`)")
    p.add_argument("--n-list", type=int, nargs="+", default=[10, 30, 50, 100], help="nested N (meta `nested_subsets`)")
    p.add_argument("--n-val", type=int, default=40)
    p.add_argument("--val-seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n-normals", type=int, default=None, help="the first normals by name (default: all 682)")
    p.add_argument("--long-side", type=int, default=640, help="resize so the long side is at most this (0: keep)")
    r = sub.add_parser("run")
    r.add_argument("--profile", default="bsdata")
    r.add_argument("--params", default=str(ROOT / "params.yaml"))
    r.add_argument("--bundle", default=str(ROOT / ".devdata/bsdata"))
    r.add_argument("--work", default=str(ROOT / "data/bench_bsdata"))
    r.add_argument("--results", default=None)
    r.add_argument("--conditions", nargs="+", default=["real", "copypaste", "midg"], choices=deeppcb.CONDITIONS)
    r.add_argument("--detectors", nargs="+", default=["yolov8n"])
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--n-images", type=int, nargs="+", default=None,
                   help="N values, done in this order (default: the profile's benchmark.n_images)")
    r.add_argument("--device", default="cpu")
    r.add_argument("--device-name", default=None)
    r.add_argument("--git-rev", default=None)
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--parallel", type=int, default=1)
    r.add_argument("--deadline-s", type=float, default=float("inf"))
    r.add_argument("--min-cell-s", type=float, default=0.0)
    v = sub.add_parser("show", help="crop sheet and full images with boxes, real | synthetic sets")
    v.add_argument("--real", required=True, help="the seed's real set (its train split)")
    v.add_argument("--synthetic", nargs="+", required=True, help="LABEL=DIR of each synthetic set")
    v.add_argument("--per-row", type=int, default=12)
    v.add_argument("--full-width", type=int, default=320, help="width of each full image in the figure")
    v.add_argument("--out-crops", required=True)
    v.add_argument("--out-full", required=True)
    pl = sub.add_parser("placement", help="ROC AUC of the placement rules on the val images")
    pl.add_argument("--real", required=True, help="the seed's real set (train: fit; val: score)")
    pl.add_argument("--out", required=True)
    pl.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("table")
    t.add_argument("results", nargs="+")
    t.add_argument("--plot", default=None)
    args = ap.parse_args()
    if args.cmd == "run":
        args.executor, args.address = "local", None
        if args.results is None:
            args.results = str(ROOT / f"benchmarks/results/bsdata_{args.profile}.json")
    {"prepare": prepare, "run": run, "show": show, "placement": placement, "table": cell_tables.table}[args.cmd](args)


if __name__ == "__main__":
    main()
