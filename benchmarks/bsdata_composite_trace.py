"""What each composite makes of the same painted pit, on BSData: for the first defects MIDG
paints into a seed folder's annotated images, one row each, at about 2x native size: the canvas
window | the structure the pit was painted from | the painted crop (resized to the window) |
`composite: defect` (the threshold cut) | `composite: structure, resample: change`.

    python benchmarks/bsdata_composite_trace.py --seed-dir data/bench_bsdata/n50/s0 \\
        --out benchmarks/results/bsdata_composite_trace_s0.png

Both composites paste the very same painted crop (painting._paste called twice on copies),
so the rows differ only by how the crop comes back into the photograph.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import cv2
import numpy as np

import midg.augment.painting as painting
from midg.augment.crops import window_patch
from midg.augment.generate import generate_dataset
from midg.augment.generate_config import GenerateConfig

ZOOM, ROWS = 2, 6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed-dir", required=True, help="a finished bsdata_generator.py seed folder (WORK/n50/s0)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sdir = Path(args.seed_dir)
    rows: list[np.ndarray] = []
    paste = painting._paste

    def both(plan, painted, d, cfg):  # the trace: each composite on a copy, then the run's own
        if len(rows) < ROWS:
            x1, y1, x2, y2 = d.window
            tiles = []
            for variant in (dict(composite="defect", resample="image"), dict(composite="structure", resample="change")):
                copy = dataclasses.replace(plan, result=plan.result.copy())
                paste(copy, painted, d, dataclasses.replace(cfg, **variant, edge_feather=2))
                tiles.append(painting.window_pixels(copy.result, d.window))
            side = x2 - x1
            structure = (d.structure[0] * 255).astype(np.uint8)
            structure = cv2.cvtColor(cv2.resize(structure, (side, side), interpolation=cv2.INTER_NEAREST),
                                     cv2.COLOR_GRAY2RGB)
            row = [painting.window_pixels(plan.image, d.window), structure, window_patch(painted, side), *tiles]
            big = [cv2.resize(t, (side * ZOOM, side * ZOOM), interpolation=cv2.INTER_NEAREST) for t in row]
            rows.append(cv2.resize(np.concatenate(big, 1), (5 * 112, 112), interpolation=cv2.INTER_AREA))
        paste(plan, painted, d, cfg)

    painting._paste = both
    with tempfile.TemporaryDirectory() as tmp:
        generate_dataset(sdir / "generator", sdir / "real", Path(tmp) / "syn", n_images=8, seed=args.seed,
                         batch_size=16, progress=False, config=GenerateConfig(batch_size=16, levels="off"))
    sheet = np.concatenate(rows, 0)
    out = Path(args.out)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    tmp_out = out.with_suffix(".tmp.png")
    tmp_out.write_bytes(buf.tobytes())
    tmp_out.replace(out)
    print(f"wrote {out}: {len(rows)} pits")


if __name__ == "__main__":
    main()
