"""`midg run`: the whole augment-and-evaluate job (pipeline issue)."""

import typer


def run_command() -> None:
    """Run the whole pipeline (not built yet)."""
    raise typer.Exit(code=3)
