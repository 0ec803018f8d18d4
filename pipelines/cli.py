"""The `midg` command line.

    midg data demo OUT --n-images N --seed S        procedural boards (the embedded dataset)
    midg data import deeppcb|yolo|coco|masks ...     bring a dataset into the canonical layout
    midg data subset|merge|check ...                 defect-scarce subsets, real + synthetic, checks
    midg generator train|samples ...                 train the MIDG generator, look at it
    midg generate ...                                paint defects into normals (midg | copypaste)
    midg detector train|predict ...                  YOLOv8, YOLOv5u, Faster R-CNN, offline
    midg evaluate ...                                the one COCO evaluator (pycocotools)
    midg run --profile demo                          the whole augment-and-evaluate job

Heavy libraries (torch, ultralytics) are imported inside the commands that need them,
so `midg --help` and the data commands start fast.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from midg.datasets.errors import MidgError

from .cmd_data import data_app
from .cmd_detector import detector_app, evaluate_command
from .cmd_evaluate_generator import evaluate_generator_command
from .cmd_generate import generate_command
from .cmd_generator import generator_app
from .cmd_run import run_command

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="MIDG: defect generation for surface inspection datasets, and the detector benchmark that judges it.")
app.add_typer(data_app, name="data")
app.add_typer(generator_app, name="generator")
app.add_typer(detector_app, name="detector")
app.command("generate")(generate_command)
app.command("evaluate")(evaluate_command)
app.command("evaluate-generator")(evaluate_generator_command)
# extra args: the values after the first of `--n-images 10 40` (a click option takes one)
app.command("run", context_settings={"allow_extra_args": True})(run_command)

err_console = Console(stderr=True)


def main() -> None:
    """Entry point: user errors print one clear message and exit 2, never a traceback."""
    try:
        app()
    except MidgError as exc:
        # escaped: a message may hold brackets rich would take for markup (pip install 'midg[ray]')
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: outputs in progress were not moved into place; rerun to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
