"""Sample grids: the picture a user looks at first.

    midg generator samples runs/gen --normals data/demo/normals --out samples.png [--real data/demo] [--seed 0]

Per class, rows of: normal crop | masked | inpainted | edges | generated | real defect
(a real crop of that class, from --real or the dataset the checkpoint was trained on,
else the library patch). Rectangles come from the checkpoint's rectangle sampler
statistics (stats.json, augment/masks.py), so sizes and places are the class' own.
During training, `training_grid` draws the same kind of picture from fixed training
crops into CKPT_DIR/samples/step_NNNNNN.png. Labels are drawn with cv2.putText (Hershey
fonts are built into OpenCV: nothing to download).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from midg.datasets.atomic import atomic_write_bytes
from midg.datasets.errors import DatasetError
from midg.datasets.images import encode_png, is_image_file, read_image

from .crops import context_window, extract_crop, from_chw, hole_mask

HOLE_COLOUR = (200, 60, 200)  # magenta: clearly not a board colour
FONT = cv2.FONT_HERSHEY_SIMPLEX


# ---------------------------------------------------------------- drawing


def _rgb(cell: np.ndarray) -> np.ndarray:
    return cell if cell.ndim == 3 else np.repeat(cell[:, :, None], 3, axis=2)


def masked_view(crop: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """CxSxS crop → HxWx3 uint8 with the hole painted magenta."""
    img = _rgb(from_chw(crop)).copy()
    img[hole[0] > 0.5] = HOLE_COLOUR
    return img


def edge_view(edges: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """1xSxS edges in [0, 1] → HxW uint8: white edges, the hole a dark grey so its extent shows."""
    base = np.where(hole[0] > 0.5, 48.0, 0.0)
    return np.clip(np.maximum(base, edges[0] * 255.0), 0, 255).astype(np.uint8)


def labelled_grid(rows: Sequence[Sequence[np.ndarray | None]], col_labels: Sequence[str],
                  row_labels: Sequence[str], cell: int = 96, pad: int = 3) -> np.ndarray:
    """Cells (HxW or HxWx3 uint8; None = empty) scaled to `cell` px, labelled; RGB uint8."""
    label_w, head_h = 92, 20
    n_rows, n_cols = len(rows), len(col_labels)
    h = head_h + n_rows * (cell + pad) + pad
    w = label_w + n_cols * (cell + pad) + pad
    out = np.full((h, w, 3), 255, np.uint8)
    for j, text in enumerate(col_labels):
        x = label_w + pad + j * (cell + pad)
        cv2.putText(out, text, (x + 2, head_h - 6), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for i, row in enumerate(rows):
        y = head_h + pad + i * (cell + pad)
        cv2.putText(out, row_labels[i][:12], (4, y + cell // 2 + 4), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for j, img in enumerate(row):
            x = label_w + pad + j * (cell + pad)
            if img is None:
                out[y:y + cell, x:x + cell] = 230
                cv2.putText(out, "n/a", (x + cell // 2 - 12, y + cell // 2 + 4), FONT, 0.4, (90, 90, 90), 1,
                            cv2.LINE_AA)
                continue
            img = _rgb(img)
            ih, iw = img.shape[:2]
            scale = cell / max(ih, iw)
            nh, nw = max(1, round(ih * scale)), max(1, round(iw * scale))
            out[y:y + nh, x:x + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_NEAREST)
    return out


def write_grid(path: str | Path, grid: np.ndarray) -> None:
    atomic_write_bytes(path, encode_png(grid))


def cell_size(crop_size: int) -> int:
    return crop_size * max(1, round(96 / crop_size))


# ---------------------------------------------------------------- training preview


TRAIN_COLUMNS = ("masked", "inpainted", "real edges", "gen. edges", "generated", "real")


def training_grid(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], names: Sequence[str]) -> np.ndarray:
    """Grid of one preview batch: `out` from MIDGModel.forward_generators (no teacher forcing)."""
    rows, labels = [], []
    real = {k: v.detach().float().cpu().numpy() for k, v in batch.items() if k != "class_ids"}
    gen = {k: v.detach().float().cpu().numpy() for k, v in out.items()}
    for i, c in enumerate(batch["class_ids"].tolist()):
        hole = real["hole"][i]
        rows.append([masked_view(real["image"][i], hole), from_chw(gen["inpainted"][i]),
                     edge_view(real["edges"][i], hole), edge_view(gen["edges"][i], hole),
                     from_chw(gen["defect"][i]), from_chw(real["image"][i])])
        labels.append(names[c])
    return labelled_grid(rows, TRAIN_COLUMNS, labels, cell=cell_size(real["image"].shape[-1]))


# ---------------------------------------------------------------- the samples command


SHEET_COLUMNS = ("normal", "masked", "inpainted", "edges", "generated", "real defect")


def _normal_files(normals_dir: Path) -> list[Path]:
    """Image files of a folder, or of a canonical dataset's normals/ when given the dataset."""
    if (normals_dir / "data.yaml").is_file() and (normals_dir / "normals").is_dir():
        normals_dir = normals_dir / "normals"
    if not normals_dir.is_dir():
        raise DatasetError(normals_dir, "normals folder does not exist")
    files = sorted(p for p in normals_dir.iterdir() if is_image_file(p))
    if not files:
        raise DatasetError(normals_dir, "no images in the normals folder")
    return files


