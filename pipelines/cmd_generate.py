"""`midg generate` (generator issue)."""

import typer


def generate_command() -> None:
    """Paint defects into normal images (not built yet)."""
    raise typer.Exit(code=3)
