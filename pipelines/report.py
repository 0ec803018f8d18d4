"""The job's report: what the detectors scored on the real test split, and why to believe it.

    python -m midg.pipelines.stages report --config data/config/report.json --metrics data/metrics \
        --runs data/runs --real data/datasets/real --synth data/synth --generator data/generator --out reports

Writes into `out` (reports/):
  metrics.json      per detector and condition: mAP50 and mAP50-95 mean, spread over seeds and
                    gain over real; per run; generator metrics (`dvc metrics show` reads it)
  summary.md        the result table in Markdown (what `midg run` prints)
  report.html       self-contained (images inlined): table, bars, per-class AP, real vs
                    generated defects, curves, budgets, versions, device, seeds, git revision
  plots/map.csv     one row per run, plots/gain.csv one row per detector and condition,
  plots/curves/     one CSV (step, loss) per run: `dvc plots show` draws them
metrics.json holds no dates or paths, so `dvc metrics diff` shows only what changed.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import math
import os
import platform
import string
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from midg.datasets.atomic import atomic_dir, atomic_write_bytes, atomic_write_json, atomic_write_text
from midg.datasets.errors import DatasetError

CONDITION_ORDER = ("real", "copypaste", "midg")
COLOURS = {"real": "#7b8794", "copypaste": "#e0a030", "midg": "#2f6fdf"}


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


# ---------------------------------------------------------------- the report


def build_report(cfg: dict[str, Any], *, metrics_dir: Path, runs_dir: Path, real: Path, synth_dir: Path,
                 generator_dir: Path, out_dir: Path, generator_metrics: Path | None = None) -> dict[str, Any]:
    """Write reports/ (see the module docstring); returns the metrics.json content."""
    scores = load_scores(list(cfg["cells"]), Path(metrics_dir))
    if not scores:
        raise DatasetError(metrics_dir, "no runs to report: the plan has no cells")
    summary = summarise(scores)
    per_class = per_class_means(scores)
    gen_metrics = _generator_metrics(Path(generator_dir), generator_metrics)
    metrics = {
        "profile": cfg["profile"],
        "results": summary,
        "runs": {s.key: {"map50": _r(s.map50), "map50_95": _r(s.map50_95)} for s in scores},
    }
    if gen_metrics:
        metrics["generator"] = gen_metrics
    curves = {s.key: _run_curve(Path(runs_dir) / s.key) for s in scores}

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "metrics.json", metrics)
    _write_plots(out_dir / "plots", scores, summary, curves)
    summary_md = summary_markdown(cfg, summary) + "\n" + "\n\n".join(reading(summary, per_class, scores)) + "\n"
    atomic_write_text(out_dir / "summary.md", summary_md)
    page = _render_html(cfg, scores, summary, per_class, curves, gen_metrics, Path(real), Path(synth_dir),
                        Path(generator_dir), Path(runs_dir))
    atomic_write_text(out_dir / "report.html", page)
    print(summary_md)
    print(f"report -> {out_dir / 'report.html'}")
    return metrics


def summary_markdown(cfg: dict[str, Any], summary: dict[str, Any]) -> str:
    seeds = cfg["pipeline"]["seeds"]
    lines = [f"# MIDG results: profile {cfg['profile']}", "",
             f"COCO mAP on the real test split; mean ± std over seeds {', '.join(map(str, seeds))}.", "",
             "| detector | condition | mAP50 | mAP50-95 | gain mAP50 | gain mAP50-95 | n |",
             "|---|---|---|---|---|---|---|"]
    for det, rows in summary.items():
        for cond, r in rows.items():
            lines.append(f"| {det} | {cond} | {r['map50']:.3f} ± {r['map50_std']:.3f} | "
                         f"{r['map50_95']:.3f} ± {r['map50_95_std']:.3f} | {_gain(r.get('gain_map50'))} | "
                         f"{_gain(r.get('gain_map50_95'))} | {r['seeds']} |")
    return "\n".join(lines) + "\n"


def _gain(x: float | None) -> str:
    return "" if x is None else f"{x:+.3f}"


# ---------------------------------------------------------------- inputs beside the scores


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _generator_metrics(generator_dir: Path, extra: Path | None) -> dict[str, Any]:
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


def _write_plots(plots: Path, scores: list[RunScore], summary: dict[str, Any],
                 curves: dict[str, list[tuple[float, float]]]) -> None:
    with atomic_dir(plots) as tmp:
        rows = ["run,detector,condition,seed,map50,map50_95"]
        rows += [f"{s.key},{s.detector},{s.condition},{s.seed},{s.map50:.6f},{s.map50_95:.6f}" for s in scores]
        (tmp / "map.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        rows = ["detector_condition,detector,condition,gain_map50,gain_map50_95"]
        for det, conds in summary.items():
            for cond, r in conds.items():
                if "gain_map50" in r:
                    rows.append(f"{det}/{cond},{det},{cond},{r['gain_map50']:.6f},{r['gain_map50_95']:.6f}")
        (tmp / "gain.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        (tmp / "curves").mkdir()
        for key, curve in curves.items():
            body = "".join(f"{x:g},{y:.6f}\n" for x, y in curve)
            (tmp / "curves" / f"{key}.csv").write_text("step,loss\n" + body, encoding="utf-8")


# ---------------------------------------------------------------- figures


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def bars_figure(summary: dict[str, Any]) -> str:
    """Grouped bars: mAP50 and mAP50-95 per detector, one colour per condition, std as error bars."""
    plt = _pyplot()
    detectors = list(summary)
    conds = [c for c in CONDITION_ORDER if any(c in summary[d] for d in detectors)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.8 / max(1, len(conds))
    for ax, metric, title in ((axes[0], "map50", "mAP50"), (axes[1], "map50_95", "mAP50-95")):
        for j, cond in enumerate(conds):
            xs = [i + (j - (len(conds) - 1) / 2) * width for i in range(len(detectors))]
            ys = [summary[d].get(cond, {}).get(metric, 0.0) for d in detectors]
            es = [summary[d].get(cond, {}).get(f"{metric}_std", 0.0) for d in detectors]
            bars = ax.bar(xs, ys, width, yerr=es, capsize=3, label=cond, color=COLOURS.get(cond, "#888"))
            for b, y in zip(bars, ys):
                ax.annotate(f"{y:.3f}", (b.get_x() + b.get_width() / 2, y), ha="center", va="bottom",
                            fontsize=7, xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(range(len(detectors)), detectors)
        ax.set_title(f"{title} (real test split)")
        ax.set_ylim(0, max(0.05, max((summary[d].get(c, {}).get(metric, 0) + summary[d].get(c, {}).get(f"{metric}_std", 0)
                                      for d in detectors for c in conds), default=0) * 1.25))
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return _png(fig)


def curves_figure(curves: dict[str, list[tuple[float, float]]]) -> str | None:
    drawn = {k: c for k, c in curves.items() if c}
    if not drawn:
        return None
    plt = _pyplot()
    detectors = sorted({k.split("-")[0] for k in drawn})
    fig, axes = plt.subplots(1, len(detectors), figsize=(5 * len(detectors), 3.2), squeeze=False)
    for ax, det in zip(axes[0], detectors):
        for key, c in drawn.items():
            if key.split("-")[0] != det:
                continue
            cond = key.split("-")[1]
            ax.plot([x for x, _ in c], [y for _, y in c], label=key, color=COLOURS.get(cond, "#888"),
                    alpha=0.85, linewidth=1.2, marker="o" if len(c) <= 5 else None, markersize=3)
        ax.set_title(f"{det}: training loss")
        ax.set_xlabel("optimiser step")
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _context_crop(image: np.ndarray, box: tuple[float, float, float, float], size: int = 64) -> np.ndarray:
    """A square crop twice the box's longer side around its centre, resized to `size`."""
    import cv2

    x1, y1, x2, y2 = box
    side = max(16.0, 2.0 * max(x2 - x1, y2 - y1))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    h, w = image.shape[:2]
    a, b = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    pad = [(max(0, -b), max(0, b + s - h)), (max(0, -a), max(0, a + s - w))] + [(0, 0)] * (image.ndim - 2)
    img = np.pad(image, pad, mode="edge")
    crop = img[b + pad[0][0]:b + pad[0][0] + s, a + pad[1][0]:a + pad[1][0] + s]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def defect_crops(real: Path, synth_dir: Path, per_source: int = 3) -> str:
    """One row per class: `per_source` crops each of real, copy-paste and MIDG defects (PNG, base64)."""
    from midg.augment.samples import labelled_grid
    from midg.datasets.images import encode_png, read_image
    from midg.datasets.layout import load_dataset

    ds = load_dataset(real)
    sources: list[tuple[str, Any]] = [("real", ds)]
    for method, label in (("copypaste", "copy-paste"), ("midg", "MIDG")):
        p = synth_dir / method
        if (p / "data.yaml").is_file():
            sources.append((label, load_dataset(p)))
    rows = []
    for c, name in enumerate(ds.names):
        row: list[np.ndarray | None] = []
        for label, src in sources:
            crops: list[np.ndarray | None] = []
            for file, box in _defect_places(src, c, name, real=label == "real"):
                if len(crops) >= per_source:
                    break
                crops.append(_context_crop(read_image(src.path(file)), box))
            row += crops + [None] * (per_source - len(crops))
        rows.append(row)
    cols = [label for label, _ in sources for _ in range(per_source)]
    grid = labelled_grid(rows, cols, list(ds.names), cell=64)
    return base64.b64encode(encode_png(grid)).decode("ascii")


