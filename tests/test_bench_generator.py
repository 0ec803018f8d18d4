"""benchmarks/generator_budget.py: a longer point continues the shorter run of its width and
ends where an uninterrupted run of that length ends (the record's "first N steps" claim);
a width point trains the network it names.

    .venv/bin/python -m pytest tests/test_bench_generator.py -x -q
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the scripts import their sibling deeppcb.py

import generator_budget  # noqa: E402


@pytest.fixture(scope="module")
def boards(tmp_path_factory) -> Path:
    from midg.datasets.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("budget") / "boards"
    make_demo_dataset(root, n_images=16, seed=0, size=64, progress=False)
    return root


def test_longer_point_continues_the_shorter_run_and_equals_an_uninterrupted_one(boards, tmp_path):
    args = argparse.Namespace(real=boards, profile="smoke", params=ROOT / "params.yaml", seed=0)
    assert generator_budget.parse_point("6000:16") == (6000, 16)
    work = tmp_path / "work"
    work.mkdir()
    short = generator_budget.train_point(args, 4, 8, None, work)
    long = generator_budget.train_point(args, 8, 8, 4, work)
    straight = tmp_path / "straight"
    straight.mkdir()
    whole = generator_budget.train_point(args, 8, 8, None, straight)
    assert json.loads((short / "metrics.json").read_text())["step"] == 4
    assert json.loads((long / "metrics.json").read_text())["step"] == 8
    assert "--resume" in (work / "train_8_b8.log").read_text()
    assert (long / "generator.safetensors").read_bytes() == (whole / "generator.safetensors").read_bytes()
    assert generator_budget.train_point(args, 8, 8, 4, work) == long  # done: nothing retrained
    assert (work / "train_8_b8.log").read_text().count("$ ") == 1

    wide = generator_budget.train_point(args, 4, 16, None, work)
    assert json.loads((wide / "config.json").read_text())["generator"]["base_channels"] == 16
    assert json.loads((short / "config.json").read_text())["generator"]["base_channels"] == 8
