"""`midg generator ...`, `midg generate` and `midg evaluate-generator` (generator issues)."""

import typer

generator_app = typer.Typer(no_args_is_help=True, help="Train the MIDG generator and look at its samples.")


def generate_command() -> None:
    """Paint defects into normal images (not built yet)."""
    raise typer.Exit(code=3)


def evaluate_generator_command() -> None:
    """Generator quality metrics (not built yet)."""
    raise typer.Exit(code=3)
