"""The data-efficiency curve of a job with several N: per detector, condition and N the mean
mAP over seeds and, for each synthetic condition, the paired per-seed difference to real
with its 95 % t interval; the reading in words (at which N synthetic data helped, by how
much, where it did not); the figure. A one-N job has no curve and its report does not change.

    curve = gather_curve(cfg, first_metrics=Path("data/metrics"), first_real=Path("data/datasets/real"),
                         curve_dir=Path("data/curve"))
    curve.summary["yolov8n"]["midg"][0]     # {"n": 10, "map50": ..., "gain_map50": ..., "gain_map50_ci": [lo, hi]}
    curve_figure(curve)                     # PNG bytes: reports/data_efficiency/map_vs_n.png, in report.html

The first N of the curve is the job's own (data/metrics, data/datasets/real); each further N
is a curve slot's folder (data/curve/<slot>/metrics, .../datasets/real: pipelines/curve_point.py).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from midg.datasets.errors import ConfigError

from .report_data import CONDITION_ORDER, RunScore, load_scores
from .report_render import COLOURS, _pyplot

# two-sided 95 % Student t quantiles by degrees of freedom (n paired seeds: n - 1); no dependency
# of midg computes them (numpy has no t quantile); benchmarks/cell_tables.py reads them through paired_interval
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}
ONE_SEED_POINTS = 0.5  # with one seed and no interval: a difference below half a point is no difference
METRICS = (("map50", "mAP50"), ("map50_95", "mAP50-95"))


@dataclass(frozen=True)
class Curve:
    n: list[int]  # the N, ascending
    first: int  # the job's own N (data/): the rest of the report is at this N
    scores: dict[int, list[RunScore]]  # N -> the runs at that N
    summary: dict[str, dict[str, list[dict[str, Any]]]]  # detector -> condition -> one row per N (summarise_curve)
    reading: list[str]
    warnings: list[str]


def gather_curve(cfg: dict[str, Any], *, first_metrics: Path, first_real: Path, curve_dir: Path | None) -> Curve | None:
    """The curve of a job whose report config names several N (`curve`); None for one N."""
    points = cfg.get("curve") or []
    if len(points) < 2:
        return None
    if curve_dir is None:
        raise ConfigError("a curve job's report needs the curve folder (report stage: --curve data/curve)")
    scores, reals = {}, {}
    for p in points:
        base = None if p["slot"] == 0 else Path(curve_dir) / str(p["slot"])
        scores[p["n"]] = load_scores(list(cfg["cells"]), Path(first_metrics) if base is None else base / "metrics")
        reals[p["n"]] = Path(first_real) if base is None else base / "datasets" / "real"
    summary = summarise_curve(scores)
    return Curve(sorted(scores), points[0]["n"], scores, summary, curve_reading(summary),
                 nesting_warnings(reals) + untrained_warnings(scores))


# ---------------------------------------------------------------- numbers


def paired_interval(diffs: list[float]) -> tuple[float, list[float] | None]:
    """Mean of paired differences and its 95 % t interval (None under two pairs)."""
    d = np.asarray(diffs, dtype=float)
    if len(d) < 2:
        return float(d.mean()), None
    half = T95.get(len(d) - 1, 1.96) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean()), [float(d.mean() - half), float(d.mean() + half)]


def summarise_curve(scores: dict[int, list[RunScore]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{detector: {condition: [{n, map50, map50_95, seeds, gain_map50, gain_map50_ci, ...}, ...]}}: per N
    (ascending) the mean over seeds; for a synthetic condition the mean of its per-seed differences
    to real (the same detector and seed) and their 95 % t interval (None with one paired seed)."""
    runs = [s for n in scores for s in scores[n]]
    present = list(dict.fromkeys(s.condition for s in runs))
    conditions = [c for c in CONDITION_ORDER if c in present] + [c for c in present if c not in CONDITION_ORDER]
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for det in dict.fromkeys(s.detector for s in runs):
        for cond in conditions:
            rows = []
            for n in sorted(scores):
                by_seed = {s.seed: s for s in scores[n] if s.detector == det and s.condition == cond}
                if not by_seed:
                    continue
                row: dict[str, Any] = {"n": n, "seeds": len(by_seed)}
                for key, _ in METRICS:
                    row[key] = _r(np.mean([getattr(s, key) for s in by_seed.values()]))
                real = {s.seed: s for s in scores[n] if s.detector == det and s.condition == "real"}
                paired = sorted(set(by_seed) & set(real))
                if cond != "real" and paired:
                    row["paired_seeds"] = len(paired)
                    for key, _ in METRICS:
                        mean, ci = paired_interval([getattr(by_seed[s], key) - getattr(real[s], key) for s in paired])
                        row[f"gain_{key}"] = _r(mean)
                        row[f"gain_{key}_ci"] = None if ci is None else [_r(v) for v in ci]
                rows.append(row)
            if rows:
                out.setdefault(det, {})[cond] = rows
    return out


