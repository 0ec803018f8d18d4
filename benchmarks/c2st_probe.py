"""Where does C2ST find its tell? The classifier two-sample test of `midg evaluate-generator`
(the same native crops, classifier and seed), run again on parts of each crop and with
another split:

- full: evaluate-generator's C2ST as it is;
- centre: only the centre CENTRE_PX square of each crop (the defect and its rim), the
  rest set to the crop's mean colour;
- context: the same crops with that centre square blanked instead (the surroundings only:
  where the defect sits, how the surface around it looks);
- grouped (with --group-regex): the classifier's train and test halves hold disjoint groups
  (a real crop's group from its file name, a synthetic one's from the image it was painted
  into, meta.json `canvases` / `defects[].normal`), averaged over --group-reps draws. On
  BSData a pit is photographed again and again along its wear sequence; a random split
  lets the classifier learn those pits by heart.

- with --sheet-dir: per synthetic set a PNG of the full test's held-out crops as the
  classifier ranked them: the synthetic crops it is surest are synthetic, the synthetic
  crops it took for real, and the real crops it took for synthetic (telling_crops).

    python benchmarks/c2st_probe.py --real WORK/n50/s0/real_heldout \\
        --synthetic WORK/n50/s0/syn_midg_annotated WORK/n50/s0/syn_copypaste_annotated \\
        --group-regex '^[^_]+_[^_]+_([^_]+_[^_]+)_' --out R.json [--sheet-dir D]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_steps import git_dirty, git_rev  # noqa: E402

CENTRE_PX = 32  # of the 64 px native crop: a median BSData pit (~28 px at 640) and its rim


def blank(x: np.ndarray, keep: str, centre_px: int = CENTRE_PX) -> np.ndarray:
    """(N, C, S, S) crops with one part set to the mean colour of the part kept: keep
    "centre" (the centre_px square) or "context" (all but it). The kept part's own mean, so
    nothing of the blanked part leaks into the fill (a bright defect would lift the mean of
    the whole crop)."""
    s = x.shape[-1]
    lo = (s - centre_px) // 2
    inside = np.zeros((s, s), bool)
    inside[lo:lo + centre_px, lo:lo + centre_px] = True
    keep_mask = inside if keep == "centre" else ~inside
    fill = x[:, :, keep_mask].mean(axis=2)[:, :, None, None]
    return np.where(keep_mask, x, fill).astype(np.float32)


def group_of(name: str, pattern: re.Pattern) -> str:
    """The first group `pattern` captures in a file's base name (the whole name if none)."""
    m = pattern.search(Path(name).name)
    return m.group(1) if m and m.groups() else Path(name).name


