"""Edge contrast of a BSData generator run's sets (issue 21: the defect's own edge, which
the seam score cannot see once every rectangle keeps a ring of untouched surface).

    python benchmarks/edge_contrast_bsdata.py WORK/n50/s0 --out benchmarks/results/edge_contrast_bsdata_s0_<rev>.json

WORK/n50/s0 is a `benchmarks/bsdata_generator.py` work folder: `real` (the N annotated
images, their outlines the reference) and the generated sets painted into them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import deeppcb  # noqa: E402  (git revision)

from midg.augment.metrics.edge_contrast import (edge_gap, real_edge_contrast, synthetic_edge_contrast,  # noqa: E402
                                                within_real_bracket)
from midg.datasets.layout import load_dataset  # noqa: E402

SETS = ("syn_midg_annotated", "syn_copypaste_annotated", "syn_copypaste_surface_annotated")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work", help="a bsdata_generator.py seed folder (WORK/n50/s0)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    work = Path(args.work)
    real = load_dataset(work / "real")
    ref = real_edge_contrast(real)
    ref_changed = real_edge_contrast(real, region="changed")
    rec = {"what": "edge contrast on BSData: the real outlines of the training images vs each generated set's "
                   "changed regions; edge_gap = |mean log synthetic - mean log real| (0: real-like edges); "
                   "real_changed: the real defects scored on what differs from the image filled over their "
                   "outlines, the other end of the real bracket (augment/metrics/edge_contrast.py)",
           "real": ref, "real_changed": ref_changed, "sets": {}, "command": "python benchmarks/edge_contrast_bsdata.py " + shlex.join(sys.argv[1:]),
           "device": "cpu", "date": dt.date.today().isoformat(), "git_rev": deeppcb.git_rev(),
           "git_dirty": deeppcb.git_dirty(), "data": "BSData, CC BY-SA 4.0 (read in place, never committed)"}
    for name in SETS:
        if (work / name / "meta.json").exists():
            s = synthetic_edge_contrast(load_dataset(work / name), real)
            rec["sets"][name] = {**s, "edge_gap": edge_gap(s, ref), "within_real_bracket": within_real_bracket(s, ref, ref_changed)}
    out = Path(args.out)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rec, indent=1) + "\n")
    tmp.replace(out)
    print(json.dumps({k: rec[k] for k in ("real", "real_changed", "sets")}, indent=1))


if __name__ == "__main__":
    main()