def verdict(row: dict[str, Any], key: str = "map50") -> str:
    """helped | hurt | no clear difference: by the 95 % interval of the paired gain, or with one
    seed (no interval) by the gain itself, half a point either way."""
    ci = row.get(f"gain_{key}_ci")
    if ci is not None:
        return "helped" if ci[0] > 0 else "hurt" if ci[1] < 0 else "no clear difference"
    gain = row[f"gain_{key}"] * 100
    return "helped" if gain >= ONE_SEED_POINTS else "hurt" if gain <= -ONE_SEED_POINTS else "no clear difference"


def _r(x: float) -> float:
    return round(float(x), 6)


# ---------------------------------------------------------------- words


def _gain_text(row: dict[str, Any], key: str = "map50") -> str:
    text = f"{row[f'gain_{key}'] * 100:+.1f} points"
    ci = row.get(f"gain_{key}_ci")
    return text + (f", 95 % interval [{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]" if ci is not None else "")


def curve_reading(summary: dict[str, dict[str, list[dict[str, Any]]]]) -> list[str]:
    """Per detector: where each synthetic condition helped (mAP50 against real-only, paired
    seeds) and where it did not; then per condition by how much at each N."""
    out = []
    for det, conds in summary.items():
        heads, details = [], []
        for cond, rows in conds.items():
            rows = [r for r in rows if "gain_map50" in r]
            if cond == "real" or not rows:
                continue
            seeds = min(r["paired_seeds"] for r in rows)
            how = (f"{seeds} paired seeds, 95 % t intervals" if seeds >= 2 else
                   "one seed: no interval, so a difference may be noise")
            said = {r["n"]: verdict(r) for r in rows}
            helped = [n for n in said if said[n] == "helped"]
            others = [n for n in said if said[n] != "helped"]
            heads.append(f"{cond} helped at N = {', '.join(map(str, helped))} and not at N = {', '.join(map(str, others))}"
                         if helped and others else f"{cond} helped at every N" if helped else f"{cond} helped at no N")
            parts = []
            for r in rows:
                v = said[r["n"]]
                text = "helped" if v == "helped" else "hurt" if v == "hurt" else "did not help"
                tail = ", the interval includes 0" if v == "no clear difference" and r.get("gain_map50_ci") else ""
                parts.append(f"{text} at N = {r['n']} ({_gain_text(r)}{tail})")
            details.append(f"{cond} against real-only (mAP50; {how}): " + "; ".join(parts) + ".")
        if heads:
            out.append(f"Data efficiency, {det}: " + "; ".join(heads) + ". " + " ".join(details))
    return out


def nesting_warnings(reals: dict[int, Path]) -> list[str]:
    """Each smaller N's training images must lie inside each larger N's (one seeded draw)."""
    chosen = {n: _chosen(p) for n, p in reals.items()}
    out = []
    ns = sorted(n for n in chosen if chosen[n] is not None)
    for small, large in zip(ns, ns[1:]):
        if not chosen[small] <= chosen[large]:
            out.append(f"The N = {small} training images are not all inside the N = {large} ones "
                       f"({len(chosen[small] - chosen[large])} outside): the curve's points are not nested subsets, "
                       "so a step along N changes which images as well as how many.")
    return out


def untrained_warnings(scores: dict[int, list[RunScore]]) -> list[str]:
    """The N where no run learnt anything worth comparing: the curve there is plumbing."""
    idle = [n for n in sorted(scores) if scores[n] and max(s.map50 for s in scores[n]) < 0.05]
    if not idle:
        return []
    return [f"At N = {', '.join(map(str, idle))} every run scored below mAP50 0.05: the detectors learnt next to "
            "nothing within their budget there, so those points show the plumbing, not the worth of the data."]


