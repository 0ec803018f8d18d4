"""benchmarks/deeppcb.py's data-efficiency sweep and benchmarks/cell_tables.py's figure: the numbers behind the curve (per arm and N,
the mean and the paired difference to real-only with its 95 % interval), the bundle's
per-N subsets, and the figure itself.

    .venv/bin/python -m pytest tests/test_bench_curve.py -x -q
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import cell_tables  # noqa: E402
import deeppcb  # noqa: E402


def _cell(cond: str, seed: int, n: int, map50: float) -> dict:
    return {"detector": "yolov8n", "condition": cond, "seed": seed, "n_images": n, "map50": map50,
            "map50_95": map50 / 2, "profile": "bench-cpu", "device": "cpu", "git_rev": "abc1234", "git_dirty": False}


CELLS = ([_cell("real", s, 30, v) for s, v in enumerate((0.50, 0.60, 0.55))]
         + [_cell("midg_annotated", s, 30, v) for s, v in enumerate((0.56, 0.65, 0.61))]
         + [_cell("real", s, 10, v) for s, v in enumerate((0.30, 0.20))]
         + [_cell("midg_annotated", 0, 10, 0.25)])


def test_curve_points_pair_each_seed_with_its_own_real_only_cell():
    points = cell_tables.curve_points(CELLS, "yolov8n")
    real30 = next(p for p in points["real"] if p["n"] == 30)
    assert real30["mean"] == pytest.approx(55.0) and real30["delta"] is None and real30["seeds"] == 3
    midg30 = next(p for p in points["midg_annotated"] if p["n"] == 30)
    # differences 6, 5, 6 points: mean 5.667, sd 0.577, t(2) = 4.303 -> half-width 1.434
    assert midg30["delta"] == pytest.approx(17 / 3)
    assert midg30["delta_ci"] == pytest.approx([17 / 3 - 1.4343, 17 / 3 + 1.4343], abs=1e-3)
    midg10 = next(p for p in points["midg_annotated"] if p["n"] == 10)
    assert midg10["delta"] == pytest.approx(-5.0) and midg10["delta_ci"] is None  # one seed: no interval
    assert [p["n"] for p in points["real"]] == [10, 30]


def test_curve_figure_is_written(tmp_path):
    import json

    results = tmp_path / "cells.json"
    results.write_text(json.dumps(CELLS))
    out = tmp_path / "curve.png"
    cell_tables.curve(argparse.Namespace(results=[str(results)], out=str(out)))
    assert out.stat().st_size > 10_000


def test_subset_names_by_n_and_old_bundles():
    meta = {"subsets_by_n": {"10": {"0": ["a", "b"]}, "30": {"0": ["a", "b", "c"]}}, "subsets": {"0": ["a", "b", "c"]}}
    assert deeppcb.subset_names(meta, 0, 10) == ["a", "b"]
    assert deeppcb.subset_names({"subsets": {"0": ["a", "b", "c"]}}, 0, 3) == ["a", "b", "c"]  # before the sweep
    with pytest.raises(SystemExit, match="no N = 100 subset"):
        deeppcb.subset_names(meta, 0, 100)


def test_table_compares_each_arm_with_the_copypaste_on_its_own_canvas(tmp_path, capsys):
    import json

    cells = CELLS + [_cell("copypaste_annotated", s, 30, v) for s, v in enumerate((0.52, 0.61, 0.57))]
    cells += [_cell("copypaste", s, 30, 0.40) for s in range(3)]  # another canvas: never midg_annotated's baseline
    cells += [_cell("midg_annotated_misses", s, 30, v) for s, v in enumerate((0.58, 0.63, 0.62))]  # the closed loop
    path = tmp_path / "cells.json"
    path.write_text(json.dumps(cells))
    cell_tables.table(argparse.Namespace(results=[str(path)], plot=None))
    out = capsys.readouterr().out.splitlines()
    row = next(line for line in out if "| 30 | midg_annotated |" in line)
    # midg_annotated - copypaste_annotated: 4, 4, 4 points (the canvas-less copy-paste would give 16, 25, 21)
    assert "| +4.0 [+4.0, +4.0] (n=3) |" in row
    loop = next(line for line in out if "| 30 | midg_annotated_misses |" in line)
    assert "| +4.3 [" in loop  # 6, 2, 5 points over copypaste_annotated, its own canvas


def test_misses_weights_favour_the_classes_real_only_misses():
    w = deeppcb.misses_weights({"open": 0.9, "short": 0.3, "spur": 0.6, "pin-hole": float("nan")})
    assert w["short"] == pytest.approx(0.49) and w["open"] == pytest.approx(0.01) and w["spur"] == pytest.approx(0.16)
    assert w["short"] > w["spur"] > w["open"]
    assert w["pin-hole"] == pytest.approx((0.01 + 0.49 + 0.16) / 3)  # no val box: the mean weight
    assert deeppcb.misses_weights({"a": 1.0, "b": 1.0}) == {"a": 1.0, "b": 1.0}  # nothing missed: equal
    assert deeppcb.misses_weights({"a": 1.4, "b": -0.2}) == {"a": 0.0, "b": 1.0}  # clipped to [0, 1]


def test_closed_loop_arm_needs_the_real_cell_and_reads_val_not_test(tmp_path, monkeypatch):
    args = argparse.Namespace(work=str(tmp_path), bundle=str(tmp_path / "bundle"))
    with pytest.raises(RuntimeError, match="needs the real-only yolov8n cell of N = 30, seed 1"):
        deeppcb.misses_class_mix(args, "yolov8n", 1, 30)
    run_dir = deeppcb.cell_dir(tmp_path, 30, 1) / "yolov8n_real" / "run"
    run_dir.mkdir(parents=True)
    deeppcb.mark_done(run_dir)
    calls = []

    def fake_sh(cmd, log, env=None):
        calls.append(cmd)
        out = Path(cmd[cmd.index("--out") + 1])
        if "predict" in cmd:
            out.write_text("[]")
        else:  # the evaluator's per_class block, as `midg evaluate` writes it
            out.write_text('{"per_class": {"open": {"ap50": 0.8}, "short": {"ap50": 0.2}}}')

    monkeypatch.setattr(deeppcb, "sh", fake_sh)
    path = deeppcb.misses_class_mix(args, "yolov8n", 1, 30)
    assert all(c[c.index("--split") + 1] == "val" for c in calls) and len(calls) == 2
    import json
    assert json.loads(path.read_text()) == {"open": pytest.approx(0.04), "short": pytest.approx(0.64)}
    deeppcb.misses_class_mix(args, "yolov8n", 1, 30)
    assert len(calls) == 2  # made once, then read back
