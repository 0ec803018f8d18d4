"""What the detector backends share, apart from the dispatcher (base.py) that picks them.

yolo.py and faster_rcnn.py import only this module (and config, view), never base.py:
base.py imports the backends, so a backend importing its dispatcher would be a cycle.
"""

from __future__ import annotations

import json
import platform
import random
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.console import Console

from midg.datasets.errors import ConfigError, DatasetError, MidgError

RUN_KIND = "midg-detector-run"
console = Console(stderr=True)


class TrainingError(MidgError):
    """Training cannot go on (a non-finite loss, a run folder that cannot be resumed)."""


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    family: Literal["ultralytics", "torchvision"]
    arch: str  # ultralytics model yaml, or torchvision builder name
    note: str



def seed_everything(seed: int) -> None:
    """python, numpy and torch (CPU and every CUDA device) from one seed."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def resolve_device(device: str) -> str:
    """'cpu' or a CUDA index as a string ('0'); 'cuda' means '0'. Fails clearly without CUDA."""
    d = str(device).strip().lower()
    if d == "cpu":
        return "cpu"
    if d == "cuda":
        d = "0"
    if d.startswith("cuda:"):
        d = d[5:]
    if not d.isdigit():
        raise ConfigError(f"device {device!r} is not one of cpu, cuda, cuda:N or N")
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asks for CUDA, but torch sees no CUDA device here; use --device cpu")
    if int(d) >= torch.cuda.device_count():
        raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return d


def torch_device(device: str):
    import torch

    d = resolve_device(device)
    return torch.device("cpu") if d == "cpu" else torch.device(f"cuda:{d}")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("midg", "torch", "torchvision", "ultralytics", "pycocotools", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def device_name(device: str) -> str:
    import torch

    d = resolve_device(device)
    if d == "cpu":
        return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"
    return f"cuda:{d} ({torch.cuda.get_device_name(int(d))})"


def read_run_meta(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "meta.json"
    if not path.is_file():
        raise DatasetError(path, "missing: not a detector run folder (train one with `midg detector train`)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("kind") != RUN_KIND:
        raise DatasetError(path, f"not a detector run (kind is not {RUN_KIND!r})")
    return meta
