"""What the job's report says, gathered from the files the stages wrote: each run's scores
and their summary over seeds, training curves, run records, dataset counts, warnings and
the reading in sentences. `report_render.py` draws it; `report.py` writes it out.

    data = gather(cfg, metrics_dir=Path("data/metrics"), runs_dir=Path("data/runs"), real=..., synth_dir=...,
                  generator_dir=Path("data/generator"))
    data.summary["yolov8n"]["midg"]["gain_map50"]     # mean over seeds, minus real-only's
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from midg.datasets.errors import DatasetError

CONDITION_ORDER = ("real", "copypaste", "midg")


@dataclass(frozen=True)
class RunScore:
    key: str
    detector: str
    condition: str
    seed: int
    map50: float
    map50_95: float
    per_class: dict[str, float]  # AP50 per class name (NaN when the class has no test box)
    meta: dict[str, Any]


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, read once from the job's files."""
    cfg: dict[str, Any]  # the report stage's config (profile, pipeline, cells, data)
    scores: list[RunScore]
    summary: dict[str, dict[str, dict[str, float]]]  # summarise()
    per_class: dict[str, dict[str, dict[str, float]]]  # per_class_means()
    curves: dict[str, list[tuple[float, float]]]  # run key -> (step, training loss)
    run_meta: dict[str, dict[str, Any]]  # run key -> the run's meta.json ({} when it has none)
    generator_metrics: dict[str, Any]  # `midg evaluate-generator`'s flat numbers
    generator_config: dict[str, Any]  # the generator checkpoint's config.json ({} without one)
    counts: list[list[Any]]  # [data, images, boxes] rows
    warnings: list[str]
    reading: list[str]
    revision: str
    command: str
    versions: dict[str, str]
    host: str
    real: Path
    synth_dir: Path
    generator_dir: Path


def gather(cfg: dict[str, Any], *, metrics_dir: Path, runs_dir: Path, real: Path, synth_dir: Path,
           generator_dir: Path, generator_metrics: Path | None = None) -> ReportData:
    """Read what the report needs; a missing or broken metrics file of a planned run is an error."""
    scores = load_scores(list(cfg["cells"]), Path(metrics_dir))
    if not scores:
        raise DatasetError(metrics_dir, "no runs to report: the plan has no cells")
    summary = summarise(scores)
    per_class = per_class_means(scores)
    runs_dir, real, synth_dir, generator_dir = Path(runs_dir), Path(real), Path(synth_dir), Path(generator_dir)
    return ReportData(
        cfg=cfg, scores=scores, summary=summary, per_class=per_class,
        curves={s.key: _run_curve(runs_dir / s.key) for s in scores},
        run_meta={s.key: _read_json(runs_dir / s.key / "meta.json") or {} for s in scores},
        generator_metrics=_generator_metrics(generator_metrics),
        generator_config=_read_json(generator_dir / "config.json") or {},
        counts=_counts(real, synth_dir),
        warnings=_warnings(cfg, scores, synth_dir),
        reading=reading(summary, per_class, scores) + scope(cfg, synth_dir),
        revision=git_revision(),
        command=os.environ.get("MIDG_RUN_COMMAND") or f"dvc repro  (profile: {cfg['profile']})",
        versions=versions(),
        host=f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        real=real, synth_dir=synth_dir, generator_dir=generator_dir)


def metrics_json(data: ReportData) -> dict[str, Any]:
    """metrics.json: no dates or paths, so `dvc metrics diff` shows only what changed."""
    metrics = {
        "profile": data.cfg["profile"],
        "results": data.summary,
        "runs": {s.key: {"map50": _r(s.map50), "map50_95": _r(s.map50_95)} for s in data.scores},
    }
    if data.generator_metrics:
        metrics["generator"] = data.generator_metrics
    return metrics


# ---------------------------------------------------------------- numbers


