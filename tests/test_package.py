"""The wheel installs one import name, `midg`: no generic top-level `datasets`,
`pipelines`, `augment` or `detectors` that would shadow other packages.

The build runs on a copy of the packaged files (pyproject's package-dir), so it never
writes build/ or egg-info into the shared checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _copy_sources(dest: Path) -> Path:
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())
    package_dirs = set(cfg["tool"]["setuptools"]["package-dir"].values())
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "__init__.py"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, dest / name)
    for d in sorted(package_dirs - {"."}):
        if "/" in d:
            continue  # nested package folders come with their parent
        shutil.copytree(REPO / d, dest / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def test_wheel_installs_only_midg(tmp_path):
    src = _copy_sources(tmp_path / "src")
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("midg-*.whl")
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr

    top = {p.name for p in target.iterdir()} - {"bin"}  # bin/: the `midg` console script
    dist_info = {n for n in top if n.endswith(".dist-info")}
    assert top - dist_info == {"midg"}, f"unexpected top-level names: {sorted(top)}"
    assert len(dist_info) == 1 and next(iter(dist_info)).startswith("midg-")
    for generic in ("datasets", "pipelines", "augment", "detectors"):
        assert not (target / generic).exists()
        assert (target / "midg" / generic / "__init__.py").is_file()

    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import midg, midg.datasets.layout, midg.pipelines.cli; "
             "print(midg.__file__); print(midg.datasets.layout.__file__)")
    run = subprocess.run([sys.executable, "-c", probe, str(target)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    for line in run.stdout.splitlines():
        assert Path(line).resolve().is_relative_to(target.resolve()), line


@pytest.mark.parametrize("name", ["datasets", "pipelines"])
def test_source_tree_imports_as_midg(name):
    import importlib

    mod = importlib.import_module(f"midg.{name}")
    assert Path(mod.__file__).resolve().is_relative_to(REPO)