def _defect_places(ds, cls: int, name: str, real: bool):
    """(image file, box) of each defect of a class: the real boxes, or for a synthetic set the
    rectangles the method painted (meta.json `defects`; dropped ones too: both methods
    then show the same places, and a generator that paints nothing shows that)."""
    if real or not isinstance(ds.meta.get("defects"), list):
        for e in ds.images("train"):
            for b in e.boxes:
                if b.cls == cls:
                    yield e.file, (b.x1, b.y1, b.x2, b.y2)
        return
    for d in ds.meta["defects"]:
        if d.get("class") == name and d.get("image") and d.get("rect"):
            yield d["image"], tuple(float(v) for v in d["rect"])


def _generator_sheet(generator_dir: Path, real: Path) -> str | None:
    """The generator's own sample sheet (normal | masked | inpainted | edges | generated | real)."""
    if not (generator_dir / "generator.safetensors").is_file():
        return None
    from midg.augment.samples import sample_sheet
    from midg.datasets.images import encode_png

    grid = sample_sheet(generator_dir, real / "normals", real=real, seed=0, rows_per_class=1)
    return base64.b64encode(encode_png(grid)).decode("ascii")


# ---------------------------------------------------------------- HTML


def _table(head: list[str], rows: list[list[Any]], left: int = 1) -> str:
    def cell(v: Any, i: int, tag: str) -> str:
        cls = ' class="l"' if i < left else ""
        if isinstance(v, tuple):  # (text, css class)
            text, extra = v
            cls = f' class="{extra}"'
            v = text
        return f"<{tag}{cls}>{html.escape(str(v))}</{tag}>"

    out = ["<table>", "<tr>" + "".join(cell(h, i, "th") for i, h in enumerate(head)) + "</tr>"]
    out += ["<tr>" + "".join(cell(v, i, "td") for i, v in enumerate(r)) + "</tr>" for r in rows]
    return "\n".join(out + ["</table>"])