def _per_class_ap50(entry: Any) -> float:
    """AP50 of one class from the evaluator's per_class entry (a dict of APs, or one number)."""
    if isinstance(entry, dict):
        for k in ("ap50", "map50", "AP50"):
            if k in entry and entry[k] is not None:
                return float(entry[k])
        return float("nan")
    return float(entry) if entry is not None else float("nan")


def load_scores(cells: list[str], metrics_dir: Path) -> list[RunScore]:
    scores = []
    for key in cells:
        path = metrics_dir / f"{key}.json"
        if not path.is_file():
            raise DatasetError(path, "missing: the evaluate stage of this run has not written its metrics")
        try:
            m = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DatasetError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
        if m.get("skipped"):
            raise DatasetError(path, "is a 'skipped' marker but the plan includes this run: rerun `dvc repro`")
        for k in ("map50", "map50_95", "detector", "condition", "seed"):
            if k not in m:
                raise DatasetError(path, f"lacks {k!r}")
        per_class = {name: _per_class_ap50(v) for name, v in (m.get("per_class") or {}).items()}
        scores.append(RunScore(key, m["detector"], m["condition"], int(m["seed"]), float(m["map50"]),
                               float(m["map50_95"]), per_class, m))
    return scores


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def summarise(scores: list[RunScore]) -> dict[str, dict[str, dict[str, float]]]:
    """{detector: {condition: {map50, map50_std, map50_95, map50_95_std, seeds, gain_*}}}."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    detectors = list(dict.fromkeys(s.detector for s in scores))
    for det in detectors:
        rows = {}
        for cond in _conditions(scores):
            runs = [s for s in scores if s.detector == det and s.condition == cond]
            if not runs:
                continue
            m50, s50 = _mean_std([r.map50 for r in runs])
            m95, s95 = _mean_std([r.map50_95 for r in runs])
            rows[cond] = {"map50": _r(m50), "map50_std": _r(s50), "map50_95": _r(m95), "map50_95_std": _r(s95),
                          "seeds": len(runs)}
        if "real" in rows:
            for cond, row in rows.items():
                if cond != "real":
                    row["gain_map50"] = _r(row["map50"] - rows["real"]["map50"])
                    row["gain_map50_95"] = _r(row["map50_95"] - rows["real"]["map50_95"])
        out[det] = rows
    return out


def per_class_means(scores: list[RunScore]) -> dict[str, dict[str, dict[str, float]]]:
    """{detector: {condition: {class: mean AP50 over seeds}}} (classes without test boxes left out)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for s in scores:
        out.setdefault(s.detector, {}).setdefault(s.condition, {})
    for det, conds in out.items():
        for cond in conds:
            runs = [s for s in scores if s.detector == det and s.condition == cond]
            names = list(dict.fromkeys(n for r in runs for n in r.per_class))
            for name in names:
                vals = [r.per_class[name] for r in runs if not math.isnan(r.per_class.get(name, float("nan")))]
                if vals:
                    conds[cond][name] = _r(float(np.mean(vals)))
    return out


def _conditions(scores: list[RunScore]) -> list[str]:
    present = list(dict.fromkeys(s.condition for s in scores))
    return [c for c in CONDITION_ORDER if c in present] + [c for c in present if c not in CONDITION_ORDER]


def _r(x: float) -> float:
    return round(float(x), 6)


# ---------------------------------------------------------------- what the numbers say


