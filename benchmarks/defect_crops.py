"""A sheet of defect crops per class, real | MIDG | copy-paste, at native resolution.

    .venv/bin/python benchmarks/defect_crops.py --real data/deeppcb_n100 \
        --synthetic data/syn_midg --synthetic data/syn_copypaste --out benchmarks/results/defect_crops_deeppcb.png

Each crop is the label box grown by a quarter of its size a side (at least 8 px), cut
from the full image at its own pixels (no resize), pasted centred on a grey tile, so what
the eye sees is what the detector sees, rectangle border included. Crops are the first
`--per-class` of each class in file order (no picking). Real crops come from the train split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from midg.datasets.images import read_image
from midg.datasets.layout import load_dataset

TILE = 96


def crop_window(box, height: int, width: int) -> tuple[int, int, int, int]:
    """The box grown by a quarter of its size a side (at least 8 px), clipped: [xa, ya, xb, yb]."""
    x1, y1, x2, y2 = box
    mx, my = max(8, (x2 - x1) / 4), max(8, (y2 - y1) / 4)
    xa, ya = int(max(0, np.floor(x1 - mx))), int(max(0, np.floor(y1 - my)))
    xb, yb = int(min(width, np.ceil(x2 + mx))), int(min(height, np.ceil(y2 + my)))
    return xa, ya, xb, yb


def crop_of(image: np.ndarray, box) -> np.ndarray:
    xa, ya, xb, yb = crop_window(box, *image.shape[:2])
    patch = image[ya:yb, xa:xb]
    gray = patch if patch.ndim == 2 else cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
    tile = np.full((TILE, TILE), 128, np.uint8)
    ph, pw = min(TILE, gray.shape[0]), min(TILE, gray.shape[1])
    oy, ox = (TILE - ph) // 2, (TILE - pw) // 2
    gy, gx = (gray.shape[0] - ph) // 2, (gray.shape[1] - pw) // 2
    tile[oy:oy + ph, ox:ox + pw] = gray[gy:gy + ph, gx:gx + pw]
    return tile


def crops_by_class(root: Path, per_class: int, on_templates: bool = False) -> dict[str, list[np.ndarray]]:
    """The first `per_class` box crops of each class (train split, file order). `on_templates`:
    the same boxes cut from the template with each real defect copied onto it (paired
    sources; what a perfect generator painting on templates would make)."""
    from midg.augment.metrics.crops import on_template
    from midg.augment.boxes import THRESHOLD

    ds = load_dataset(root)
    out: dict[str, list[np.ndarray]] = {n: [] for n in ds.names}
    for e in ds.images("train"):
        if all(len(v) >= per_class for v in out.values()):
            break
        if on_templates and e.template is None:
            continue
        image = None
        for b in e.boxes:
            name = ds.names[b.cls]
            if len(out[name]) < per_class:
                if image is None:
                    image = read_image(ds.path(e.file))
                    if on_templates:
                        image = on_template(image, read_image(ds.path(e.template)), e.boxes, THRESHOLD)
                out[name].append(crop_of(image, (b.x1, b.y1, b.x2, b.y2)))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", required=True)
    ap.add_argument("--synthetic", action="append", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-class", type=int, default=3)
    ap.add_argument("--on-templates", action="store_true",
                    help="add the real defects copied onto their own templates beside the real ones")
    ap.add_argument("--zoom", type=int, default=1, help="scale the sheet up (nearest) to show single pixels")
    a = ap.parse_args(argv)
    sets = [crops_by_class(Path(a.real), a.per_class)] + [crops_by_class(Path(s), a.per_class) for s in a.synthetic]
    labels = ["real"] + [Path(s).name for s in a.synthetic]
    if a.on_templates:
        sets.insert(1, crops_by_class(Path(a.real), a.per_class, on_templates=True))
        labels.insert(1, "real on its template")
    gap = np.full((TILE, 6), 255, np.uint8)
    rows = []
    for name in sets[0]:
        cells = []
        for crops in sets:
            got = crops.get(name, [])
            group = [got[i] if i < len(got) else np.full((TILE, TILE), 255, np.uint8) for i in range(a.per_class)]
            cells.append(np.concatenate([np.concatenate([g, np.full((TILE, 2), 255, np.uint8)], axis=1) for g in group], axis=1))
            cells.append(gap)
        row = np.concatenate(cells[:-1], axis=1)
        label = np.full((TILE, 90), 255, np.uint8)
        cv2.putText(label, name, (4, TILE // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 0, 1, cv2.LINE_AA)
        rows.append(np.concatenate([label, row], axis=1))
    head = np.full((22, rows[0].shape[1]), 255, np.uint8)
    group_w = a.per_class * (TILE + 2) + gap.shape[1]
    for i, lab in enumerate(labels):
        cv2.putText(head, lab, (90 + i * group_w + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1, cv2.LINE_AA)
    sheet = np.concatenate([head, *rows], axis=0)
    if a.zoom > 1:
        sheet = cv2.resize(sheet, None, fx=a.zoom, fy=a.zoom, interpolation=cv2.INTER_NEAREST)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(a.out, sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {a.out} ({sheet.shape[1]}x{sheet.shape[0]})", file=sys.stderr)


if __name__ == "__main__":
    main()
