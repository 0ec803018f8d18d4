"""A persist output (generator, detector runs) resumes only when the run there was started
from the same inputs (config, data and code, as the stage's DVC deps): an interrupted run.
After a finished run DVC reruns the stage only because an input changed, and then the run
starts afresh. The record lives beside the output (`.NAME.inputs.json`), outside what DVC
tracks; without DVC (`midg run --no-dvc`) a finished run of the same inputs is reused."""

from __future__ import annotations

import json
from pathlib import Path

from midg.datasets.atomic import atomic_write_json


def inputs_signature(*paths: Path) -> str:
    """sha256 over the files (relative name, content) of the given files and folders."""
    import hashlib

    digest = hashlib.sha256()
    for root in paths:
        files = [root] if root.is_file() else sorted(
            p for p in root.rglob("*") if p.is_file() and p.suffix not in (".cache", ".pyc"))
        for f in files:
            digest.update(f"{root.name}/{f.relative_to(root).as_posix() if f != root else ''}\0".encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def inputs_record(out: Path) -> Path:
    return out.parent / f".{out.name}.inputs.json"


def same_inputs(out: Path, signature: str) -> bool:
    try:
        return json.loads(inputs_record(out).read_text(encoding="utf-8")).get("inputs") == signature
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def record_inputs(out: Path, signature: str) -> None:
    atomic_write_json(inputs_record(out), {"inputs": signature})