def grouped_c2st(real_x: np.ndarray, real_groups: Sequence[str], syn_x: np.ndarray, syn_groups: Sequence[str], ccfg,
                 *, seed: int, reps: int) -> dict[str, Any]:
    """C2ST with disjoint groups in the classifier's train and test halves: each draw puts half
    of all groups (real and synthetic alike) in the test half, balances both halves by
    subsampling the larger side, trains, tests; accuracies averaged, Wilson interval pooled."""
    from midg.augment.metrics.c2st import wilson_interval
    from midg.augment.metrics.classifier import predict, train_classifier

    rg, sg = np.asarray(real_groups), np.asarray(syn_groups)
    groups = sorted(set(rg) | set(sg))
    if len(groups) < 2:
        return {"accuracy": None, "note": f"{len(groups)} group(s): nothing to hold out"}
    accs, correct, total = [], 0, 0
    for rep in range(reps):
        rng = np.random.default_rng([seed, rep])
        test_groups = set(rng.permutation(groups)[: len(groups) // 2])
        halves = {}
        for part, want in (("train", False), ("test", True)):
            ri = np.flatnonzero([(g in test_groups) == want for g in rg])
            si = np.flatnonzero([(g in test_groups) == want for g in sg])
            n = min(len(ri), len(si))
            ri, si = rng.permutation(ri)[:n], rng.permutation(si)[:n]
            halves[part] = (np.concatenate([real_x[ri], syn_x[si]]), np.r_[np.zeros(n, np.int64), np.ones(n, np.int64)])
        if min(len(halves["train"][1]), len(halves["test"][1])) < 8:
            continue
        model = train_classifier(*halves["train"], 2, ccfg, seed=seed, desc="grouped C2ST", show_progress=False)
        pred = predict(model, halves["test"][0]).argmax(axis=1)
        c = int((pred == halves["test"][1]).sum())
        accs.append(c / len(pred))
        correct, total = correct + c, total + len(pred)
    if not accs:
        return {"accuracy": None, "note": "no draw left 4 crops a side in both halves"}
    return {"accuracy": float(np.mean(accs)), "per_draw": [round(a, 4) for a in accs],
            "ci95_pooled": list(wilson_interval(correct, total)), "n_test_pooled": total, "groups": len(groups)}


TELLING_ROWS = ("synthetic, surest synthetic", "synthetic, taken for real", "real, taken for synthetic")


def telling_crops(held_out: dict[str, list], k: int) -> dict[str, list[tuple[int, float]]]:
    """From a C2ST's held_out scores, up to k (index in its crop set, P(synthetic)) per row of
    TELLING_ROWS: the synthetic crops with the highest P(synthetic), those with the lowest
    (below 0.5: taken for real), the real crops with the highest (above 0.5)."""
    rows = list(zip(held_out["side"], held_out["index"], held_out["p_synthetic"]))
    syn = sorted(((i, p) for side, i, p in rows if side == "synthetic"), key=lambda t: -t[1])
    real = sorted(((i, p) for side, i, p in rows if side == "real"), key=lambda t: -t[1])
    return {TELLING_ROWS[0]: syn[:k], TELLING_ROWS[1]: [t for t in reversed(syn) if t[1] < 0.5][:k],
            TELLING_ROWS[2]: [t for t in real if t[1] > 0.5][:k]}


def telling_sheet(picks: dict[str, list[tuple[int, float]]], real_x: np.ndarray, syn_x: np.ndarray, title: str,
                  out: Path) -> None:
    """The rows of telling_crops as a PNG (each crop titled with its P(synthetic))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = max(1, max(len(v) for v in picks.values()))
    fig, axes = plt.subplots(len(TELLING_ROWS), k, figsize=(1.1 * k + 1.6, 3.9), dpi=100, squeeze=False)
    for r, name in enumerate(TELLING_ROWS):
        source = real_x if name.startswith("real") else syn_x
        for c in range(k):
            ax = axes[r][c]
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(picks[name]):
                i, p = picks[name][c]
                crop = source[i].transpose(1, 2, 0)
                ax.imshow(crop[..., 0] if crop.shape[2] == 1 else crop, cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"{p:.2f}", fontsize=7)
        axes[r][0].set_ylabel(name.replace(", ", ",\n"), fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp, metadata={"Software": None})
    plt.close(fig)
    tmp.replace(out)


def probe(real_root: Path, synthetic: Sequence[Path], *, seed: int = 0, group_regex: str | None = None,
          group_reps: int = 5, sheet_dir: Path | None = None, sheet_k: int = 12) -> dict[str, Any]:
    from midg.augment.metrics.c2st import classifier_two_sample_test
    from midg.augment.metrics.crops import (CropSet, cap_per_class, concat, dataset_channels, native_defect_crops,
                                            rect_box_ratio)
    from midg.augment.metrics.evaluate import EvalConfig, seed_everything
    from midg.datasets.layout import load_dataset

    cfg = EvalConfig()
    ncfg, ccfg = cfg.native_crops(), cfg.classifier()
    real_ds = load_dataset(real_root)
    names, channels = list(real_ds.names), dataset_channels(real_ds)
    capped = lambda c: cap_per_class(c, cfg.max_crops_per_class, np.random.default_rng(seed))  # noqa: E731
    pattern = re.compile(group_regex) if group_regex else None
    out: dict[str, Any] = {}
    for root in synthetic:
        ds = load_dataset(root)
        scale = rect_box_ratio(ds)
        real = concat([capped(native_defect_crops(real_ds, (s,), names, channels=channels, cfg=ncfg, box_scale=scale,
                                                  use_rects=False)) for s in ("train", "val", "test")])
        syn = capped(native_defect_crops(ds, ("train", "val", "test"), names, channels=channels, cfg=ncfg))
        row: dict[str, Any] = {"n_real": len(real), "n_synthetic": len(syn)}
        for part, f in (("full", lambda x: x), ("centre", lambda x: blank(x, "centre")),
                        ("context", lambda x: blank(x, "context"))):
            seed_everything(seed)
            r = classifier_two_sample_test(CropSet(f(real.x), real.y, real.refs), CropSet(f(syn.x), syn.y, syn.refs),
                                           ccfg, seed=seed, test_share=cfg.c2st_test_share, show_progress=False,
                                           held_out_scores=part == "full" and sheet_dir is not None)
            row[part] = {"accuracy": r["accuracy"], "ci95": r["ci95"], "n_test": r["n_test"]}
            if "held_out" in r:
                picks = telling_crops(r["held_out"], sheet_k)
                sheet = Path(sheet_dir) / f"c2st_telling_{Path(root).name}.png"
                telling_sheet(picks, real.x, syn.x, f"{Path(root).name}: C2ST {r['accuracy']:.3f}; P(synthetic) over "
                              "each held-out crop", sheet)
                row["telling"] = {"sheet": str(sheet), **{name: [[real_or_syn.refs[i].image, round(p, 3)]
                                                                 for i, p in picks[name]]
                                                          for name, real_or_syn in zip(TELLING_ROWS, (syn, syn, real))}}
        if pattern is not None:
            source = {c["image"]: c["source"] for c in ds.meta.get("canvases", []) or [] if "source" in c}
            for d in ds.meta.get("defects", []) or []:
                if isinstance(d, dict) and d.get("normal"):
                    source.setdefault(d["image"], d["normal"])
            seed_everything(seed)
            row["grouped"] = grouped_c2st(real.x, [group_of(r.image, pattern) for r in real.refs], syn.x,
                                          [group_of(source.get(r.image, r.image), pattern) for r in syn.refs], ccfg,
                                          seed=seed, reps=group_reps)
        out[Path(root).name] = row
        print(Path(root).name, {k: (v.get("accuracy") if isinstance(v, dict) else v) for k, v in row.items()
                                if k != "telling"}, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", required=True)
    ap.add_argument("--synthetic", nargs="+", required=True)
    ap.add_argument("--group-regex", help="captures a crop's group from its file's base name")
    ap.add_argument("--group-reps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sheet-dir", help="a folder for each set's c2st_telling_<set>.png")
    ap.add_argument("--sheet-k", type=int, default=12, help="crops per row of the sheets")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    for p in [args.real, *args.synthetic]:
        if not Path(p).is_dir():
            raise SystemExit(f"{p}: not a dataset folder")
    t0 = time.time()
    if args.sheet_dir:
        Path(args.sheet_dir).mkdir(parents=True, exist_ok=True)
    sets = probe(Path(args.real), [Path(p) for p in args.synthetic], seed=args.seed, group_regex=args.group_regex,
                 group_reps=args.group_reps, sheet_dir=Path(args.sheet_dir) if args.sheet_dir else None,
                 sheet_k=args.sheet_k)
    result = {"what": "C2ST of evaluate-generator on the whole crop, its centre only, its context only, and with "
                      "groups held out", "centre_px": CENTRE_PX, "sets": sets, "real": args.real,
              "command": "python benchmarks/c2st_probe.py " + shlex.join(sys.argv[1:]), "device": "cpu",
              "date": dt.date.today().isoformat(), "git_rev": git_rev(), "git_dirty": git_dirty(),
              "seconds": round(time.time() - t0, 1)}
    out = Path(args.out)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