def reading(summary: dict[str, Any], per_class: dict[str, Any], scores: list[RunScore]) -> list[str]:
    """What the table does and does not show, in sentences: per detector the best condition,
    each synthetic condition's gain against the detector's own seed-to-seed spread, and the
    class that moved most; then what one seed or a tiny budget cannot show."""
    out = []
    for det, conds in summary.items():
        if "real" not in conds:
            continue
        real = conds["real"]
        top = max(r["map50"] for r in conds.values())
        leaders = [c for c in conds if conds[c]["map50"] == top]
        best = leaders[0] if len(leaders) == 1 else "a tie (" + ", ".join(leaders) + ")"
        spread = max((r["map50_std"] for r in conds.values()), default=0.0)
        parts = []
        for cond, r in conds.items():
            if cond == "real":
                continue
            gain = r.get("gain_map50", 0.0) * 100
            if r["seeds"] >= 2 and real["seeds"] >= 2:
                clear = abs(gain) > 2 * spread * 100
                verdict = ("more than twice the seed spread" if clear else "within twice the seed spread: not a clear "
                           "difference")
            else:
                verdict = "one seed: no spread to judge it against"
            parts.append(f"{cond} {gain:+.1f} points ({verdict})")
        pc = per_class.get(det, {})
        moved = []
        for cond in conds:
            if cond == "real" or cond not in pc or "real" not in pc:
                continue
            deltas = {n: pc[cond][n] - pc["real"][n] for n in pc[cond] if n in pc["real"]}
            big = {n: d for n, d in deltas.items() if abs(d) >= 0.005}  # half a point: below that, nothing moved
            if big:
                up, down = max(big, key=big.get), min(big, key=big.get)
                ends = [up] if up == down else [up, down]
                moved.append(f"{cond}: " + ", ".join(f"{n} {big[n] * 100:+.1f}" for n in ends))
        sentence = (f"{det}: real-only scores mAP50 {real['map50']:.3f}; best is {best}. Against real: "
                    + "; ".join(parts) + ".")
        if max(r["map50"] for r in conds.values()) < 0.05:
            sentence += (f" {det} learnt next to nothing within its budget (every condition below mAP50 0.05): "
                         "its row shows the plumbing, not the worth of the data.")
        if moved:
            sentence += " Per-class AP50 that moved most (points): " + "; ".join(moved) + "."
        out.append(sentence)
    if scores and max(s.map50 for s in scores) < 0.05:
        out.append("Every run is below mAP50 0.05: the detectors barely learnt within this budget, so the gains "
                   "measure noise, not the synthetic data.")
    out.append("What this cannot show: whether a gain holds on other data, at other budgets or for other seeds; "
               "a gain is worth believing when the paired per-seed differences (benchmarks/cell_tables.py table) keep "
               "their sign over at least three seeds.")
    return out


def scope(cfg: dict[str, Any], synth_dir: Path) -> list[str]:
    """What one run of the job stands for: one N (the profile's annotated subset) and the canvas
    the synthetic defects were painted into; whether they help depends on both (issue 20)."""
    n = (cfg.get("data") or {}).get("subset_n")
    canvases = {}
    for method in ("copypaste", "midg"):
        meta = _read_json(synth_dir / method / "meta.json") or {}
        canvas = (meta.get("generate") or {}).get("canvas")
        if canvas:
            canvases[method] = canvas
    where = ", ".join(f"{m} into the {'annotated images' if c == 'annotated' else c}" for m, c in canvases.items())
    points = [p["n"] for p in cfg.get("curve") or []]
    if len(points) > 1:  # a curve job: the table is at its first N, the curve section has them all
        return [f"This run is a curve over N = {', '.join(map(str, sorted(points)))} annotated training images; the "
                f"table, bars and crops are at N = {points[0]}" + (f", synthetic defects painted {where}" if where else "")
                + ". The data-efficiency section reads mAP against N."]
    sentence = (f"This run is one point of a curve: {n if n else 'all the'} annotated training images"
                + (f", synthetic defects painted {where}" if where else "") + ". Synthetic data helps most where "
                "annotated defects are scarce and least where they are not, and a canvas whose surface differs from "
                "the test images' (DeepPCB's clean templates) can cost more than its defects bring: "
                "`benchmarks/cell_tables.py curve` draws mAP against N (BENCHMARKS.md, data efficiency).")
    return [sentence]


