"""Versioning with DVC: dvc.yaml agrees with the code, datasets and checkpoints round-trip
through a remote byte for byte, and `dvc exp` compares two generator settings.

    .venv/bin/python -m pytest tests/test_dvc.py -x -q

The slow tests reuse the session's smoke pipeline (tests/_pipeline_repo.py) and copy it
before changing anything. DVC runs offline: analytics off, a temporary site cache.
"""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest
import yaml

import _pipeline_repo as repo
from midg.pipelines.plan import CURVE_DIR, CURVE_SLOTS, GRID, METHODS

ROOT = repo.ROOT


def _dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))


def test_dvc_yaml_grid_is_the_code_grid():
    doc = _dvc_yaml()
    grid = next(v["grid"] for v in doc["vars"] if "grid" in v)
    assert {k: tuple(v) for k, v in grid.items()} == GRID
    checkpoint = next(v["checkpoint"] for v in doc["vars"] if "checkpoint" in v)
    assert tuple(checkpoint) == METHODS
    curve = next(v["curve"] for v in doc["vars"] if "curve" in v)
    assert tuple(curve) == CURVE_SLOTS
    assert doc["stages"]["curve"]["do"]["outs"] == [{f"{CURVE_DIR}/${{item}}": {"persist": True}}]
    assert CURVE_DIR in doc["stages"]["report"]["deps"]


def test_only_config_reads_params_and_every_stage_depends_on_its_code():
    stages = _dvc_yaml()["stages"]
    assert stages["config"]["params"] == ["profile", "run", "profiles"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        if name != "config":
            assert "params" not in body, f"{name} must read its data/config JSON, not params.yaml"
            assert any(str(d).startswith("data/config/") for d in body["deps"]), name
        assert "pipelines/stages.py" in body["deps"], name
        assert body["cmd"].split()[:3] == ["python", "-m", "midg.pipelines.stages"], name
    assert stages["generator_train"]["outs"] == [{"data/generator": {"persist": True}}]
    assert stages["detect"]["outs"] == [{"data/runs/${key}": {"persist": True}}]


def test_repo_ships_an_initialised_dvc_folder_that_ignores_the_right_things():
    config = (ROOT / ".dvc" / "config").read_text(encoding="utf-8")
    assert "analytics = false" in config
    ignored = (ROOT / ".dvc" / ".gitignore").read_text(encoding="utf-8").split()
    assert {"/cache", "/tmp", "/config.local"} <= set(ignored)
    dvcignore = (ROOT / ".dvcignore").read_text(encoding="utf-8").split()
    assert {"__pycache__/", "*.pyc", "*.cache", ".*.inputs.json"} <= set(dvcignore)
    gitignore = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "/data/" in gitignore and "/reports/" in gitignore  # DVC outputs never reach git


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    return repo.smoke_project(tmp_path_factory)


def _commit(root: Path, tmp: Path, message: str) -> None:
    repo.sh(["git", "add", "-A"], root, tmp)
    repo.sh(["git", "commit", "-q", "-m", message], root, tmp)


def _same_tree(a: Path, b: Path) -> list[str]:
    """Relative paths whose bytes differ, or that exist on one side only (less what
    .dvcignore leaves out: ultralytics' labels/*.cache files in a run's data view)."""
    fa = {p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file() and p.suffix != ".cache"}
    fb = {p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file() and p.suffix != ".cache"}
    diff = sorted(fa ^ fb)
    diff += [r for r in sorted(fa & fb) if not filecmp.cmp(a / r, b / r, shallow=False)]
    return diff


@pytest.mark.slow
def test_push_then_pull_in_a_fresh_clone_restores_every_byte(smoke, tmp_path):
    root = repo.copy_project(smoke, tmp_path / "project")
    remote = tmp_path / "remote"
    repo.dvc(["remote", "add", "-d", "local", str(remote)], root, tmp_path)
    _commit(root, tmp_path, "smoke results")
    repo.dvc(["push"], root, tmp_path)

    clone = tmp_path / "clone"
    repo.sh(["git", "clone", "-q", str(root), str(clone)], tmp_path, tmp_path)
    assert not (clone / "data").exists()
    repo.dvc(["pull"], clone, tmp_path)
    outs = ["data/datasets/real", "data/library", "data/generator", "data/synth/midg", "data/synth/copypaste",
            "data/datasets/midg", "data/metrics", "reports/metrics.json"]
    outs += [f"data/runs/{k}" for k in json.loads((root / "reports" / "metrics.json").read_text())["runs"]]
    for rel in outs:
        a, b = root / rel, clone / rel
        if a.is_file():
            assert a.read_bytes() == b.read_bytes(), rel
        else:
            assert (clone / rel).is_dir() and not _same_tree(a, b), (rel, _same_tree(a, b)[:5])
    assert "Data and pipelines are up to date" in repo.dvc(["status"], clone, tmp_path).stdout
    # `midg run` in the fresh clone: everything is there, nothing reruns
    repo.midg(["run", "--profile", "smoke"], clone, tmp_path)
    log = (clone / "data" / "logs" / "midg-run.log").read_text()
    assert "Running stage" not in log


@pytest.mark.slow
def test_exp_run_compares_two_generator_settings(smoke, tmp_path):
    root = repo.copy_project(smoke, tmp_path / "project")
    _commit(root, tmp_path, "smoke baseline")
    steps = yaml.safe_load((root / "params.yaml").read_text())["profiles"]["smoke"]["generator"].get("steps")
    r = repo.dvc(["exp", "run", "-n", "fewer-steps", "-S", "profiles.smoke.generator.steps=3"], root, tmp_path)
    ran = {line.split("'")[1] for line in r.stdout.splitlines() if line.startswith("Running stage")}
    assert "generator_train" in ran and "generate@midg" in ran and "report" in ran
    assert not {s for s in ran if s.startswith(("detect@", "evaluate@")) and "-midg-" not in s}  # real, copypaste kept
    assert "prepare" not in ran and "generate@copypaste" not in ran

    shown = json.loads(repo.dvc(["exp", "show", "--json"], root, tmp_path).stdout)
    rows = {}  # name (workspace, main, fewer-steps) -> its params and metrics
    for commit in shown:
        rows[commit.get("name") or commit["rev"]] = commit["data"]
        for exp in commit.get("experiments") or []:
            for rev in exp["revs"]:
                rows[rev["name"]] = rev["data"]
    for name, want in (("main", steps), ("fewer-steps", 3)):
        params = rows[name]["params"]["params.yaml"]["data"]
        assert params["profiles"]["smoke"]["generator"].get("steps") == want, name
        results = rows[name]["metrics"]["reports/metrics.json"]["data"]["results"]
        assert all("midg" in conds and "gain_map50" in conds["midg"] for conds in results.values()), name
