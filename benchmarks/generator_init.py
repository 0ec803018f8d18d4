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

from generator_arms import add_common_args, evaluate, generate, train, train_seconds, write_record

ARMS = ("scratch", "init", "shipped")


def train_arm(args: argparse.Namespace, arm: str, work) -> str:
    """The checkpoint an arm generates with (the shipped one is not trained here)."""
    if arm == "shipped":
        return "deeppcb"
    out = work / f"gen_{arm}"
    if not (out / "metrics.json").is_file():
        train(args, out, args.steps, work / f"train_{arm}.log", *(["--init", "deeppcb"] if arm == "init" else []))
    return str(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, n_images=120)
    ap.add_argument("--steps", type=int, required=True, help="generator steps of the scratch and init arms")
    args = ap.parse_args()
    work = args.work / f"seed{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    arms = {}
    for arm in ARMS:
        checkpoint = train_arm(args, arm, work)
        arms[arm] = {"checkpoint": checkpoint, "train_seconds": train_seconds(work / f"train_{arm}.log") or 0.0,
                     "synthetic": str(generate(args, checkpoint, work / f"syn_{arm}", work))}
    metrics = evaluate(args, [a["synthetic"] for a in arms.values()], work)
    write_record(args, "generator_init", arms, metrics, steps=args.steps)


if __name__ == "__main__":
    main()
