"""Which params file a command uses: --params FILE, else ./params.yaml, else the built-in
profiles (the repo's params.yaml, shipped as package data: one source of defaults)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from midg.datasets.errors import ConfigError, MidgError
from midg.datasets.params import PACKAGED_PARAMS, find_params, load_params
from midg.pipelines.cli import app

REPO = Path(__file__).resolve().parents[1]


def test_packaged_params_is_the_repo_file():
    # Not a copy that could drift: the very file, and pyproject ships it.
    assert PACKAGED_PARAMS.samefile(REPO / "params.yaml")
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "params.yaml" in cfg["tool"]["setuptools"]["package-data"]["midg"]


def test_lookup_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_params() == PACKAGED_PARAMS
    assert set(load_params()["profiles"]) >= {"smoke", "demo"}
    (tmp_path / "params.yaml").write_text("profile: mine\nprofiles:\n  mine: {}\n")
    assert find_params() == Path("params.yaml")
    assert load_params()["profile"] == "mine"
    other = tmp_path / "other.yaml"
    other.write_text("profile: x\nprofiles:\n  x: {}\n")
    assert load_params(other)["profile"] == "x"
    with pytest.raises(ConfigError, match="missing.yaml: params file not found"):
        find_params(tmp_path / "missing.yaml")


def test_generator_train_outside_the_repo_uses_builtin_profiles(tmp_path, monkeypatch):
    # The bug: `midg generator train DATA --out CKPT --profile demo` from another folder
    # answered "params.yaml: params file not found". Now it gets as far as the dataset.
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["generator", "train", "nodata", "--out", "ckpt", "--profile", "demo"])
    assert isinstance(result.exception, MidgError), result.output
    assert "params file not found" not in str(result.exception)
    assert "nodata" in str(result.exception)
    assert str(PACKAGED_PARAMS) in result.output
