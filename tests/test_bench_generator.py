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


def test_crop_sheet_shows_the_real_defects_on_their_templates(tmp_path):
    import cv2
    import numpy as np

    import defect_crops
    from helpers_generate import make_paired_dataset

    from midg.datasets.images import read_image
    from midg.datasets.layout import load_dataset

    real = make_paired_dataset(tmp_path / "real", n_images=6)
    plain = defect_crops.crops_by_class(real, 2)
    on_templates = defect_crops.crops_by_class(real, 2, on_templates=True)
    # these boards' defect images are their templates plus the defects: copied back, the same pixels
    assert sum(len(v) for v in plain.values()) >= 2
    for name, tiles in plain.items():
        assert all(np.array_equal(a, b) for a, b in zip(tiles, on_templates[name]))
    # a captured surface that differs from the template (+9 grey levels, under the change threshold)
    ds = load_dataset(real)
    e = next(e for e in ds.images("train") if e.boxes)
    brighter = np.clip(read_image(ds.path(e.file)).astype(int) + 9, 0, 255).astype(np.uint8)
    cv2.imwrite(str(ds.path(e.file)), brighter)
    first = ds.names[e.boxes[0].cls]
    assert not np.array_equal(defect_crops.crops_by_class(real, 2)[first][0],
                              defect_crops.crops_by_class(real, 2, on_templates=True)[first][0])
    out = tmp_path / "sheet.png"
    defect_crops.main(["--real", str(real), "--synthetic", str(real), "--out", str(out), "--per-class", "1",
                       "--on-templates", "--zoom", "2"])
    one = tmp_path / "one.png"
    defect_crops.main(["--real", str(real), "--synthetic", str(real), "--out", str(one), "--per-class", "1"])
    a, b = cv2.imread(str(out), 0), cv2.imread(str(one), 0)
    assert a.shape[0] == 2 * b.shape[0] and a.shape[1] > 2 * b.shape[1]  # zoomed, and one more group of crops
