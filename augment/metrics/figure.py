"""The picture `midg evaluate-generator` writes beside metrics.json: one panel per metric,
the real reference and every synthetic set side by side (C2ST with its interval)."""

from __future__ import annotations

import io
from typing import Any


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

    panels = [
        ("CAS (balanced accuracy)", lambda r: get(r, "cas", "balanced_accuracy"), None),
        ("C2ST accuracy (native rect crops; 0.5 = same)", lambda r: get(r, "c2st", "accuracy"), 0.5),
        ("C2ST vs real defects on templates", lambda r: get(r, "c2st_on_templates", "accuracy")
         if "c2st_on_templates" in r else get(r, "c2st_surface_gap", "accuracy"), 0.5),
        ("Frechet distance (in-domain)", lambda r: get(r, "fd"), None),
        ("KID (in-domain)", lambda r: get(r, "kid"), 0.0),
        ("Diversity (feature distance)", lambda r: get(r, "diversity", "features", "mean"), None),
        ("Seam |log score| (mean; 0 = seamless)", lambda r: get(r, "seam", "log_dev"), 0.0),
        ("Box fidelity (mean IoU)", lambda r: get(r, "box_fidelity", "mean_iou"), None),
        ("Edge contrast (mean log; real outlines)", lambda r: get(r, "edge_contrast", "mean_log"), None),
    ]
    inp = (metrics.get("inpainting") or {}).get("methods") or {}
    fig, axes = plt.subplots(2, 5, figsize=(20, 7), dpi=80)
    colors = ["#777777"] + [f"C{i}" for i in range(len(sets) - 1)]
    for ax, (title, fn, line) in zip(axes.flat, panels):
        vals = [fn(rows[s]) for s in sets]
        xs = [i for i, v in enumerate(vals) if v is not None]
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
    fig.suptitle(f"midg evaluate-generator (seed {metrics['seed']})", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
