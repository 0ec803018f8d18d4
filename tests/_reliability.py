"""Shared pieces of the reliability tests (tests/test_reliability_*.py, test_load.py).

- `make_boards` / `train_smoke_generator`: the tiny demo dataset (64 px boards) and a
  smoke-profile generator checkpoint trained on it, in-process.
- `spawn_midg`: the installed CLI in a subprocess (one torch thread: the CPU results then
  equal those of an in-process run with one thread, and 2 shared cores are not thrashed).
- `watch_until`: poll while a subprocess runs; every poll also checks that the final output
  path is never seen half-written.
- `files`: every file under a folder with its bytes (byte-for-byte comparisons).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
MIDG = Path(sys.executable).with_name("midg")


def make_boards(out: Path, n_images: int = 16, seed: int = 0) -> Path:
    from midg.datasets.demo import make_demo_dataset

    make_demo_dataset(out, n_images=n_images, seed=seed, size=64, progress=False)
    return out


def smoke_generator_config(**overrides):
    from midg.augment.config import generator_config
    from midg.datasets.params import load_params

    return generator_config(load_params(PARAMS), "smoke", **overrides)


def quiet():
    from rich.console import Console

    return Console(file=io.StringIO(), width=120)


def train_smoke_generator(boards: Path, out: Path, **overrides) -> Path:
    from midg.augment.train import train_generator

    train_generator(boards, out, smoke_generator_config(**overrides), profile="smoke", console=quiet())
    return out


def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200", "NO_COLOR": "1"}


def spawn_midg(args: list[str], cwd: Path, log: Path | None = None) -> subprocess.Popen:
    """`midg ARGS` in its own process group (a kill reaches no one else); output to `log`."""
    out = open(log, "wb") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen([str(MIDG), *map(str, args)], cwd=cwd, env=child_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        if log is not None:
            out.close()


def kill9(proc: subprocess.Popen) -> int:
    """SIGKILL a child we started and reap it (no zombie keeps its pid alive)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    return proc.wait(timeout=30)


def watch_until(proc: subprocess.Popen, ready: Callable[[], bool], check: Callable[[], None] | None = None,
                timeout: float = 120.0, period: float = 0.01) -> bool:
    """Poll `ready()` (and `check()`, which asserts on the outputs) until it holds; False if the
    process ended first."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        if ready():
            return True
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the command neither reached the kill point nor ended in time"
        time.sleep(period)


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def leftovers_beside(target: Path) -> list[str]:
    """Names beside `target` that belong to it but are not it: lock, temporary or swapped-out folders."""
    name = Path(target).name
    return sorted(p.name for p in Path(target).parent.iterdir() if p.name.startswith(f".{name}."))
