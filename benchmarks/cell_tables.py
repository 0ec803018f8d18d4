"""Tables and figures from the benchmark's results JSONs (benchmarks/deeppcb.py and
benchmarks/bsdata.py cells): per detector and N, each arm's mean over seeds and its paired
per-seed difference to real-only (and copy-paste, Poisson) with a 95 % t interval; a bar
plot per file; the data-efficiency figure, mAP against N.

    python benchmarks/cell_tables.py table benchmarks/results/deeppcb_curve_bench-cpu.json [--plot OUT.png]
    python benchmarks/cell_tables.py curve benchmarks/results/deeppcb_curve_bench-cpu.json --out OUT.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling deeppcb.py

from deeppcb import CONDITIONS, load_results  # noqa: E402

from midg.pipelines.report_curve import paired_interval  # noqa: E402  (the report's paired t interval, one table of quantiles)


def paired_difference(by: dict, cond: str, other: str, key: str = "map50") -> str:
    """Mean of the per-seed differences (points) with its 95 % t interval, over the seeds both have."""
    import numpy as np

    seeds = sorted(s for (c, s) in by if c == cond and (other, s) in by)
    if cond == other or not seeds:
        return "–"
    d = np.array([by[cond, s][key] - by[other, s][key] for s in seeds]) * 100
    mean, ci = paired_interval(list(d))
    if ci is None:
        return f"{mean:+.1f} (n=1)"
    return f"{mean:+.1f} [{ci[0]:+.1f}, {ci[1]:+.1f}] (n={len(d)})"


def table(args: argparse.Namespace) -> None:
    import numpy as np

    for path in args.results:
        cells = load_results(Path(path))
        if not cells:
            continue
        revs = sorted({c.get("git_rev", "?") + ("+dirty" if c.get("git_dirty") else "") for c in cells})
        print(f"\n### {path} (profile {cells[0]['profile']}, device {cells[0]['device']}, revision(s) {', '.join(revs)})\n")
        print("| detector | N | condition | seeds | mAP50 mean ± sd | mAP50-95 mean ± sd | DeepPCB AP | best step | cell min | "
              "Δ mAP50 vs real [95 % CI] | Δ vs copypaste (same canvas) | Δ vs poisson (same canvas) | "
              "Δ vs learned boxes |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for det, n in sorted({(c["detector"], c["n_images"]) for c in cells}):
            by = {(c["condition"], c["seed"]): c for c in cells if c["detector"] == det and c["n_images"] == n}
            for cond in CONDITIONS:
                seeds = sorted(s for (cc, s) in by if cc == cond)
                if not seeds:
                    continue
                row = [by[cond, s] for s in seeds]
                m50 = np.array([c["map50"] for c in row]) * 100
                m95 = np.array([c["map50_95"] for c in row]) * 100
                f = [c.get("deeppcb_ap") for c in row]  # DeepPCB's own AP (its F needs a score threshold)
                f_txt = f"{np.mean(f) * 100:.1f}" if all(v is not None for v in f) else "–"
                best = ",".join(str(c.get("best_step")) for c in row)
                minutes = np.mean([c.get("cell_seconds") or 0 for c in row]) / 60
                sd = lambda a: a.std(ddof=1) if len(a) > 1 else 0  # noqa: E731
                canvas = "_annotated" if "_annotated" in cond else ""  # baselines on the same canvas
                print(f"| {det} | {n} | {cond} | {','.join(map(str, seeds))} | {m50.mean():.1f} ± {sd(m50):.1f} "
                      f"| {m95.mean():.1f} ± {sd(m95):.1f} | {f_txt} | {best} | {minutes:.0f} "
                      f"| {paired_difference(by, cond, 'real')} | {paired_difference(by, cond, 'copypaste' + canvas)} "
                      f"| {paired_difference(by, cond, 'poisson' + canvas)} "
                      f"| {paired_difference(by, cond, cond.removesuffix('_rect')) if cond.endswith('_rect') else '–'} |")
    if args.plot:
        plot(args.results, Path(args.plot))


def plot(paths: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(paths), figsize=(6 * len(paths), 4), squeeze=False)
    for ax, path in zip(axes[0], paths):
        cells = load_results(Path(path))
        dets = sorted({c["detector"] for c in cells})
        conds = [c for c in CONDITIONS if any(cell["condition"] == c for cell in cells)]  # no bar for an arm not run
        for i, cond in enumerate(conds):
            means, sds = [], []
            for det in dets:
                v = [c["map50"] * 100 for c in cells if c["detector"] == det and c["condition"] == cond]
                means.append(np.mean(v) if v else np.nan)
                sds.append(np.std(v, ddof=1) if len(v) > 1 else 0)
            width = 0.8 / len(conds)
            n_seeds = len({c["seed"] for c in cells if c["condition"] == cond})
            ax.bar(np.arange(len(dets)) + (i - (len(conds) - 1) / 2) * width, means, width, yerr=sds,
                   label=f"{cond} ({n_seeds} seed{'s' if n_seeds > 1 else ''})", capsize=3)
        ax.set_xticks(np.arange(len(dets)), dets)
        ax.set_ylabel("mAP50 (%) on the 500 test images")
        prof = cells[0]["profile"] if cells else ""
        ax.set_title(f"{Path(path).stem}: DeepPCB, N=100, profile {prof}\n{cells[0]['device'] if cells else ''}", fontsize=9)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"plot written to {out}")


def curve_points(cells: list[dict], detector: str, key: str = "map50") -> dict[str, list[dict]]:
    """Per arm, per N: the mean over seeds and, for synthetic arms, the paired difference to
    real-only with its 95 % t interval (points), over the seeds both have."""
    import numpy as np

    out: dict[str, list[dict]] = {}
    mine = [c for c in cells if c["detector"] == detector]
    for cond in CONDITIONS:
        for n in sorted({c["n_images"] for c in mine if c["condition"] == cond}):
            by = {(c["condition"], c["seed"]): c for c in mine if c["n_images"] == n}
            vals = np.array([by[cond, s][key] for (cc, s) in by if cc == cond]) * 100
            seeds = sorted(s for (cc, s) in by if cc == cond and ("real", s) in by)
            d = np.array([by[cond, s][key] - by["real", s][key] for s in seeds]) * 100
            ci = paired_interval(list(d))[1] if len(d) else None
            out.setdefault(cond, []).append({
                "n": n, "mean": float(vals.mean()), "seeds": len(vals),
                "delta": float(d.mean()) if cond != "real" and len(d) else None,
                "delta_ci": ci if cond != "real" else None})
    return out


def curve(args: argparse.Namespace) -> None:
    """The data-efficiency figure: mAP50 and mAP50-95 against N, one line per arm, and each
    synthetic arm's paired difference to real-only with its 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c for path in args.results for c in load_results(Path(path))]
    dets = sorted({c["detector"] for c in cells})
    fig, axes = plt.subplots(len(dets), 3, figsize=(15, 4 * len(dets)), squeeze=False)
    revs = sorted({c.get("git_rev", "?") + ("+dirty" if c.get("git_dirty") else "") for c in cells})
    summary = {}
    for row, det in zip(axes, dets):
        for ax, key, label in ((row[0], "map50", "mAP50"), (row[1], "map50_95", "mAP50-95")):
            points = curve_points(cells, det, key)
            summary.setdefault(det, {})[key] = points
            for cond, pts in points.items():
                ax.plot([p["n"] for p in pts], [p["mean"] for p in pts], marker="o",
                        label=f"{cond} (seeds: {'/'.join(str(p['seeds']) for p in pts)})")
            ax.set_xscale("log")
            ax.set_xlabel("N annotated training images")
            ax.set_ylabel(f"{label} (%) on the test split")
            ax.set_title(f"{det}: {label} against N (mean over seeds)", fontsize=9)
            ax.legend(fontsize=7)
        ax = row[2]
        for i, (cond, pts) in enumerate(summary[det]["map50"].items()):
            if cond == "real":
                continue
            xs = [p["n"] * (1 + 0.04 * (i - 2)) for p in pts if p["delta"] is not None]
            ys = [p["delta"] for p in pts if p["delta"] is not None]
            lo = [p["delta"] - p["delta_ci"][0] if p["delta_ci"] else 0 for p in pts if p["delta"] is not None]
            hi = [p["delta_ci"][1] - p["delta"] if p["delta_ci"] else 0 for p in pts if p["delta"] is not None]
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=cond)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("N annotated training images")
        ax.set_ylabel("Δ mAP50 vs real-only (points), paired 95 % CI")
        ax.set_title(f"{det}: what the synthetic images add", fontsize=9)
        ax.legend(fontsize=7)
    prof = {c["profile"] for c in cells}
    dev = {c["device"] for c in cells}
    fig.suptitle(f"DeepPCB data efficiency: profile {', '.join(sorted(prof))}, device {', '.join(sorted(dev))}, "
                 f"revision {', '.join(revs)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(json.dumps(summary, indent=1))
    print(f"figure written to {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table")
    t.add_argument("results", nargs="+")
    t.add_argument("--plot", default=None)
    cv = sub.add_parser("curve", help="mAP against N, one line per arm (the data-efficiency figure)")
    cv.add_argument("results", nargs="+")
    cv.add_argument("--out", required=True)
    args = ap.parse_args()
    {"table": table, "curve": curve}[args.cmd](args)


if __name__ == "__main__":
    main()