def _real_crops(dataset_root: Path | None, config: dict, per_class: int) -> dict[int, list[np.ndarray]]:
    """Context crops of real defects per class (the same windows training used)."""
    from midg.datasets.layout import load_dataset

    from .library import as_channels
    from .trainset import outward_rect

    crops: dict[int, list[np.ndarray]] = {}
    if dataset_root is None:
        return crops
    ds = load_dataset(dataset_root)
    names = config["classes"]
    s, channels = int(config["crop_size"]), int(config["channels"])
    for entry in ds.images("train") or ds.images("val") or ds.images("test"):
        todo = [(names.index(ds.names[b.cls]), b) for b in entry.boxes if ds.names[b.cls] in names]
        todo = [(c, b) for c, b in todo if len(crops.setdefault(c, [])) < per_class]
        if not todo:
            continue
        img = as_channels(read_image(ds.path(entry.file)), channels)
        h, w = img.shape[:2]
        for c, b in todo:
            if len(crops[c]) < per_class:
                rect = outward_rect(b, w, h)
                window = context_window(rect, (h, w), float(config["context"]), int(config["min_window"]))
                crops[c].append(from_chw(extract_crop(img, window, s)))
    return crops


def _library_patches(ckpt_dir: Path) -> dict[int, list[np.ndarray]]:
    from .library import load_library

    try:
        lib = load_library(ckpt_dir)
    except DatasetError:
        return {}
    out: dict[int, list[np.ndarray]] = {}
    for i in range(len(lib)):
        out.setdefault(int(lib.classes[i]), []).append(lib.entry(i)[0])
    return out


def sample_sheet(ckpt_dir: str | Path, normals_dir: str | Path, real: str | Path | None = None, seed: int = 0,
                 rows_per_class: int = 2, device: str = "cpu") -> np.ndarray:
    """The grid of `midg generator samples` as an RGB uint8 array (same seed, same pixels)."""
    from .checkpoint import load_generator
    from .library import as_channels, load_stats
    from .masks import sample_rectangles

    ckpt_dir = Path(ckpt_dir)
    gen = load_generator(ckpt_dir, device=device)
    config = gen.config
    names, s, channels = list(config["classes"]), int(config["crop_size"]), int(config["channels"])
    stats = config.get("sampler_stats") or load_stats(ckpt_dir)
    files = _normal_files(Path(normals_dir))
    if real is not None:
        reals = _real_crops(Path(real), config, rows_per_class)
    else:  # the training dataset when it is still where it was, else the library's patches
        reals = {}
        trained_on = config.get("dataset", {}).get("root")
        if trained_on and Path(trained_on).is_dir():
            try:
                reals = _real_crops(Path(trained_on), config, rows_per_class)
            except DatasetError:
                reals = {}
        reals = reals or _library_patches(ckpt_dir)

    rng = np.random.default_rng(seed)
    crops, holes, class_ids, labels = [], [], [], []
    for c, name in enumerate(names):
        for _ in range(rows_per_class):
            normal = as_channels(read_image(files[int(rng.integers(len(files)))]), channels)
            placed = sample_rectangles(rng, normal, stats, [name], n=1)
            if not placed:
                continue
            _, rect = placed[0]
            window = context_window(rect, normal.shape[:2], float(config["context"]), int(config["min_window"]))
            crops.append(extract_crop(normal, window, s))
            holes.append(hole_mask(rect, window, s))
            class_ids.append(c)
            labels.append(name)
    if not crops:
        raise DatasetError(normals_dir, "no rectangle fitted on the normal images")
    x = torch.from_numpy(np.stack(crops))
    m = torch.from_numpy(np.stack(holes))
    cls = torch.tensor(class_ids, dtype=torch.int64)
    res = gen.generate(x, m, cls, torch.Generator().manual_seed(seed))
    res = {k: v.cpu().numpy() for k, v in res.items()}
    rows, seen = [], {}
    for i, c in enumerate(class_ids):
        k = seen.get(c, 0)
        seen[c] = k + 1
        real_list = reals.get(c, [])
        rows.append([from_chw(crops[i]), masked_view(crops[i], holes[i]), from_chw(res["inpainted"][i]),
                     edge_view(res["edges"][i], holes[i]), from_chw(res["defect"][i]),
                     real_list[k % len(real_list)] if real_list else None])
    return labelled_grid(rows, SHEET_COLUMNS, labels, cell=cell_size(s))
