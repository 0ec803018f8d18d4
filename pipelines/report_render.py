"""How the job's report looks: the Markdown table, the figures (matplotlib, inlined as PNG),
real and generated defect crops side by side, and the HTML page (the report.html template),
all drawn from `report_data.ReportData`."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import string
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .report_data import CONDITION_ORDER, ReportData

COLOURS = {"real": "#7b8794", "copypaste": "#e0a030", "midg": "#2f6fdf"}


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


# ---------------------------------------------------------------- HTML


def render_html(data: ReportData, curve_section: str = "") -> str:
    """The self-contained page (images inlined) from the report.html template; `curve_section`:
    a job with several N's data-efficiency section (report_curve.py), "" for one N."""
    cfg, scores, summary, per_class = data.cfg, data.scores, data.summary, data.per_class
    seeds = ", ".join(map(str, cfg["pipeline"]["seeds"]))

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

    crops_png = defect_crops(data.real, data.synth_dir)
    sheet = _generator_sheet(data.generator_dir, data.real)
    generator_sheet = (f'<p class="note">The generator\'s own sheet: normal crop, masked, inpainted, edges, generated, '
                       f'and a real defect of the class.</p><img class="fig" alt="generator samples" '
                       f'src="data:image/png;base64,{sheet}">') if sheet else ""

    gcfg = data.generator_config
    gen_rows = []
    if gcfg.get("generator"):
        g = gcfg["generator"]
        gen_rows += [["steps", gcfg.get("steps_done", g.get("steps"))], ["crop size", g.get("crop_size")],
                     ["batch", g.get("batch_size")], ["seed", g.get("seed")], ["device", g.get("device")]]
    gen_rows += [[k, f"{v:.4g}"] for k, v in data.generator_metrics.items()]
    generator_table = _table(["generator", ""], gen_rows) if gen_rows else \
        "<p class='note'>No MIDG generator in this job (the profile's conditions leave it out).</p>"

    curve_png = curves_figure(data.curves)
    curves_html = f'<img class="fig" alt="training curves" src="data:image/png;base64,{curve_png}">' if curve_png \
        else "<p class='note'>No training curves were logged.</p>"

    data_table = _table(["data", "images", "boxes"], data.counts)
    budget_rows = []
    for det in summary:
        run = next(s for s in scores if s.detector == det)
        m = data.run_meta[run.key]
        c = m.get("config", {})
        budget_rows.append([det, m.get("steps_done", "?"), c.get("batch", "?"), c.get("imgsz", "?"),
                            m.get("images_seen", "–")])
    budget_table = _table(["detector", "steps", "batch", "imgsz", "images seen"], budget_rows)
    run_rows = []
    devices = set()
    for s in scores:
        m = data.run_meta[s.key]
        devices.add(str(m.get("device", "?")))
        run_rows.append([s.key, s.seed, f"{s.map50:.3f}", f"{s.map50_95:.3f}", m.get("steps_done", "?"),
                         f"{m['seconds']:.0f} s" if isinstance(m.get("seconds"), (int, float)) else "?"])
    runs_table = _table(["run", "seed", "mAP50", "mAP50-95", "steps", "train time"], run_rows)

    env_rows = [["device", ", ".join(sorted(devices))]] + [[k, v] for k, v in data.versions.items()]
    env_rows.append(["host", data.host])

    template = string.Template(resources.files("midg.pipelines").joinpath("report.html").read_text(encoding="utf-8"))
    return template.substitute(
        profile=html.escape(cfg["profile"]),
        data_source=html.escape(str(cfg["data"].get("source"))),
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        revision=html.escape(data.revision),
        command=html.escape(data.command),
        warnings="".join(f'<p class="warn">{html.escape(w)}</p>' for w in data.warnings),
        seeds=html.escape(seeds),
        summary_table=summary_table,
        reading="".join(f"<p>{html.escape(line)}</p>" for line in data.reading),
        bars_png=bars_figure(summary),
        curve_section=curve_section,
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
