"""What the annotated canvas looks like: per synthetic set, a few outputs beside the annotated
image each was painted into, real boxes green, new boxes red (half size).

    python benchmarks/canvas_sheet.py --real data/bench_curve/n30/s0/real \
        --synthetic data/bench_curve/n30/s0/syn_midg_annotated data/bench_curve/n30/s0/syn_copypaste_annotated \
        --out benchmarks/results/canvas_annotated_deeppcb.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from midg.datasets.layout import load_dataset

GREEN, RED, GAP = (0, 160, 0), (0, 0, 255), 8


def boxed(image: np.ndarray, boxes, color) -> np.ndarray:
    out = image.copy()
    for x1, y1, x2, y2 in boxes:
        cv2.rectangle(out, (round(x1), round(y1)), (round(x2), round(y2)), color, 2)
    return out


def rows_of(real, synthetic: Path, per_set: int) -> list[np.ndarray]:
    syn = load_dataset(synthetic)
    sources = {c["image"]: c for c in syn.meta["canvases"]}
    rows = []
    for entry in syn.images("train")[:per_set]:
        src = sources[entry.file]
        before = cv2.imread(str(real.path(src["source"])), cv2.IMREAD_COLOR)
        after = cv2.imread(str(syn.path(entry.file)), cv2.IMREAD_COLOR)
        real_boxes = [b[1:] for b in src["real_boxes"]]
        carried = {tuple(round(v) for v in b) for b in real_boxes}
        new = [b.xyxy() for b in entry.boxes if tuple(round(v) for v in b.xyxy()) not in carried]
        left, right = boxed(before, real_boxes, GREEN), boxed(boxed(after, real_boxes, GREEN), new, RED)
        row = np.concatenate([left, np.full((left.shape[0], GAP, 3), 255, np.uint8), right], 1)
        cv2.putText(row, f"{synthetic.name}: {src['source']} | {entry.file}", (8, 24), cv2.FONT_HERSHEY_SIMPLEX,
                    0.7, (200, 0, 0), 2)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", required=True, help="the real set the annotated canvas came from")
    ap.add_argument("--synthetic", nargs="+", required=True)
    ap.add_argument("--per-set", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    real = load_dataset(args.real)
    rows = [r for s in args.synthetic for r in rows_of(real, Path(s), args.per_set)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, GAP), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    sheet = cv2.resize(np.concatenate(rows, 0), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    cv2.imwrite(args.out, sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
