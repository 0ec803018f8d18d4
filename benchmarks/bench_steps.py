"""What every benchmark script runs its steps with: `midg` subprocesses logged to a file,
done markers, the git revision a figure names, and a profile's params. deeppcb.py,
bsdata.py and the generator benchmarks share these (imported through deeppcb as before).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def sh(cmd: list[str], log: Path, env: dict | None = None) -> None:
    """Run one `midg ...` step, its output to a log; a failure raises with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        fh.write(f"$ {shlex.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"step failed ({proc.returncode}): {shlex.join(cmd)}\n{tail}")


def midg_cmd() -> list[str]:
    return [sys.executable, "-m", "midg.pipelines.cli"]


def done(path: Path) -> bool:
    return (path / ".done").exists()


def mark_done(path: Path) -> None:
    (path / ".done").write_text("ok\n")


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:
        return os.environ.get("MIDG_GIT_REV", "unknown")


def git_dirty() -> bool | None:
    """Whether tracked files differ from HEAD (a figure from a dirty tree names no revision)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        return bool(out.strip())
    except Exception:
        return None


def profile_params(params_path: Path, profile: str) -> dict:
    doc = yaml.safe_load(Path(params_path).read_text())
    return doc["profiles"][profile]


def bench_params(params_path: Path, profile: str) -> dict:
    return profile_params(params_path, profile).get("benchmark", {})
