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
import datetime as dt
import json
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

import yaml
from deeppcb import ROOT, git_dirty, git_rev, midg_cmd, sh

from midg.datasets.atomic import atomic_write_json, atomic_write_text


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
    cmd = [*midg_cmd(), "generator", "train", str(args.real), "--out", str(out), "--profile", args.profile,
           "--params", str(params_for(args, base, work)), "--steps", str(steps), "--seed", str(args.seed)]
    if shorter is not None and not out.exists():  # continue the shorter run of the same width
        shutil.copytree(work / f"gen_{shorter}_b{base}", out)
    if (out / "train_state").exists():
        cmd.append("--resume")
    t0 = time.time()
    sh(cmd, work / f"train_{steps}_b{base}.log")
    (work / f"train_{steps}_b{base}.seconds").write_text(f"{time.time() - t0:.1f}\n")
    return out


def generate(args: argparse.Namespace, checkpoint: Path, method: str, out: Path, work: Path) -> Path:
    if not (out / "meta.json").is_file():
        sh([*midg_cmd(), "generate", "--checkpoint", str(checkpoint), "--normals", str(args.real), "--out", str(out),
            "--n-images", str(args.n_images), "--seed", str(args.seed), "--method", method,
            "--profile", args.profile, "--params", str(args.params)], work / f"generate_{out.name}.log")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, required=True, help="canonical real dataset (train/test splits, normals)")
    ap.add_argument("--library", type=Path, default=None, help="defect library for a copy-paste reference arm")
    ap.add_argument("--profile", default="bench-cpu")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--points", nargs="+", required=True, help="STEPS:BASE_CHANNELS, e.g. 1500:8 6000:8 1500:16")
    ap.add_argument("--n-images", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    work = args.work / f"seed{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    points = sorted({parse_point(p) for p in args.points}, key=lambda p: (p[1], p[0]))
    arms: dict[str, dict] = {}
    for steps, base in points:
        shorter = max((s for s, b in points if b == base and s < steps), default=None)
        ckpt = train_point(args, steps, base, shorter, work)
        seconds = work / f"train_{steps}_b{base}.seconds"
        arms[f"midg_{steps}_b{base}"] = {
            "steps": steps, "base_channels": base, "continued_from": shorter, "checkpoint": str(ckpt),
            "train_seconds_this_leg": float(seconds.read_text()) if seconds.is_file() else None,
            "generator_metrics": json.loads((ckpt / "metrics.json").read_text(encoding="utf-8")),
            "synthetic": str(generate(args, ckpt, "midg", work / f"syn_midg_{steps}_b{base}", work))}
    if args.library is not None:
        arms["copypaste"] = {"checkpoint": str(args.library),
                             "synthetic": str(generate(args, args.library, "copypaste", work / "syn_copypaste", work))}
    metrics_path = work / "metrics.json"
    if not metrics_path.is_file():
        cmd = [*midg_cmd(), "evaluate-generator", "--real", str(args.real), "--out", str(metrics_path),
               "--seed", str(args.seed)]
        for arm in arms.values():
            cmd += ["--synthetic", arm["synthetic"]]
        sh(cmd, work / "evaluate.log")
    record = {
        "benchmark": "generator_budget",
        "command": shlex.join(["python", "benchmarks/generator_budget.py", *sys.argv[1:]]),
        "device": f"cpu ({platform.machine()}), threads per profile",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_revision": git_rev(), "git_dirty": git_dirty(),
        "profile": args.profile, "n_images": args.n_images, "seed": args.seed, "real": str(args.real),
        "arms": arms, "metrics": json.loads(metrics_path.read_text(encoding="utf-8")),
    }
    atomic_write_json(args.out, record)
    for name, m in record["metrics"]["methods"].items():
        print(f"{name:28s} CAS {m['cas']['accuracy']:.3f}  C2ST {m['c2st']['accuracy']:.3f}  "
              f"seam {m['seam']['mean']:.2f}  FD {m['fd']:.2f}")


if __name__ == "__main__":
    main()
