"""`midg evaluate-generator` (generator metrics issue)."""

import typer


def evaluate_generator_command() -> None:
    """Generator quality metrics (not built yet)."""
    raise typer.Exit(code=3)
