"""A throwaway clone of this project for pipeline tests: what `git clone` would give once the
working tree is committed (tracked and untracked-but-not-ignored files), in a fresh git repo
with one commit. DVC runs offline with analytics off and a temporary site cache.

The smoke pipeline is run once per test session (`smoke_project`) and copied for each test
that changes it, so test_pipeline.py and test_dvc.py share one ~1-2 min run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
_SMOKE: dict[str, Path] = {}


def env(tmp: Path) -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = os.pathsep.join([str(BIN), e.get("PATH", "")])
    e["DVC_NO_ANALYTICS"] = "1"
    e["DVC_SITE_CACHE_DIR"] = str(tmp / "dvc-site")
    e["GIT_AUTHOR_NAME"] = e["GIT_COMMITTER_NAME"] = "midg tests"
    e["GIT_AUTHOR_EMAIL"] = e["GIT_COMMITTER_EMAIL"] = "tests@midg.invalid"
    e["PYTHONUNBUFFERED"] = "1"
    return e


def sh(args: list[str], cwd: Path, tmp: Path, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    r = subprocess.run(args, cwd=cwd, env=env(tmp), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({r.returncode}) in {cwd}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def project_files() -> list[str]:
    r = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    return [f for f in r.stdout.splitlines() if f and (ROOT / f).is_file()]


def make_project(dest: Path, tmp: Path) -> Path:
    """Copy the project's files into `dest`, `git init` and commit them."""
    dest.mkdir(parents=True)
    for rel in project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    sh(["git", "init", "-q", "-b", "main"], dest, tmp)
    sh(["git", "add", "-A"], dest, tmp)
    sh(["git", "commit", "-q", "-m", "clone of the working tree"], dest, tmp)
    return dest


def midg(args: list[str], cwd: Path, tmp: Path, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    return sh([str(BIN / "midg"), *args], cwd, tmp, check=check, timeout=timeout)


def dvc(args: list[str], cwd: Path, tmp: Path, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    return sh([sys.executable, "-m", "dvc", *args], cwd, tmp, check=check, timeout=timeout)


def smoke_project(tmp_factory) -> Path:
    """The project after `midg run --profile smoke` (built once per session; treat as read-only)."""
    if "root" not in _SMOKE:
        tmp = tmp_factory.mktemp("smoke")
        root = make_project(tmp / "project", tmp)
        midg(["run", "--profile", "smoke"], root, tmp)
        _SMOKE["root"], _SMOKE["tmp"] = root, tmp
    return _SMOKE["root"]


def copy_project(src: Path, dest: Path) -> Path:
    """A full copy (work tree, .git, .dvc cache) a test may change."""
    shutil.copytree(src, dest, symlinks=True)
    return dest
