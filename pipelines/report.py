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
  data_efficiency/  for a job with several N (a data-efficiency curve; `report_curve.py`):
                    map_vs_n.png, mAP50 and mAP50-95 against N, one line per condition, per
                    detector, and map_vs_n.csv, its numbers (metrics.json `curve` has them
                    too, with every run per N); empty for one N (a DVC output either way, so
                    a restore from DVC's run cache never leaves an earlier curve behind)
metrics.json holds no dates or paths, so `dvc metrics diff` shows only what changed.
The numbers are gathered in `report_data.py` and drawn in `report_render.py`.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from midg.datasets.atomic import atomic_dir, atomic_write_json, atomic_write_text

from .report_curve import curve_csv, curve_figure, curve_metrics, curve_section, gather_curve
from .report_data import RunScore, gather, metrics_json
from .report_render import render_html, summary_markdown

EFFICIENCY = "data_efficiency"  # reports/data_efficiency/: the curve's figure and numbers (empty for one N)
CURVE_PNG, CURVE_CSV = "map_vs_n.png", "map_vs_n.csv"


def build_report(cfg: dict[str, Any], *, metrics_dir: Path, runs_dir: Path, real: Path, synth_dir: Path,
                 generator_dir: Path, out_dir: Path, generator_metrics: Path | None = None,
                 curve_dir: Path | None = None) -> dict[str, Any]:
    """Write reports/ (see the module docstring); returns the metrics.json content."""
    data = gather(cfg, metrics_dir=metrics_dir, runs_dir=runs_dir, real=real, synth_dir=synth_dir,
                  generator_dir=generator_dir, generator_metrics=generator_metrics)
    curve = gather_curve(cfg, first_metrics=Path(metrics_dir), first_real=Path(real), curve_dir=curve_dir)
    metrics = metrics_json(data)
    summary_md = summary_markdown(cfg, data.summary) + "\n" + "\n\n".join(data.reading) + "\n"
    png = None
    if curve is not None:
        metrics["curve"] = curve_metrics(curve)
        summary_md += "\n" + "\n\n".join(curve.reading + curve.warnings) + f"\n\nFigure: {EFFICIENCY}/{CURVE_PNG}\n"
        png = curve_figure(curve)
    page = render_html(data, curve_section(curve, base64.b64encode(png).decode("ascii") if png else None))

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "metrics.json", metrics)
    _write_plots(out_dir / "plots", data.scores, data.summary, data.curves)
    with atomic_dir(out_dir / EFFICIENCY) as tmp:  # replaced whole: an earlier curve's figure never lingers
        if curve is not None:
            (tmp / CURVE_PNG).write_bytes(png)
            (tmp / CURVE_CSV).write_text(curve_csv(curve), encoding="utf-8")
    atomic_write_text(out_dir / "summary.md", summary_md)
    atomic_write_text(out_dir / "report.html", page)
    print(summary_md)
    print(f"report -> {out_dir / 'report.html'}")
    return metrics


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
