"""One generation choice on BSData, measured without retraining: a finished seed folder of
`bsdata_generator.py` (its generator, the N images, the held-out pits), MIDG's synthetic set
made again with some `generate` keys changed, and `midg evaluate-generator` of that set
against the same held-out reference, so its C2ST, FD, KID and edge contrast read beside the
seed's JSON (same generator, same reference, same classifier seed).

    python benchmarks/bsdata_variant.py --seed-dir data/bench_bsdata/n50/s0 --name soft \\
        --set composite=structure --set resample=change --set edge_feather=2 \\
        --out benchmarks/results/generator_bsdata_s0_variant_soft_<rev>.json

The variant's params file (the profile's `generate` section with the keys replaced) is
written beside the set, and rerunning skips the finished set and metrics.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_steps import bench_params, done, git_dirty, git_rev, mark_done, midg_cmd, sh  # noqa: E402
from bsdata_generator import summarise  # noqa: E402


def parse_setting(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as YAML (2 -> int, structure -> str, null -> None)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set needs KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def variant_params(params: Path, profile: str, settings: dict, out: Path) -> Path:
    """A copy of `params` whose `profile`'s generate section has `settings` on top."""
    doc = yaml.safe_load(params.read_text())
    section = dict(doc["profiles"][profile].get("generate") or {})
    section.update(settings)
    doc["profiles"][profile]["generate"] = section
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.replace(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed-dir", required=True, help="a finished bsdata_generator.py seed folder (WORK/n50/s0)")
    ap.add_argument("--name", required=True, help="the variant's name (its set: syn_midg_<name>_annotated)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a generate key to change")
    ap.add_argument("--profile", default="bsdata")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    command = "python benchmarks/bsdata_variant.py " + shlex.join(sys.argv[1:])
    rev, dirty = git_rev(), git_dirty()
    settings = dict(parse_setting(s) for s in args.set)
    sdir = Path(args.seed_dir)
    for need in ("generator", "real", "real_heldout"):
        if not (sdir / need).is_dir():
            raise SystemExit(f"{sdir / need}: missing; run benchmarks/bsdata_generator.py for this seed first")
    bp = bench_params(Path(args.params), args.profile)
    syn = sdir / f"syn_midg_{args.name}_annotated"
    params = variant_params(Path(args.params), args.profile, settings, sdir / f"params_{args.name}.yaml")
    t0 = time.time()
    if not done(syn):
        sh(midg_cmd() + ["generate", "--checkpoint", str(sdir / "generator"), "--normals", str(sdir / "real"),
                         "--out", str(syn), "--n-images", str(bp.get("synthetic_images", 300)), "--seed", str(args.seed),
                         "--method", "midg", "--canvas", "annotated", "--device", args.device,
                         "--profile", args.profile, "--params", str(params)], sdir / f"variant_{args.name}.log")
        mark_done(syn)
    metrics_path = sdir / f"generator_metrics_heldout_{args.name}.json"
    if not metrics_path.exists():
        sh(midg_cmd() + ["evaluate-generator", "--real", str(sdir / "real_heldout"), "--synthetic", str(syn),
                         "--out", str(metrics_path), "--seed", str(args.seed), "--device", args.device],
           sdir / f"variant_{args.name}.log")
    metrics = json.loads(metrics_path.read_text())
    result = {
        "what": f"MIDG's synthetic set on BSData with generate {settings} (the seed folder's generator, "
                "not retrained), judged against the held-out pits of that seed",
        "settings": settings, "summary": summarise(metrics, {"midg_annotated": syn}),
        "seed_dir": str(sdir), "command": command, "device": args.device, "date": dt.date.today().isoformat(),
        "git_rev": rev, "git_dirty": dirty, "seconds": round(time.time() - t0, 1),
        "data": "BSData, CC BY-SA 4.0 (read in place, never committed)", "metrics": metrics,
    }
    out = Path(args.out)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
