"""`midg evaluate-generator` (generator metrics issue): how good are the synthetic defects?

    midg evaluate-generator --real data/demo --synthetic data/syn_midg --synthetic data/syn_copypaste \
        --out runs/genmetrics/metrics.json --seed 0
    midg evaluate-generator --real data/deeppcb --synthetic data/syn_midg --out m.json \
        --checkpoint runs/generator/best --device cuda

Writes metrics.json (and metrics.png beside it); prints a summary table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from midg.datasets.errors import ConfigError


def evaluate_generator_command(
    real: Path = typer.Option(..., "--real", help="Canonical real dataset (train and test splits with defects)."),
    synthetic: list[Path] = typer.Option(..., "--synthetic", help="Synthetic dataset to judge; repeat for several."),
    out: Path = typer.Option(..., "--out", help="metrics.json to write (metrics.png goes beside it)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every sample, split and training."),
    crop_size: int = typer.Option(32, "--crop-size", help="Side of the defect crops in pixels."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="MIDG checkpoint: adds its inpainting fidelity."),
    device: str = typer.Option("cpu", "--device", help="torch device: cpu, cuda, cuda:1, ..."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads (0: torch's default); tiny CNNs gain little from more."),
) -> None:
    """Generator quality: CAS, C2ST, in-domain FD/KID, diversity, box/shape/inpainting fidelity, seams."""
    import dataclasses

    from midg.augment.metrics.evaluate import EvalConfig, evaluate_generator

    if not 16 <= crop_size <= 256:
        raise ConfigError(f"--crop-size must be between 16 and 256 pixels, got {crop_size}")
    _check_device(device)
    cfg = EvalConfig(crop_size=crop_size)
    console = Console()
    if not console.is_terminal:  # logs (DVC, CI) get the whole table, not 80 columns of it
        console = Console(width=120)
    console.print(f"[bold]evaluate-generator[/] seed={seed} device={device} threads={threads} "
                  + " ".join(f"{k}={v}" for k, v in dataclasses.asdict(cfg).items()), highlight=False)
    if threads < 0:
        raise ConfigError(f"--threads must be 0 (torch's default) or more, got {threads}")
    metrics = evaluate_generator(real, synthetic, out, cfg=cfg, seed=seed, checkpoint=checkpoint, device=device,
                                 threads=threads, log=lambda msg: console.print(msg, highlight=False))
    console.print(summary_table(metrics))
    for key, why in (metrics.get("omitted") or {}).items():
        console.print(f"omitted {key}: {why}", highlight=False)
    console.print(f"wrote {out} and {out.with_suffix('.png')}")


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device {device!r} is not a torch device; valid: cpu, cuda, cuda:N, mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine; use --device cpu")


def summary_table(metrics: dict) -> Table:
    def f(v, digits=3):
        return "-" if v is None else f"{v:.{digits}f}"

    table = Table(title="generator metrics (row 'real': real against real, the reference)")
    for col in ("set", "CAS", "C2ST [95% CI]", "C2ST tmpl.", "FD", "KID", "div.", "seam", "box IoU", "drop"):
        table.add_column(col, justify="right" if col != "set" else "left", no_wrap=True)
    rows = {"real": metrics["reference"], **metrics["methods"]}
    for name, r in rows.items():
        c2 = r.get("c2st") or {}
        ci = c2.get("ci95")
        # against the real defects on their templates; row 'real': the surface gap (real vs on-template)
        tmpl = (r.get("c2st_on_templates") or r.get("c2st_surface_gap") or {}).get("accuracy")
        box = r.get("box_fidelity") or {}
        table.add_row(name, f((r.get("cas") or {}).get("balanced_accuracy")),  # one-class data: no CAS
                      f"{f(c2.get('accuracy'), 2)} [{f(ci[0], 2)},{f(ci[1], 2)}]" if ci else f(c2.get("accuracy")),
                      f(tmpl, 2),
                      f(r.get("fd"), 2), f(r.get("kid"), 3), f((r.get("diversity") or {}).get("features", {}).get("mean"), 2),
                      f((r.get("seam") or {}).get("mean"), 2), f(box.get("mean_iou"), 2), f(box.get("dropped_share"), 2))
    inp = (metrics.get("inpainting") or {}).get("methods") or {}
    if inp:
        table.caption = "inpainting vs template: " + ", ".join(
            f"{k} PSNR {f(v['psnr'], 1)} dB SSIM {f(v['ssim'])}" for k, v in inp.items())
    return table
