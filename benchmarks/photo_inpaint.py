"""The inpainting block on photographs, against OpenCV's inpainting, on held-out images.

    python benchmarks/photo_inpaint.py --checkpoint WORK/s0/gen_photo --real WORK/s0/real \
        --out benchmarks/results/bsdata_inpaint_s0.json --sheet benchmarks/results/bsdata_inpaint_s0.png

Holes are shaped and sized like the real defects: outlines of the train split's defects
(instance masks), deformed (outlines.deform_mask) and grown by the training margin, placed
at random on the held-out `val` images away from their labelled defects (so the truth
under every hole is defect-free surface the generator never saw). Each hole is filled by
the MIDG inpainting block (its context window, at crop size), by cv2.inpaint TELEA and NS
(radius 3, on the full image), and by the hole border's mean colour (a flat fill: the
floor any method must beat). Scores inside the hole, on 0..255 RGB: mean absolute error,
PSNR, and the error of the hole's standard deviation against the truth's (a blurred
or flat fill has too little texture). The JSON names command, device, seed, date, git revision.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import deeppcb  # noqa: E402  (git revision helpers)

METHODS = ("midg", "telea", "ns", "flat")


def holes_for(real, n_per_image: int, seed: int):
    """(image, hole HxW 0/1) pairs on the val images, away from their boxes."""
    from midg.augment.outlines import deform_mask, instance_mask
    from midg.augment.trainset import SHAPE_MARGIN, grow, outward_rect
    from midg.datasets.images import read_image

    outlines = []
    for e in real.images("train"):
        inst = instance_mask(real, e)
        if inst is None:
            continue
        for k, b in enumerate(e.boxes):
            x1, y1, x2, y2 = outward_rect(b, e.width, e.height)
            m = (inst[y1:y2, x1:x2] == k + 1).astype(np.uint8)
            if m.any():
                outlines.append(m)
    if not outlines:
        raise SystemExit(f"{real.root}: no instance masks in the train split: nothing to shape holes like")
    rng = np.random.default_rng(seed)
    for e in real.images("val"):
        image = read_image(real.path(e.file))
        h, w = image.shape[:2]
        busy = np.zeros((h, w), bool)
        for b in e.boxes:
            x1, y1, x2, y2 = outward_rect(b, w, h)
            busy[max(0, y1 - 8):y2 + 8, max(0, x1 - 8):x2 + 8] = True
        made = 0
        for _ in range(50 * n_per_image):
            if made == n_per_image:
                break
            shape = grow(deform_mask(outlines[int(rng.integers(len(outlines)))], rng), SHAPE_MARGIN)
            sh, sw = shape.shape
            if sh >= h or sw >= w:
                continue
            y, x = int(rng.integers(0, h - sh)), int(rng.integers(0, w - sw))
            hole = np.zeros((h, w), np.uint8)
            hole[y:y + sh, x:x + sw] = shape
            if (busy & (hole > 0)).any():
                continue
            busy |= cv2.dilate(hole, np.ones((9, 9), np.uint8)) > 0
            made += 1
            yield e.file, image, hole


def flat_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    ring = (cv2.dilate(hole, np.ones((3, 3), np.uint8)) > 0) & (hole == 0)
    out = image.copy()
    out[hole > 0] = image[ring].mean(axis=0).round().astype(np.uint8)
    return out


def midg_fill(generator, cfg: dict, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The inpainting block on the hole's context window, pasted back inside the hole only."""
    import torch

    from midg.augment.crops import context_window, extract_crop, window_patch

    ys, xs = np.nonzero(hole)
    rect = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    size = int(cfg["crop_size"])
    window = context_window(rect, image.shape[:2], float(cfg.get("context", 2.0)), int(cfg.get("min_window", 32)),
                            native=size)
    crop = extract_crop(image, window, size)
    hole_crop = (extract_crop(hole * 255, window, size) > 0.5).astype(np.float32)
    with torch.inference_mode():
        filled = generator.inpaint(torch.from_numpy(crop[None]), torch.from_numpy(hole_crop[None]))[0]
    patch = window_patch(filled.float().cpu().numpy(), window[2] - window[0])
    out = image.copy()
    wx1, wy1, wx2, wy2 = window
    h, w = image.shape[:2]
    cx1, cy1, cx2, cy2 = max(wx1, 0), max(wy1, 0), min(wx2, w), min(wy2, h)
    region = patch[cy1 - wy1:cy2 - wy1, cx1 - wx1:cx2 - wx1]
    inside = hole[cy1:cy2, cx1:cx2] > 0
    out[cy1:cy2, cx1:cx2][inside] = region[inside]
    return out


