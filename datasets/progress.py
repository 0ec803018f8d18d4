"""Progress for long dataset work: rich's bar on stderr, so stdout stays for results.

    for item in track(items, "copying images"):
        ...
"""

from __future__ import annotations

from typing import Iterable, Sequence, TypeVar

from rich.console import Console
from rich.progress import track as _rich_track

T = TypeVar("T")

console = Console(stderr=True)  # shared by every progress display of the data layer


def track(items: Sequence[T] | Iterable[T], description: str, total: int | None = None) -> Iterable[T]:
    """Iterate `items` with a transient progress bar (plain output when not a terminal)."""
    return _rich_track(items, description=description, total=total, console=console, transient=True)
