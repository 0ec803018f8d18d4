"""What generator budget reaches what? (generator issue: steps and width against C2ST and CAS)

Trains the MIDG generator on one real dataset at several (steps, base_channels) points of
one profile, generates the same number of images with each (same normals, same seed),
and scores them all, with an optional copy-paste arm as the reference, in one
`midg evaluate-generator` call. A longer point of the same width continues the shorter
one's run (`--resume --steps`): on CPU a resumed run equals an uninterrupted one (tested),
so the 1500-step point is the first 1500 steps of the 6000-step run. Work is kept per
step (a rerun skips what is done); the record lands as JSON.

    python benchmarks/generator_budget.py --real S0/real --library S0/library --profile bench-cpu \\
        --points 1500:8 6000:8 1500:16 --n-images 100 --seed 0 --work /tmp/gen_budget \\
        --out benchmarks/results/generator_budget_deeppcb.json
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import yaml
from generator_arms import add_common_args, evaluate, generate, train, train_seconds, write_record

from midg.datasets.atomic import atomic_write_text


def parse_point(text: str) -> tuple[int, int]:
    steps, _, base = text.partition(":")
    return int(steps), int(base)


def params_for(args: argparse.Namespace, base: int, work: Path) -> Path:
    """A copy of the params file whose profile trains `base` channels (the other settings kept)."""
    doc = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
    doc["profiles"][args.profile]["generator"]["base_channels"] = base
    out = work / f"params_base{base}.yaml"
    atomic_write_text(out, yaml.safe_dump(doc, sort_keys=False))
    return out


def train_point(args: argparse.Namespace, steps: int, base: int, shorter: int | None, work: Path) -> Path:
    out = work / f"gen_{steps}_b{base}"
    if (out / "metrics.json").is_file() and json.loads((out / "metrics.json").read_text())["step"] == steps:
        return out
    if shorter is not None and not out.exists():  # continue the shorter run of the same width
        shutil.copytree(work / f"gen_{shorter}_b{base}", out)
    train(args, out, steps, work / f"train_{steps}_b{base}.log", params=params_for(args, base, work))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, n_images=100)
    ap.add_argument("--library", type=Path, default=None, help="defect library for a copy-paste reference arm")
    ap.add_argument("--points", nargs="+", required=True, help="STEPS:BASE_CHANNELS, e.g. 1500:8 6000:8 1500:16")
    args = ap.parse_args()
    work = args.work / f"seed{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    points = sorted({parse_point(p) for p in args.points}, key=lambda p: (p[1], p[0]))
    arms: dict[str, dict] = {}
    for steps, base in points:
        shorter = max((s for s, b in points if b == base and s < steps), default=None)
        ckpt = train_point(args, steps, base, shorter, work)
        arms[f"midg_{steps}_b{base}"] = {
            "steps": steps, "base_channels": base, "continued_from": shorter, "checkpoint": str(ckpt),
            "train_seconds_this_leg": train_seconds(work / f"train_{steps}_b{base}.log"),
            "generator_metrics": json.loads((ckpt / "metrics.json").read_text(encoding="utf-8")),
            "synthetic": str(generate(args, ckpt, work / f"syn_midg_{steps}_b{base}", work))}
    if args.library is not None:
        arms["copypaste"] = {"checkpoint": str(args.library),
                             "synthetic": str(generate(args, args.library, work / "syn_copypaste", work, "copypaste"))}
    metrics = evaluate(args, [a["synthetic"] for a in arms.values()], work)
    write_record(args, "generator_budget", arms, metrics)


if __name__ == "__main__":
    main()