def scores(truth: np.ndarray, filled: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    t, f = truth[hole > 0].astype(np.float64), filled[hole > 0].astype(np.float64)
    mse = float(((t - f) ** 2).mean())
    return {"l1": float(np.abs(t - f).mean()), "psnr": float(10 * np.log10(255 ** 2 / max(mse, 1e-9))),
            "std_error": float(abs(f.std(axis=0).mean() - t.std(axis=0).mean()))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--real", required=True, help="canonical set with instance masks (train) and a val split")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sheet", default=None, help="PNG of the first holes: truth | hole | midg | telea | ns | flat")
    ap.add_argument("--per-image", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from midg.augment.generate import load_midg_generator, read_config
    from midg.datasets.atomic import atomic_write_bytes, atomic_write_json
    from midg.datasets.layout import load_dataset

    torch.set_num_threads(args.threads)
    ckpt = Path(args.checkpoint)
    cfg = read_config(ckpt)
    generator = load_midg_generator(ckpt, "cpu")
    cfg = {**cfg.get("generator", {}), **cfg, **getattr(generator, "config", {})}
    real = load_dataset(args.real)
    per_method = {m: [] for m in METHODS}
    examples = []
    for name, image, hole in holes_for(real, args.per_image, args.seed):
        fills = {"midg": midg_fill(generator, cfg, image, hole),
                 "telea": cv2.inpaint(image, hole, 3, cv2.INPAINT_TELEA),
                 "ns": cv2.inpaint(image, hole, 3, cv2.INPAINT_NS),
                 "flat": flat_fill(image, hole)}
        for m, f in fills.items():
            per_method[m].append(scores(image, f, hole))
        if len(examples) < 8:
            examples.append((image, hole, fills))
    summary = {m: {k: round(float(np.mean([s[k] for s in v])), 3) for k in ("l1", "psnr", "std_error")}
               for m, v in per_method.items()}
    n = len(per_method["midg"])
    wins = {f"midg_l1_below_{m}": round(float(np.mean([a["l1"] < b["l1"] for a, b in
                                                        zip(per_method["midg"], per_method[m])])), 3)
            for m in METHODS if m != "midg"}
    record = {
        "what": "inpainting inside real-defect-shaped holes on held-out val images (0..255 RGB)",
        "holes": n, "per_method": summary, "paired_share": wins,
        "checkpoint": str(ckpt), "checkpoint_step": cfg.get("step"), "real": str(args.real),
        "seed": args.seed, "device": "CPU (2 cores, shared)", "date": dt.date.today().isoformat(),
        "git_rev": deeppcb.git_rev(), "git_dirty": deeppcb.git_dirty(),
        "command": shlex.join(["python", "benchmarks/photo_inpaint.py", *sys.argv[1:]]),
        "data": "BSData, CC BY-SA 4.0",
    }
    atomic_write_json(Path(args.out), record)
    print(record)
    if args.sheet and examples:
        rows = []
        for image, hole, fills in examples:
            ys, xs = np.nonzero(hole)
            cy, cx = int(ys.mean()), int(xs.mean())
            half = max(24, int(max(np.ptp(ys), np.ptp(xs))))
            y1, x1 = max(0, cy - half), max(0, cx - half)
            sl = np.s_[y1:y1 + 2 * half, x1:x1 + 2 * half]
            shown = image.copy()
            shown[hole > 0] = (255, 0, 255)
            cells = [image[sl], shown[sl]] + [fills[m][sl] for m in METHODS]
            side = 2 * half
            cells = [cv2.resize(np.pad(c, ((0, side - c.shape[0]), (0, side - c.shape[1]), (0, 0))), (96, 96),
                                interpolation=cv2.INTER_NEAREST) for c in cells]
            rows.append(np.concatenate([np.pad(c, ((1, 1), (1, 1), (0, 0)), constant_values=255) for c in cells], 1))
        sheet = np.concatenate(rows, 0)
        ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        atomic_write_bytes(Path(args.sheet), buf.tobytes())
        print(f"{args.sheet}: columns truth | hole | {' | '.join(METHODS)}")


if __name__ == "__main__":
    main()