def _chosen(real: Path) -> set[str] | None:
    """The annotated training images of a prepared dataset (subset meta, else its train split)."""
    try:
        meta = json.loads((real / "meta.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if isinstance(meta.get("subset"), dict) and isinstance(meta["subset"].get("chosen"), list):
        return {Path(f).name for f in meta["subset"]["chosen"]}
    from midg.datasets.layout import load_dataset

    return {Path(e.file).name for e in load_dataset(real).images("train") if e.boxes}


# ---------------------------------------------------------------- outputs


def curve_metrics(curve: Curve) -> dict[str, Any]:
    """metrics.json's `curve`: the N, the summary per N, every run's scores per N."""
    return {"n": curve.n, "results": curve.summary,
            "runs": {str(n): {s.key: {"map50": _r(s.map50), "map50_95": _r(s.map50_95)} for s in curve.scores[n]}
                     for n in curve.n}}


def curve_csv(curve: Curve) -> str:
    rows = ["detector,condition,n,seeds,map50,map50_95,gain_map50,gain_map50_lo,gain_map50_hi"]
    for det, conds in curve.summary.items():
        for cond, pts in conds.items():
            for r in pts:
                ci = r.get("gain_map50_ci") or ["", ""]
                gain = r.get("gain_map50", "")
                rows.append(",".join(str(v) for v in (det, cond, r["n"], r["seeds"], r["map50"], r["map50_95"],
                                                      gain, ci[0], ci[1])))
    return "\n".join(rows) + "\n"


def curve_figure(curve: Curve) -> bytes:
    """Per detector, mAP50 and mAP50-95 against N, one line per condition (mean over seeds);
    a synthetic condition's bars: the 95 % t interval of its paired difference to real, drawn
    around its mean (none with one seed)."""
    import io

    plt = _pyplot()
    dets = list(curve.summary)
    fig, axes = plt.subplots(len(dets), 2, figsize=(10, 3.6 * len(dets)), squeeze=False)
    log = max(curve.n) >= 5 * min(curve.n)
    span = max(curve.n) - min(curve.n)
    for row, det in zip(axes, dets):
        for ax, (key, label) in zip(row, METRICS):
            for j, (cond, pts) in enumerate(curve.summary[det].items()):
                shift = (lambda n: n * 1.03 ** (j - 1)) if log else (lambda n: n + (j - 1) * 0.012 * span)
                xs = [shift(p["n"]) for p in pts]  # side by side, not on top of each other
                ys = [p[key] for p in pts]
                # around the mean: how far the paired difference to real may lie from its own mean
                err = [[p[f"gain_{key}"] - p[f"gain_{key}_ci"][0] if p.get(f"gain_{key}_ci") else 0 for p in pts],
                       [p[f"gain_{key}_ci"][1] - p[f"gain_{key}"] if p.get(f"gain_{key}_ci") else 0 for p in pts]]
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=cond, color=COLOURS.get(cond, "#888"))
            top = max(p[key] + (p[f"gain_{key}_ci"][1] - p[f"gain_{key}"] if p.get(f"gain_{key}_ci") else 0)
                      for pts in curve.summary[det].values() for p in pts)
            ax.set_ylim(0, max(0.05, top * 1.15))
            if log:
                ax.set_xscale("log")
            ax.set_xticks(curve.n, [str(n) for n in curve.n])
            ax.minorticks_off()
            ax.set_xlabel("N annotated training images")
            ax.set_ylabel(f"{label} (real test split)")
            seeds = min(p["seeds"] for pts in curve.summary[det].values() for p in pts)
            ax.set_title(f"{det}: {label} against N" + (" (one seed: no intervals)" if seeds < 2 else
                                                       f" ({seeds} seeds; bars: paired 95 % interval vs real)"),
                         fontsize=9)
            ax.spines[["top", "right"]].set_visible(False)
        row[0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def curve_section(curve: Curve | None, png_b64: str | None) -> str:
    """The report's curve section (HTML), or "" for a one-N job."""
    if curve is None:
        return ""
    rows = []
    for det, conds in curve.summary.items():
        for cond, pts in conds.items():
            for p in pts:
                gain = "" if "gain_map50" not in p else _gain_text(p)
                rows.append(f"<tr><td class='l'>{html.escape(det)}</td><td class='l'>{html.escape(cond)}</td>"
                            f"<td>{p['n']}</td><td>{p['map50']:.3f}</td><td>{p['map50_95']:.3f}</td>"
                            f"<td>{html.escape(gain)}</td><td>{p['seeds']}</td></tr>")
    table = ("<table><tr><th class='l'>detector</th><th class='l'>condition</th><th>N</th><th>mAP50</th>"
             "<th>mAP50-95</th><th>gain mAP50 vs real (paired)</th><th>seeds</th></tr>\n" + "\n".join(rows) + "\n</table>")
    reading = "".join(f"<p>{html.escape(s)}</p>" for s in curve.reading + curve.warnings)
    return (f'\n<h2>Data efficiency: mAP against N</h2>\n<p class="note">The whole job at each N = '
            f'{", ".join(map(str, curve.n))} (nested subsets of the annotated training images, one seeded draw; '
            f'library, generator and synthetic sets from that N\'s images only); the table above and the sections '
            f'below are at the first N, {curve.first}. Figure: <code>reports/data_efficiency/map_vs_n.png</code>.</p>\n'
            f'<img class="fig" alt="mAP against N" src="data:image/png;base64,{png_b64}">\n{table}\n'
            f'<div class="reading">{reading}</div>')
