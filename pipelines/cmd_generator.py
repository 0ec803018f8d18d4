"""`midg generator train|samples|library` (generator issue)."""

import typer

generator_app = typer.Typer(no_args_is_help=True, help="Train the MIDG generator and look at its samples.")
