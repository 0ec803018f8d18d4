"""The picture `midg evaluate-generator` writes beside metrics.json: one panel per metric,
the real reference and every synthetic set side by side (C2ST with its interval). A metric
left out for this data (metrics.json "omitted") gets its panel's reason, not empty axes."""

from __future__ import annotations

import io
import textwrap
from typing import Any

NO_INPAINTING = "no real defect has a template to inpaint toward"


def _not_computed(ax, title: str, reason: str) -> None:
    """A panel that says why its metric is missing (a user read empty axes as a broken run)."""
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, "not computed:\n" + textwrap.fill(reason, 38), ha="center", va="center", fontsize=8,
            color="#555555", transform=ax.transAxes)


def plot_metrics(metrics: dict[str, Any]) -> bytes:
    """Bars per metric and method (real reference first), as deterministic PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = ["real"] + list(metrics["methods"])
    rows = {"real": metrics["reference"], **metrics["methods"]}

    def get(row: dict[str, Any], *path: str) -> float | None:
        for key in path:
            row = row.get(key) if isinstance(row, dict) else None
        return row if isinstance(row, (int, float)) else None

    # (title, value of a row, reference line, the metric's key in metrics.json "omitted")
    panels = [
        ("CAS (balanced accuracy)", lambda r: get(r, "cas", "balanced_accuracy"), None, "cas"),
        ("C2ST accuracy (native rect crops; 0.5 = same)", lambda r: get(r, "c2st", "accuracy"), 0.5, "c2st"),
        ("C2ST vs real defects on templates", lambda r: get(r, "c2st_on_templates", "accuracy")
         if "c2st_on_templates" in r else get(r, "c2st_surface_gap", "accuracy"), 0.5, "c2st_on_templates"),
        ("Frechet distance (in-domain)", lambda r: get(r, "fd"), None, "fd"),
        ("KID (in-domain)", lambda r: get(r, "kid"), 0.0, "kid"),
        ("Diversity (feature distance)", lambda r: get(r, "diversity", "features", "mean"), None, "diversity"),
        ("Seam |log score| (mean; 0 = seamless)", lambda r: get(r, "seam", "log_dev"), 0.0, "seam"),
        ("Box fidelity (mean IoU)", lambda r: get(r, "box_fidelity", "mean_iou"), None, "box_fidelity"),
        ("Edge contrast (mean log; real outlines)", lambda r: get(r, "edge_contrast", "mean_log"), None, "edge_contrast"),
    ]
    omitted = metrics.get("omitted") or {}
    inp = (metrics.get("inpainting") or {}).get("methods") or {}
    fig, axes = plt.subplots(2, 5, figsize=(20, 7), dpi=80)
    colors = ["#777777"] + [f"C{i}" for i in range(len(sets) - 1)]
    for ax, (title, fn, line, key) in zip(axes.flat, panels):
        vals = [fn(rows[s]) for s in sets]
        xs = [i for i, v in enumerate(vals) if v is not None]
        if not xs:
            note = (rows["real"].get(key) or {}).get("note") if isinstance(rows["real"].get(key), dict) else None
            _not_computed(ax, title, omitted.get(key) or note or "no set has this metric")
            continue
        ax.bar([sets[i] for i in xs], [vals[i] for i in xs], color=[colors[i] for i in xs])
        if title.startswith("C2ST"):
            for i in xs:
                row = rows[sets[i]]
                key = "c2st" if "native" in title else ("c2st_on_templates" if "c2st_on_templates" in row else "c2st_surface_gap")
                ci = (row.get(key) or {}).get("ci95")
                if ci:
                    ax.errorbar(sets[i], vals[i], yerr=[[vals[i] - ci[0]], [ci[1] - vals[i]]], color="black", capsize=4)
            ax.set_ylim(0, 1.05)
        if line is not None:
            ax.axhline(line, color="black", lw=0.8, ls="--")
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    for spare in list(axes.flat)[len(panels):-1]:
        spare.axis("off")
    ax = axes.flat[-1]
    if inp:
        ax.bar(list(inp), [v["ssim"] for v in inp.values()], color=[f"C{i + 4}" for i in range(len(inp))])
        ax.set_ylim(0, 1)
        ax.set_title("Inpainting SSIM vs template", fontsize=10)
    else:
        _not_computed(ax, "Inpainting SSIM vs template", NO_INPAINTING)
    fig.suptitle(f"midg evaluate-generator (seed {metrics['seed']})", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
