"""`midg generator train|samples|library`: train the MIDG generator and look at it.

    midg generator train data/demo --out runs/generator --profile demo
    midg generator train data/demo --out runs/generator --profile demo --resume
    midg generator samples runs/generator --normals data/demo/normals --out samples.png --seed 0
    midg generator library data/demo --out runs/library

The work lives in midg.augment (train.py, samples.py); these functions parse and report.
torch is imported inside the commands, so `midg --help` stays fast.
"""

from typing import Optional

import typer

generator_app = typer.Typer(no_args_is_help=True, help="Train the MIDG generator and look at its samples.")


@generator_app.command("train")
def train_command(
    dataset: str = typer.Argument(..., help="canonical dataset with annotated train images (and normals/)"),
    out: str = typer.Option(..., "--out", help="checkpoint folder (config.json, generator.safetensors, ...)"),
    profile: Optional[str] = typer.Option(None, "--profile", help="params.yaml profile: smoke | demo | paper "
                                                                  "(default: the file's `profile`)"),
    params: Optional[str] = typer.Option(None, "--params", help="params file holding the profiles "
                                                                "(default: ./params.yaml, else the built-in one)"),
    steps: Optional[int] = typer.Option(None, "--steps", help="override generator.steps"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda | auto (override generator.device)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="override generator.seed"),
    resume: bool = typer.Option(False, "--resume", help="continue from CKPT_DIR/train_state (last saved step + 1)"),
    init: Optional[str] = typer.Option(None, "--init", help="fine-tune from a trained generator: a checkpoint "
                                                            "folder or a shipped one (deeppcb)"),
) -> None:
    """Train the three MIDG blocks jointly; resumable, with sample grids and metrics.csv."""
    from rich.console import Console

    from midg.augment.config import generator_config
    from midg.augment.train import train_generator
    from midg.datasets.params import find_params, load_params

    console = Console(stderr=True)
    path = find_params(params)
    doc = load_params(path)
    profile = profile or doc.get("profile")
    console.print(f"params: {path.resolve()} (profile {profile})", highlight=False)
    cfg = generator_config(doc, profile, steps=steps, device=device, seed=seed)
    train_generator(dataset, out, cfg, profile=profile, resume=resume, console=console, init=init)


@generator_app.command("samples")
def samples_command(
    ckpt_dir: str = typer.Argument(..., help="trained checkpoint folder"),
    normals: str = typer.Option(..., "--normals", help="folder of normal images (or a dataset with normals/)"),
    out: str = typer.Option("samples.png", "--out", help="PNG to write"),
    real: Optional[str] = typer.Option(None, "--real", help="dataset for the real-defect column "
                                                            "(default: the one the checkpoint was trained on)"),
    seed: int = typer.Option(0, "--seed", help="seed of the rectangles and the edge noise"),
    rows: int = typer.Option(2, "--rows", help="rows per class"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda"),
) -> None:
    """Per class: normal | masked | inpainted | edges | generated, beside a real defect."""
    from rich.console import Console

    from midg.augment.samples import sample_sheet, write_grid
    from midg.datasets.errors import ConfigError

    if rows < 1:
        raise ConfigError(f"--rows must be at least 1, got {rows}")
    grid = sample_sheet(ckpt_dir, normals, real=real, seed=seed, rows_per_class=rows, device=device)
    write_grid(out, grid)
    Console(stderr=True).print(f"[green]wrote[/] {out} ({grid.shape[1]}x{grid.shape[0]})")


# ---- `midg generator library` (generation engineer's command; kept last in this file)


@generator_app.command("library")
def library_command(
    dataset: str = typer.Argument(..., help="canonical dataset with annotated train images"),
    out: str = typer.Option(..., "--out", help="folder to write config.json, library.safetensors, stats.json"),
    crop_size: int = typer.Option(64, "--crop-size", help="side of the stored defect patches (pixels)"),
) -> None:
    """The real defect library and sampler stats, no weights: enough for
    `midg generate --method copypaste` and `--edges library` without training a GAN.

        midg generator library data/real --out runs/library --crop-size 64
    """
    from pathlib import Path

    from rich.console import Console

    from midg.augment.library import load_library, write_library_folder
    from midg.datasets.errors import ConfigError
    from midg.datasets.layout import load_dataset

    if crop_size < 8:
        raise ConfigError(f"--crop-size must be at least 8, got {crop_size}")
    folder = write_library_folder(load_dataset(dataset), Path(out), crop_size=crop_size)
    lib = load_library(folder)
    per_class = {n: int((lib.classes == i).sum()) for i, n in enumerate(lib.names)}
    Console(stderr=True).print(f"[green]wrote[/] {folder}: {len(lib)} real defects {per_class}", highlight=False)