def _warnings(cfg: dict[str, Any], scores: list[RunScore], synth_dir: Path) -> list[str]:
    """What a reader must know before reading the table: too few seeds, a plumbing profile, nothing learnt."""
    warnings = []
    if len(cfg["pipeline"]["seeds"]) < 2:
        warnings.append("One seed per condition: differences below the run-to-run spread of the detectors "
                        "cannot be told from noise. Use more seeds (profile bench-cpu or paper) before concluding.")
    if cfg["profile"] == "smoke":
        warnings.append("Profile smoke: a plumbing check with a few training steps; the numbers mean nothing.")
    if scores and max(s.map50 for s in scores) == 0.0:
        warnings.append("Every run scored mAP50 = 0: the detectors learnt nothing within this profile's budget "
                        "(detector.steps), so the comparison says nothing. Raise the budget before reading the gains.")
    return warnings + _synthetic_warnings(synth_dir)


def _synthetic_warnings(synth_dir: Path) -> list[str]:
    """A synthetic set whose labels were (almost) all dropped trains on unlabelled defects."""
    out = []
    for method in ("copypaste", "midg"):
        meta = _read_json(synth_dir / method / "meta.json") or {}
        painted, dropped = len(meta.get("defects") or []), meta.get("dropped") or 0
        if painted and dropped / painted > 0.5:
            out.append(f"{method}: {dropped} of {painted} painted defects changed too few pixels and were dropped "
                       "from the labels; its training set holds mostly unlabelled or untouched rectangles.")
    return out


# ---------------------------------------------------------------- inputs beside the scores


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _generator_metrics(extra: Path | None) -> dict[str, Any]:
    """`midg evaluate-generator`'s metrics.json, when the job made one (flat numbers only)."""
    doc = _read_json(extra) if extra is not None else None
    if doc is None:
        return {}
    return {k: _r(v) for k, v in doc.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(fh)]


def _run_curve(run: Path) -> list[tuple[float, float]]:
    """(step, training loss) rows of a run's results.csv: torchvision's `step, loss`, or the sum
    of ultralytics' train/*_loss columns per epoch, placed at the epoch's last optimiser step
    (steps per epoch = the run's steps_done / epochs), so conditions with more images compare."""
    for name in ("results.csv", "train/results.csv"):
        path = run / name
        if path.is_file():
            rows = _read_csv(path)
            break
    else:
        return []
    curve = []
    per_epoch = None
    if rows and "step" not in rows[0]:
        steps_done = (_read_json(run / "meta.json") or {}).get("steps_done")
        per_epoch = steps_done / len(rows) if isinstance(steps_done, (int, float)) and rows else 1.0
    for i, row in enumerate(rows):
        try:
            if per_epoch is None:
                curve.append((float(row["step"]), float(row["loss"])))
            else:
                y = sum(float(v) for k, v in row.items() if k.startswith("train/") and k.endswith("loss"))
                curve.append((round((i + 1) * per_epoch, 1), y))
        except (KeyError, TypeError, ValueError):
            continue
    return curve


def _counts(real: Path, synth_dir: Path) -> list[list[Any]]:
    from midg.datasets.layout import load_dataset

    rows = []
    ds = load_dataset(real)
    for split in ("train", "val", "test"):
        entries = ds.images(split)
        rows.append([f"real {split}", len(entries), sum(len(e.boxes) for e in entries)])
    rows.append(["real normals", len(ds.normals), "–"])
    for method in ("copypaste", "midg"):
        p = synth_dir / method
        if (p / "data.yaml").is_file():
            s = load_dataset(p)
            entries = s.images("train")
            dropped = s.meta.get("dropped")
            rows.append([f"synthetic {method}" + (f" ({dropped} dropped)" if dropped else ""), len(entries),
                         sum(len(e.boxes) for e in entries)])
    return rows


def git_revision(cwd: Path | None = None) -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10)
        if rev.returncode != 0:
            return "not a git repository" if "not a git" in rev.stderr else "no commit yet"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=30)
        return rev.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"


def versions() -> dict[str, str]:
    """The detectors' record of versions (detectors/common.py), and the two the report adds."""
    from importlib.metadata import PackageNotFoundError, version

    from midg.detectors.common import versions as detector_versions

    out = detector_versions()
    for pkg in ("opencv-python-headless", "dvc"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
