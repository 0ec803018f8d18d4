"""Issue 21's generator targets on BSData, in one resumable command: the seed's N training
images cut from the bundle, MIDG's generator trained on them (and the normals), the copy-paste
library, S synthetic images per method on the annotated canvas (the arms `bsdata.py run`
trains detectors on, so the cells reuse them), plus copy-paste placed by MIDG's rule
(surface) to tell painting from placement, `midg evaluate-generator` over all three, and one
results JSON with the targets checked (against each copy-paste) and the revision named.

    python benchmarks/bsdata.py prepare --out .devdata/bsdata
    python benchmarks/bsdata_generator.py --bundle .devdata/bsdata --work data/bench_bsdata \
        --seed 0 --n-images 50 --out benchmarks/results/generator_bsdata_s0_<rev>.json

Targets (issue 21): MIDG's C2ST at most 0.75 and below copy-paste's; its seam score at most
copy-paste's and within 1.2x of the real reference; its FD below copy-paste's. Each arm's
summary also carries its edge contrast (mean log) and gap to the real outlines' (from
`midg evaluate-generator`: the look at a defect's own edge that the seam score lost once
every defect keeps a ring of untouched surface). Rerunning the
command skips every finished step (the generator resumes from its last save).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bsdata  # noqa: E402  (the seed's subset of the bundle)
import deeppcb  # noqa: E402  (generator, library and synthetic sets of one seed; git revision)

ARMS = ("copypaste_annotated", "midg_annotated")  # the canvas rule: paint into the annotated images


def targets(summary: dict, baseline: str = "copypaste_annotated") -> dict:
    """Each of issue 21's generator targets with its numbers and whether it holds, against
    the copy-paste arm `baseline`."""
    midg, cp, real = summary["midg_annotated"], summary[baseline], summary["real_reference"]
    return {
        "c2st_at_most_0.75": {"midg": midg["c2st"], "met": midg["c2st"] is not None and midg["c2st"] <= 0.75},
        "c2st_below_copypaste": {"midg": midg["c2st"], "copypaste": cp["c2st"],
                                 "met": None not in (midg["c2st"], cp["c2st"]) and midg["c2st"] < cp["c2st"]},
        "seam_at_most_copypaste": {"midg": midg["seam"], "copypaste": cp["seam"],
                                   "met": None not in (midg["seam"], cp["seam"]) and midg["seam"] <= cp["seam"]},
        "seam_within_1.2x_real": {"midg": midg["seam"], "real": real["seam"],
                                  "met": None not in (midg["seam"], real["seam"]) and midg["seam"] <= 1.2 * real["seam"]},
        "fd_below_copypaste": {"midg": midg["fd"], "copypaste": cp["fd"],
                               "met": None not in (midg["fd"], cp["fd"]) and midg["fd"] < cp["fd"]},
    }


def summarise(metrics: dict, arms: dict[str, Path]) -> dict:
    """The figures the targets read, per arm and for the real reference (real vs real)."""
    by_path = {str(Path(m["path"]).resolve()): m for m in metrics["methods"].values()}
    out = {}
    for arm, path in arms.items():
        m = by_path[str(path.resolve())]
        out[arm] = {"c2st": m["c2st"].get("accuracy"), "c2st_ci95": m["c2st"].get("ci95"), "fd": m.get("fd"),
                    "kid": m.get("kid"), "seam": m["seam"].get("mean"), "seam_median": m["seam"].get("median"),
                    "defects": m["crops"].get("n"), "edge_contrast": (m.get("edge_contrast") or {}).get("mean_log"),
                    "edge_gap": (m.get("edge_contrast") or {}).get("edge_gap")}
    ref = metrics["reference"]
    out["real_reference"] = {"c2st": ref["c2st"].get("accuracy"), "fd": ref.get("fd"), "seam": ref["seam"].get("mean"),
                             "edge_contrast": (ref.get("edge_contrast") or {}).get("mean_log")}
    return out


def held_out_view(bundle: Path, seed: int, n_images: int, work: Path) -> Path:
    """What `midg evaluate-generator` judges the seed's generator against: its N training
    images as the train split (the canvases the synthetic sets were painted into), and as
    val every annotated image the generator never saw (the bundle's val and the rest of
    its train split; never test): 245 pits at N = 50 where the subset has 50, so FD/KID and
    most of C2ST's real side are defects copy-paste has not copied (WORK/n<N>/s<seed>/real_heldout)."""
    from midg.datasets.layout import load_dataset

    out = deeppcb.cell_dir(work, n_images, seed) / "real_heldout"
    if (out / "meta.json").exists():
        return out
    ds = load_dataset(bundle)
    names = set(ds.meta["nested_subsets"][str(n_images)][str(seed)])
    return bsdata.write_view(ds, out, "bsdata-heldout", seed, len(names),
                             lambda split, name: "train" if split == "train" and name in names else "val")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=str(ROOT / ".devdata/bsdata"))
    ap.add_argument("--work", default=str(ROOT / "data/bench_bsdata"))
    ap.add_argument("--profile", default="bsdata")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-images", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True, help="results JSON (benchmarks/results/generator_bsdata_*.json)")
    ap.add_argument("--reference", choices=("heldout", "subset"), default="heldout",
                    help="the real defects judged against: heldout (the N training images plus every annotated image "
                         "the generator never saw, test excepted; the default since 2026-12-07) or subset (the N images "
                         "and the bundle's val: the tables before)")
    args = ap.parse_args()
    command = "python benchmarks/bsdata_generator.py " + shlex.join(sys.argv[1:])
    rev, dirty = deeppcb.git_rev(), deeppcb.git_dirty()  # read at the start: the code that made the figures
    bp = deeppcb.bench_params(Path(args.params), args.profile)
    work = Path(args.work)
    real = bsdata.seed_subset(Path(args.bundle), args.seed, args.n_images, work)
    args.conditions = list(ARMS)
    t0 = time.time()
    prepared = deeppcb.prepare_seed(args, args.seed, bp, args.n_images)  # generator, library, both synthetic sets
    sdir = deeppcb.cell_dir(work, args.n_images, args.seed)
    arms = {arm: prepared[arm][1] for arm in ARMS}
    # copy-paste placed by MIDG's rule as well (its default is the sampler's): the painting apart from the placement
    same_place = sdir / "syn_copypaste_surface_annotated"
    if not deeppcb.done(same_place):
        deeppcb.sh(deeppcb.midg_cmd() + [
            "generate", "--checkpoint", str(sdir / "library"), "--normals", str(real), "--out", str(same_place),
            "--n-images", str(bp.get("synthetic_images", 300)), "--seed", str(args.seed), "--method", "copypaste",
            "--placement", "surface", "--canvas", "annotated", "--device", args.device, "--profile", args.profile,
            "--params", str(args.params)], sdir / "prepare.log")
        deeppcb.mark_done(same_place)
    arms["copypaste_surface_annotated"] = same_place
    judge = held_out_view(Path(args.bundle), args.seed, args.n_images, work) if args.reference == "heldout" else real
    metrics_path = sdir / ("generator_metrics.json" if args.reference == "subset" else "generator_metrics_heldout.json")
    if not metrics_path.exists():
        cmd = deeppcb.midg_cmd() + ["evaluate-generator", "--real", str(judge), "--out", str(metrics_path),
                                    "--seed", str(args.seed), "--checkpoint", str(sdir / "generator"),
                                    "--device", args.device]
        for path in arms.values():
            cmd += ["--synthetic", str(path)]
        deeppcb.sh(cmd, sdir / "prepare.log")
    metrics = json.loads(metrics_path.read_text())
    summary = summarise(metrics, arms)
    state = json.loads((sdir / "generator" / "config.json").read_text()) if (sdir / "generator" / "config.json").exists() else {}
    result = {
        "what": f"MIDG vs copy-paste on BSData, N = {args.n_images}, seed {args.seed}: the generator trained only on "
                f"those {args.n_images} images and the normals; {bp.get('synthetic_images', 300)} images per method "
                "painted into the annotated training images",
        "summary": summary, "targets": targets(summary),
        "targets_vs_copypaste_same_placement": targets(summary, "copypaste_surface_annotated"),
        "reference": {"kind": args.reference, "path": str(judge)},
        "generator": {"checkpoint": str(sdir / "generator"), "profile": args.profile, "step": state.get("step"),
                      "train_seconds": state.get("train_seconds"), "config": state.get("generator"),
                      # a generator copied from another revision's run says so beside its weights
                      **({"provenance": (sdir / "generator" / "PROVENANCE.txt").read_text().strip()}
                         if (sdir / "generator" / "PROVENANCE.txt").exists() else {})},
        "command": command, "device": args.device, "date": dt.date.today().isoformat(), "git_rev": rev,
        "git_dirty": dirty, "seconds": round(time.time() - t0, 1), "data": "BSData, CC BY-SA 4.0 (read in place, never committed)",
        "metrics": metrics,
    }
    out = Path(args.out)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)
    print(json.dumps({"summary": summary, "targets": {k: v["met"] for k, v in result["targets"].items()},
                      "targets_vs_copypaste_same_placement":
                          {k: v["met"] for k, v in result["targets_vs_copypaste_same_placement"].items()}}, indent=1))


if __name__ == "__main__":
    main()
