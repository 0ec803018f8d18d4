"""`midg data ...`: dataset commands (filled in by the foundation work)."""

import typer

data_app = typer.Typer(no_args_is_help=True, help="Create, import, subset, merge and check canonical datasets.")
