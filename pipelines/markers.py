"""The "skipped" marker: the output a stage leaves when the plan left it out (a cell, a
method or a curve slot the profile does not use), written in about a second without
importing anything heavy."""

from __future__ import annotations

import json
from pathlib import Path

from midg.datasets.atomic import atomic_dir, atomic_write_json
from midg.datasets.errors import DatasetError

SKIPPED = "skipped.json"  # the marker an inactive stage leaves as its output


def is_skipped(path: str | Path) -> bool:
    """True for the output of a stage the profile left out (a folder with the marker, or a marker file)."""
    path = Path(path)
    if path.is_dir():
        return (path / SKIPPED).is_file()
    if path.is_file() and path.suffix == ".json":
        try:
            return json.loads(path.read_text(encoding="utf-8")).get("skipped") is True
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return False
    return False


def skip_dir(out: Path, why: str) -> None:
    with atomic_dir(out) as tmp:
        atomic_write_json(tmp / SKIPPED, {"skipped": True, "why": why})
    print(f"skipped: {why} -> {out}")


def need(path: Path, what: str) -> Path:
    """`path`, if it exists and is not a marker; else a clear error naming it."""
    if not path.exists():
        raise DatasetError(path, f"missing: {what}")
    if is_skipped(path):
        raise DatasetError(path, f"is a 'skipped' marker, not {what}: the plan left its stage out")
    return path