def _signed(x: float | None) -> Any:
    if x is None:
        return ""
    return (f"{x:+.3f}", "pos" if x > 0 else "neg" if x < 0 else "")


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
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("midg", "torch", "torchvision", "ultralytics", "pycocotools", "numpy", "opencv-python-headless",
                "dvc"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            try:  # ultralytics as installed here: its headless build, another distribution name
                out[pkg] = version(f"{pkg}-opencv-headless")
            except PackageNotFoundError:
                out[pkg] = "not installed"
    return out


def _render_html(cfg, scores, summary, per_class, curves, gen_metrics, real, synth_dir, generator_dir,
                 runs_dir) -> str:
    pipeline = cfg["pipeline"]
    warnings = []
    seeds = ", ".join(map(str, pipeline["seeds"]))
    if len(pipeline["seeds"]) < 2:
        warnings.append("One seed per condition: differences below the run-to-run spread of the detectors "
                        "cannot be told from noise. Use more seeds (profile bench-cpu or paper) before concluding.")
    if cfg["profile"] == "smoke":
        warnings.append("Profile smoke: a plumbing check with a few training steps; the numbers mean nothing.")
    if scores and max(s.map50 for s in scores) == 0.0:
        warnings.append("Every run scored mAP50 = 0: the detectors learnt nothing within this profile's budget "
                        "(detector.steps), so the comparison says nothing. Raise the budget before reading the gains.")
    warnings += _synthetic_warnings(synth_dir)

    rows = []
    for det, conds in summary.items():
        for cond, r in conds.items():
            rows.append([det, cond, f"{r['map50']:.3f} ± {r['map50_std']:.3f}", f"{r['map50_95']:.3f} ± {r['map50_95_std']:.3f}",
                         _signed(r.get("gain_map50")), _signed(r.get("gain_map50_95")), r["seeds"]])
    summary_table = _table(["detector", "condition", "mAP50", "mAP50-95", "gain mAP50", "gain mAP50-95", "n"], rows, 2)

    class_names = list(dict.fromkeys(n for d in per_class.values() for c in d.values() for n in c))
    pc_rows = []
    for det, conds in per_class.items():
        for cond in [c for c in CONDITION_ORDER if c in conds] + [c for c in conds if c not in CONDITION_ORDER]:
            pc_rows.append([det, cond] + [f"{conds[cond][n]:.3f}" if n in conds[cond] else "–" for n in class_names])
    per_class_table = _table(["detector", "condition"] + class_names, pc_rows, 2) if class_names else \
        "<p class='note'>The evaluator wrote no per-class AP.</p>"

    crops_png = defect_crops(real, synth_dir)
    sheet = _generator_sheet(generator_dir, real)
    generator_sheet = (f'<p class="note">The generator\'s own sheet: normal crop, masked, inpainted, edges, generated, '
                       f'and a real defect of the class.</p><img class="fig" alt="generator samples" '
                       f'src="data:image/png;base64,{sheet}">') if sheet else ""

    gcfg = _read_json(generator_dir / "config.json") or {}
    gen_rows = []
    if gcfg.get("generator"):
        g = gcfg["generator"]
        gen_rows += [["steps", gcfg.get("steps_done", g.get("steps"))], ["crop size", g.get("crop_size")],
                     ["batch", g.get("batch_size")], ["seed", g.get("seed")], ["device", g.get("device")]]
    gen_rows += [[k, f"{v:.4g}"] for k, v in gen_metrics.items()]
    generator_table = _table(["generator", ""], gen_rows) if gen_rows else \
        "<p class='note'>No MIDG generator in this job (the profile's conditions leave it out).</p>"

    curve_png = curves_figure(curves)
    curves_html = f'<img class="fig" alt="training curves" src="data:image/png;base64,{curve_png}">' if curve_png \
        else "<p class='note'>No training curves were logged.</p>"

    counts = _counts(real, synth_dir)
    data_table = _table(["data", "images", "boxes"], counts)
    budget_rows = []
    for det in summary:
        run = next(s for s in scores if s.detector == det)
        m = _read_json(runs_dir / run.key / "meta.json") or {}
        c = m.get("config", {})
        budget_rows.append([det, m.get("steps_done", "?"), c.get("batch", "?"), c.get("imgsz", "?"),
                            m.get("images_seen", "–")])
    budget_table = _table(["detector", "steps", "batch", "imgsz", "images seen"], budget_rows)
    run_rows = []
    devices = set()
    for s in scores:
        m = _read_json(runs_dir / s.key / "meta.json") or {}
        devices.add(str(m.get("device", "?")))
        run_rows.append([s.key, s.seed, f"{s.map50:.3f}", f"{s.map50_95:.3f}", m.get("steps_done", "?"),
                         f"{m['seconds']:.0f} s" if isinstance(m.get("seconds"), (int, float)) else "?"])
    runs_table = _table(["run", "seed", "mAP50", "mAP50-95", "steps", "train time"], run_rows)

    env_rows = [["device", ", ".join(sorted(devices))]] + [[k, v] for k, v in versions().items()]
    env_rows.append(["host", f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"])

    template = string.Template(resources.files("midg.pipelines").joinpath("report.html").read_text(encoding="utf-8"))
    return template.substitute(
        profile=html.escape(cfg["profile"]),
        data_source=html.escape(str(cfg["data"].get("source"))),
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        revision=html.escape(git_revision()),
        command=html.escape(os.environ.get("MIDG_RUN_COMMAND") or f"dvc repro  (profile: {cfg['profile']})"),
        warnings="".join(f'<p class="warn">{html.escape(w)}</p>' for w in warnings),
        seeds=html.escape(seeds),
        summary_table=summary_table,
        reading="".join(f"<p>{html.escape(line)}</p>" for line in reading(summary, per_class, scores)),
        bars_png=bars_figure(summary),
        per_class_table=per_class_table,
        crops_png=crops_png,
        generator_sheet=generator_sheet,
        generator_table=generator_table,
        curves=curves_html,
        data_table=data_table,
        budget_table=budget_table,
        runs_table=runs_table,
        env_table=_table(["", "version"], env_rows),
        data_seed=html.escape(str(cfg["data"].get("seed"))),
        generate_seed=html.escape(str(cfg.get("sections", {}).get("generate", {}).get("seed", 0))),
    )


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
               "a gain is worth believing when the paired per-seed differences (benchmarks/deeppcb.py table) keep "
               "their sign over at least three seeds.")
    return out


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
