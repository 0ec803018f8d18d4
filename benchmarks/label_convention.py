"""Does the synthetic labelling convention reproduce DeepPCB's annotators? (augment/metrics/fidelity.py)

For every annotated defect of a paired real set, the IoU between the annotator's box and
what the generator's `box_style: learned` rule would draw around the same changed pixels
(tight box grown by the class's median margin from a checkpoint's stats.json), and the
tight box alone. `box_style: rect` needs no check here: it is the rectangle, drawn from the
real boxes' sizes, that the defect was painted (or pasted, scaled) into.

    python benchmarks/label_convention.py --real data/bench_prepare/deeppcb_full \\
        --checkpoint data/bench/s0/generator --out benchmarks/results/label_convention_deeppcb.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import subprocess
import sys
from pathlib import Path

from midg.augment.library import load_stats
from midg.augment.metrics.fidelity import label_convention
from midg.datasets.atomic import atomic_write_json
from midg.datasets.layout import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", required=True, help="a canonical dataset with aligned templates (DeepPCB import)")
    ap.add_argument("--checkpoint", required=True, help="generator or library folder whose stats.json holds box_margin")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    stats = load_stats(Path(args.checkpoint))
    margins = {name: per.get("box_margin") for name, per in stats["per_class"].items()}
    result = label_convention(load_dataset(Path(args.real)), margins)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip())
    record = {"command": shlex.join(["python", "benchmarks/label_convention.py", *sys.argv[1:]]),
              "device": "CPU (no training: pixel comparisons only)", "date": dt.date.today().isoformat(),
              "git_rev": rev, "git_dirty": dirty, "real": args.real, "checkpoint": args.checkpoint,
              "margins": margins, **result}
    atomic_write_json(Path(args.out), record)
    for style in ("learned", "tight"):
        r = result[style]
        print(f"{style:8s} n={r['n']} median IoU {r['median_iou']:.2f}, share IoU>=0.5 {r['share_iou_50']:.2f}")
    for name, per in sorted(result["per_class"].items()):
        r = per["learned"]
        print(f"  {name:10s} learned median {r['median_iou']:.2f} share>=0.5 {r['share_iou_50']:.2f} (n={r['n']})")


if __name__ == "__main__":
    main()
