"""`midg detector ...` and `midg evaluate` (detector issue)."""

import typer

detector_app = typer.Typer(no_args_is_help=True, help="Train detectors offline and predict into COCO results.")


def evaluate_command() -> None:
    """Score COCO-format predictions against a dataset split with pycocotools."""
    raise typer.Exit(code=3)
