"""Does starting from the shipped DeepPCB generator help on other data? (generator issue)

Three arms on one real dataset, the same network (the shipped one's: the profile must
match it), the same step budget, normals, image count and seeds:

- `scratch`: `midg generator train DATA --steps S` from random weights;
- `init`: `midg generator train DATA --steps S --init deeppcb` (fine-tuned);
- `shipped`: `midg generate --checkpoint deeppcb` as it is, no training on DATA.

Each arm generates the same number of images on DATA's normals, and one
`midg evaluate-generator` call scores all three against DATA (C2ST, CAS, seams, ...).
Work is kept per step (a rerun skips what is done), the record lands as JSON.

    python benchmarks/generator_init.py --real data/datasets/real --profile bench-cpu --steps 500 \\
        --n-images 120 --seed 0 --work /tmp/gen_init --out benchmarks/results/generator_init_demo.json
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

from deeppcb import git_dirty, git_rev, midg_cmd, sh

from midg.datasets.atomic import atomic_write_json

ARMS = ("scratch", "init", "shipped")


def train_arm(args: argparse.Namespace, arm: str, work: Path) -> tuple[str, float]:
    """The checkpoint an arm generates with, and the seconds its training took (0: none)."""
    if arm == "shipped":
        return "deeppcb", 0.0
    out = work / f"gen_{arm}"
    done = out / "metrics.json"
    if not done.is_file():
        cmd = [*midg_cmd(), "generator", "train", str(args.real), "--out", str(out), "--profile", args.profile,
               "--steps", str(args.steps), "--seed", str(args.seed)]
        if args.params:
            cmd += ["--params", str(args.params)]
        if arm == "init":
            cmd += ["--init", "deeppcb"]
        t0 = time.time()
        sh(cmd, work / f"train_{arm}.log")
        (work / f"train_{arm}.seconds").write_text(f"{time.time() - t0:.1f}\n")
    seconds = work / f"train_{arm}.seconds"
    return str(out), float(seconds.read_text()) if seconds.is_file() else float("nan")


def generate_arm(args: argparse.Namespace, arm: str, checkpoint: str, work: Path) -> Path:
    out = work / f"syn_{arm}"
    if not (out / "meta.json").is_file():
        cmd = [*midg_cmd(), "generate", "--checkpoint", checkpoint, "--normals", str(args.real), "--out", str(out),
               "--n-images", str(args.n_images), "--seed", str(args.seed), "--profile", args.profile]
        if args.params:
            cmd += ["--params", str(args.params)]
        sh(cmd, work / f"generate_{arm}.log")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", type=Path, required=True, help="canonical real dataset (train and test splits, normals)")
    ap.add_argument("--profile", default="bench-cpu", help="params profile; its generator network must be the shipped one's")
    ap.add_argument("--params", type=Path, default=None)
    ap.add_argument("--steps", type=int, required=True, help="generator steps of the scratch and init arms")
    ap.add_argument("--n-images", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    work = args.work / f"seed{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    arms = {}
    for arm in ARMS:
        checkpoint, seconds = train_arm(args, arm, work)
        arms[arm] = {"checkpoint": checkpoint, "train_seconds": round(seconds, 1),
                     "synthetic": str(generate_arm(args, arm, checkpoint, work))}
    metrics_path = work / "metrics.json"
    if not metrics_path.is_file():
        cmd = [*midg_cmd(), "evaluate-generator", "--real", str(args.real), "--out", str(metrics_path),
               "--seed", str(args.seed)]
        for arm in ARMS:
            cmd += ["--synthetic", arms[arm]["synthetic"]]
        sh(cmd, work / "evaluate.log")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    record = {
        "benchmark": "generator_init",
        "command": shlex.join(["python", "benchmarks/generator_init.py", *sys.argv[1:]]),
        "device": f"cpu ({platform.machine()}, {platform.processor() or 'unknown'}), generator threads per profile",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_revision": git_rev(), "git_dirty": git_dirty(),
        "profile": args.profile, "steps": args.steps, "n_images": args.n_images, "seed": args.seed,
        "real": str(args.real), "arms": arms, "metrics": metrics,
    }
    atomic_write_json(args.out, record)
    print(json.dumps({arm: {k: v for k, v in arms[arm].items() if k != "synthetic"} for arm in ARMS}, indent=1))


if __name__ == "__main__":
    main()
