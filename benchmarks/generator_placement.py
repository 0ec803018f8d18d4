"""Where a defect goes: the conductor-share sampler against matched placement (generator issue).

One trained MIDG generator and its defect library, the same normals and seed; five sets
scored in one `midg evaluate-generator` call:

    midg_library           real structures (--edges library) at the sampler's places (the earlier best)
    midg_library_matched   real structures where the normal's traces match the real defect's surface
    midg_generated_matched the edge block's own structure, at matched places
    copypaste              the baseline as the protocol runs it (the sampler's places)
    copypaste_matched      the baseline given the same matched placement (is the gain placement alone?)

    python benchmarks/generator_budget.py ... --points 1500:8 6000:8 --work /tmp/gen_budget   # trains the generator
    python benchmarks/generator_placement.py --real S0/real --generator /tmp/gen_budget/seed0/gen_6000_b8 \\
        --profile bench-cpu --n-images 100 --seed 0 --work /tmp/gen_placement \\
        --out benchmarks/results/generator_placement_deeppcb.json

Work is kept (a rerun skips the sets that are there); the record lands as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from generator_arms import add_common_args, evaluate, generate, write_record

ARMS = {  # name: (method, extra flags)
    "midg_library": ("midg", ("--edges", "library", "--placement", "conductor")),
    "midg_library_matched": ("midg", ("--edges", "library", "--placement", "matched")),
    "midg_generated_matched": ("midg", ("--edges", "generated", "--placement", "matched")),
    "copypaste": ("copypaste", ("--placement", "conductor")),
    "copypaste_matched": ("copypaste", ("--placement", "matched")),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, n_images=100)
    ap.add_argument("--generator", type=Path, required=True, help="a trained MIDG checkpoint (its library is used too)")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    args = ap.parse_args()
    work = args.work / f"seed{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    record = json.loads((args.generator / "metrics.json").read_text(encoding="utf-8"))
    arms = {}
    for name in args.arms:
        method, extra = ARMS[name]
        arms[name] = {"method": method, "flags": list(extra),
                      "synthetic": str(generate(args, args.generator, work / f"syn_{name}", work, method, *extra))}
    metrics = evaluate(args, [a["synthetic"] for a in arms.values()], work)
    write_record(args, "generator_placement", arms, metrics, generator=str(args.generator),
                 generator_step=record.get("step"))


if __name__ == "__main__":
    main()
