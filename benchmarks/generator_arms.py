"""What the generator benchmarks share: train a generator, generate with it, score the sets
in one `midg evaluate-generator` call, write the record. Each step is kept in the work
folder, so a rerun skips what is done. Used by generator_init.py and generator_budget.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shlex
import sys
import time
from pathlib import Path

from deeppcb import ROOT, git_dirty, git_rev, midg_cmd, sh

from midg.datasets.atomic import atomic_write_json


def add_common_args(ap: argparse.ArgumentParser, n_images: int) -> None:
    ap.add_argument("--real", type=Path, required=True, help="canonical real dataset (train/test splits, normals)")
    ap.add_argument("--profile", default="bench-cpu", help="params profile of the generator and of generation")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--n-images", type=int, default=n_images, help="synthetic images per arm")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, required=True, help="kept work (per seed); a rerun skips what is done")
    ap.add_argument("--out", type=Path, required=True, help="the record (JSON)")


def train(args: argparse.Namespace, out: Path, steps: int, log: Path, *extra: str, params: Path | None = None) -> float:
    """`midg generator train` into `out` (resuming its train_state if there is one); seconds taken."""
    cmd = [*midg_cmd(), "generator", "train", str(args.real), "--out", str(out), "--profile", args.profile,
           "--params", str(params or args.params), "--steps", str(steps), "--seed", str(args.seed), *extra]
    if (out / "train_state").exists():
        cmd.append("--resume")
    t0 = time.time()
    sh(cmd, log)
    seconds = time.time() - t0
    log.with_suffix(".seconds").write_text(f"{seconds:.1f}\n")
    return seconds


def train_seconds(log: Path) -> float | None:
    """What `train` recorded beside its log (None if it did not run in this work folder)."""
    path = log.with_suffix(".seconds")
    return float(path.read_text()) if path.is_file() else None


def generate(args: argparse.Namespace, checkpoint: str | Path, out: Path, work: Path, method: str = "midg",
             *extra: str) -> Path:
    """`midg generate` into `out` (skipped when it is there); `extra`: more flags (--edges, --placement)."""
    if not (out / "meta.json").is_file():
        sh([*midg_cmd(), "generate", "--checkpoint", str(checkpoint), "--normals", str(args.real), "--out", str(out),
            "--n-images", str(args.n_images), "--seed", str(args.seed), "--method", method,
            "--profile", args.profile, "--params", str(args.params), *extra], work / f"generate_{out.name}.log")
    return out


def evaluate(args: argparse.Namespace, synthetic: list[str], work: Path) -> dict:
    """One `midg evaluate-generator` call over every synthetic set (the same classifiers' seed)."""
    path = work / "metrics.json"
    if not path.is_file():
        cmd = [*midg_cmd(), "evaluate-generator", "--real", str(args.real), "--out", str(path), "--seed", str(args.seed)]
        for s in synthetic:
            cmd += ["--synthetic", s]
        sh(cmd, work / "evaluate.log")
    return json.loads(path.read_text(encoding="utf-8"))


def write_record(args: argparse.Namespace, benchmark: str, arms: dict, metrics: dict, **fields) -> None:
    script = Path(sys.argv[0]).name
    record = {
        "benchmark": benchmark,
        "command": shlex.join(["python", f"benchmarks/{script}", *sys.argv[1:]]),
        "device": f"cpu ({platform.machine()}), generator threads per profile",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_revision": git_rev(), "git_dirty": git_dirty(),
        "profile": args.profile, "n_images": args.n_images, "seed": args.seed, "real": str(args.real), **fields,
        "arms": arms, "metrics": metrics,
    }
    atomic_write_json(args.out, record)
    for name, m in metrics["methods"].items():
        print(f"{name:28s} CAS {m['cas']['accuracy']:.3f}  C2ST {m['c2st']['accuracy']:.3f}  "
              f"seam {m['seam']['mean']:.2f}  FD {m['fd']:.2f}")
