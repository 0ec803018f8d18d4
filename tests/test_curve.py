"""The data-efficiency curve: `midg run --n-images 8 4` (or `data.subset_n: [8, 4]`) runs the
whole job at each N and the report draws mAP against N and says where synthetic data helped.

    .venv/bin/python -m pytest tests/test_curve.py -x -q              # all (the DVC runs: minutes)
    .venv/bin/python -m pytest tests/test_curve.py -x -q -m "not slow"  # seconds

The slow test adds N = 4 to the session's smoke pipeline (tests/_pipeline_repo.py, N = 8),
so it also shows that a curve reruns only what the new N needs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import _pipeline_repo as repo
from midg.datasets.errors import ConfigError
from midg.datasets.params import load_params
from midg.pipelines.plan import CURVE_SLOTS, resolve_plan, stage_configs
from midg.pipelines.report_curve import T95, curve_reading, summarise_curve
from midg.pipelines.report_data import RunScore

ROOT = repo.ROOT


def _score(n_tag: str, cond: str, seed: int, m50: float, m95: float | None = None) -> RunScore:
    return RunScore(f"yolov8n-{cond}-{seed}", "yolov8n", cond, seed, m50, m50 / 2 if m95 is None else m95, {}, {"n": n_tag})


# MIDG +10 points at N = 10 on every seed, nothing at N = 40; copy-paste nothing at 10, -10 at 40
SMALL = {"real": [0.30, 0.32, 0.31], "midg": [0.40, 0.43, 0.41], "copypaste": [0.31, 0.33, 0.30]}
LARGE = {"real": [0.60, 0.62, 0.61], "midg": [0.61, 0.60, 0.62], "copypaste": [0.50, 0.52, 0.50]}


def _scores(table: dict[str, list[float]], seeds: int = 3) -> list[RunScore]:
    return [_score("", cond, s, vals[s]) for cond, vals in table.items() for s in range(seeds)]


# ---------------------------------------------------------------- numbers and words


def test_curve_summary_pairs_seeds_and_reads_where_midg_helped():
    summary = summarise_curve({40: _scores(LARGE), 10: _scores(SMALL)})
    midg = summary["yolov8n"]["midg"]
    assert [r["n"] for r in midg] == [10, 40]  # ascending N, whatever order the job gave
    d = [0.10, 0.11, 0.10]  # the paired differences at N = 10
    mean = sum(d) / 3
    sd = (sum((x - mean) ** 2 for x in d) / 2) ** 0.5
    half = T95[2] * sd / 3 ** 0.5
    assert midg[0]["map50"] == pytest.approx(0.41333, abs=1e-5) and midg[0]["gain_map50"] == pytest.approx(mean, abs=1e-6)
    assert midg[0]["gain_map50_ci"] == pytest.approx([mean - half, mean + half], abs=1e-6)
    assert midg[0]["gain_map50_95"] == pytest.approx(mean / 2, abs=1e-6) and midg[0]["paired_seeds"] == 3
    assert midg[1]["gain_map50"] == pytest.approx(0.0, abs=1e-6) and midg[1]["gain_map50_ci"][0] < 0 < midg[1]["gain_map50_ci"][1]
    assert "gain_map50" not in summary["yolov8n"]["real"][0] and summary["yolov8n"]["real"][1]["seeds"] == 3

    text = " ".join(curve_reading(summary))
    assert "Data efficiency, yolov8n: copypaste helped at no N; midg helped at N = 10 and not at N = 40." in text
    assert (f"midg against real-only (mAP50; 3 paired seeds, 95 % t intervals): helped at N = 10 "
            f"(+{mean * 100:.1f} points, 95 % interval [+{(mean - half) * 100:.1f}, +{(mean + half) * 100:.1f}]); "
            f"did not help at N = 40 (+0.0 points") in text
    assert "the interval includes 0)." in text
    assert re.search(r"copypaste against real-only .*: did not help at N = 10 .*; hurt at N = 40 \(-10\.3 points", text)


def test_one_seed_curve_says_so_and_judges_by_half_a_point():
    one = {4: [_score("", "real", 0, 0.30), _score("", "midg", 0, 0.40), _score("", "copypaste", 0, 0.31)],
           8: [_score("", "real", 0, 0.60), _score("", "midg", 0, 0.602), _score("", "copypaste", 0, 0.50)]}
    summary = summarise_curve(one)
    assert summary["yolov8n"]["midg"][0]["gain_map50_ci"] is None and summary["yolov8n"]["midg"][0]["paired_seeds"] == 1
    text = " ".join(curve_reading(summary))
    assert "copypaste helped at N = 4 and not at N = 8; midg helped at N = 4 and not at N = 8." in text
    assert ("midg against real-only (mAP50; one seed: no interval, so a difference may be noise): "
            "helped at N = 4 (+10.0 points); did not help at N = 8 (+0.2 points).") in text
    assert "helped at N = 4 (+1.0 points); hurt at N = 8 (-10.0 points)." in text
    from midg.pipelines.report_curve import untrained_warnings

    one[2] = [_score("", "real", 0, 0.0), _score("", "midg", 0, 0.04)]
    assert untrained_warnings(one) == [
        "At N = 2 every run scored below mAP50 0.05: the detectors learnt next to nothing within their budget there, "
        "so those points show the plumbing, not the worth of the data."]


# ---------------------------------------------------------------- the plan


def test_plan_puts_the_first_n_in_data_and_each_further_n_in_a_slot():
    params = load_params(ROOT / "params.yaml")
    params["run"] = {}
    one = stage_configs(resolve_plan(params, "smoke"))
    assert all(one[f"curve-{s}.json"] == {"active": False} for s in CURVE_SLOTS)
    assert "curve" not in one["report.json"]
    params["run"] = {"subset_n": [8]}  # a one-element list is the same job as subset_n: 8
    assert stage_configs(resolve_plan(params, "smoke")) == one
    params["run"] = {"subset_n": [8, 4]}
    plan = resolve_plan(params, "smoke")
    two = stage_configs(plan)
    assert plan.points() == [(0, 8), (1, 4)]
    # the first N's stages keep their configs byte for byte: adding a point reruns none of them
    assert {k for k in one if one[k] != two[k]} == {"curve-1.json", "report.json"}
    point = two["curve-1.json"]
    assert point["active"] and point["n"] == 4 and point["configs"]["data.json"]["data"]["subset_n"] == 4
    assert sorted(k for k in point["configs"] if k.startswith("cells/")) == [
        f"cells/yolov8n-{c}-0.json" for c in ("copypaste", "midg", "real")]  # the plan's cells only
    assert point["configs"]["cells/yolov8n-midg-0.json"] == two["cells/yolov8n-midg-0.json"]
    assert two["report.json"]["curve"] == [{"slot": 0, "n": 8}, {"slot": 1, "n": 4}]
    for bad, match in (([4, 4], "distinct"), ([0, 4], "at least 1"), ([1, 2, 3, 4, 5], "at most 4")):
        params["run"] = {"subset_n": bad}
        with pytest.raises(ConfigError, match=match):
            resolve_plan(params, "smoke")


def test_each_n_prepares_a_nested_subset(tmp_path, tiny_canonical):
    """Two points of a curve import the same source and draw with the same seed: the smaller
    N's images lie inside the larger N's, and the report says so when they do not."""
    from midg.pipelines.report_curve import _chosen, nesting_warnings
    from midg.pipelines.stages import prepare_stage

    reals = {}
    for n in (4, 2, 3):
        cfg = tmp_path / str(n) / "data.json"
        cfg.parent.mkdir()
        cfg.write_text(json.dumps({"data": {"source": str(tiny_canonical), "subset_n": n, "seed": 0}}))
        prepare_stage(cfg, tmp_path / f"real{n}")
        reals[n] = tmp_path / f"real{n}"
    chosen = {n: _chosen(p) for n, p in reals.items()}
    assert [len(chosen[n]) for n in (2, 3, 4)] == [2, 3, 4]
    assert chosen[2] < chosen[3] < chosen[4]
    assert nesting_warnings(reals) == []
    for name, files in (("a", ["images/train/x.png", "images/train/y.png"]),
                        ("b", ["images/train/y.png", "images/train/z.png", "images/train/w.png"])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "meta.json").write_text(json.dumps({"subset": {"chosen": files}}))
    assert nesting_warnings({2: tmp_path / "a", 3: tmp_path / "b"}) == [
        "The N = 2 training images are not all inside the N = 3 ones (1 outside): the curve's points are not nested "
        "subsets, so a step along N changes which images as well as how many."]


class _Node:
    """Ray's answers call_tasks and stage_resources read: one node, 4 CPUs, 1 GPU."""

    @staticmethod
    def cluster_resources():
        return {"CPU": 4.0, "GPU": 1.0}

    @staticmethod
    def nodes():
        return [{"Alive": True, "Resources": {"CPU": 4.0, "GPU": 1.0}}]


def test_a_point_runs_after_config_alone_and_before_the_report(tmp_path):
    """Without DVC (`--no-dvc`, or Ray without DVC) a point is one call; Ray starts it with the
    first N's stages, and asks for what the most demanding of its stages asks."""
    from midg.pipelines.calls import stage_calls
    from midg.pipelines.ray_executor import call_tasks, stage_resources

    params = load_params(ROOT / "params.yaml")
    params["run"] = {"subset_n": [8, 4, 6]}
    plan = resolve_plan(params, "smoke")
    calls = stage_calls(plan)
    assert [c.name for c in calls][-3:] == ["curve@1", "curve@2", "report"]
    tasks = {t.name: t for t in call_tasks(calls, Path("."), _Node())}
    assert set(tasks["curve@1"].needs) == {"config"} and {"curve@1", "curve@2"} <= set(tasks["report"].needs)
    params["run"] = {}
    assert not [c for c in stage_calls(resolve_plan(params, "smoke")) if c.name.startswith("curve")]

    conf = tmp_path / "data" / "config"
    conf.mkdir(parents=True)
    configs = stage_configs(plan)
    configs["curve-1.json"]["configs"]["cells/yolov8n-midg-0.json"]["detector_params"] = {"device": "cuda"}
    for name in ("curve-1.json", "curve-2.json", "curve-3.json"):
        (conf / name).write_text(json.dumps(configs[name]))
    assert stage_resources(tmp_path, "curve@1", 1) == {"num_gpus": 1, "num_cpus": 1}
    assert stage_resources(tmp_path, "curve@2", 1) == {"num_cpus": 1}  # smoke: one thread for the cells and the generator
    assert stage_resources(tmp_path, "curve@3", 1) == {"num_cpus": 1}  # an inactive slot


# ---------------------------------------------------------------- the report


def _write_metrics(folder: Path, table: dict[str, list[float]], seeds: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    keys = []
    for cond, vals in table.items():
        for s in range(seeds):
            key = f"yolov8n-{cond}-{s}"
            (folder / f"{key}.json").write_text(json.dumps({
                "map50": vals[s], "map50_95": vals[s] / 2, "per_class": {"open": {"ap50": vals[s], "ap": vals[s] / 2}},
                "detector": "yolov8n", "condition": cond, "seed": s}))
            keys.append(key)
    return keys


def test_report_of_two_n_has_the_curve_and_one_n_stays_as_it_was(tmp_path):
    from midg.datasets.demo import make_demo_dataset
    from midg.pipelines.report import build_report

    real = tmp_path / "data" / "datasets" / "real"
    make_demo_dataset(real, n_images=12, seed=0, size=64, progress=False)
    cells = _write_metrics(tmp_path / "data" / "metrics", LARGE, 3)
    _write_metrics(tmp_path / "data" / "curve" / "1" / "metrics", SMALL, 3)
    make_demo_dataset(tmp_path / "data" / "curve" / "1" / "datasets" / "real", n_images=12, seed=0, size=64,
                      progress=False)
    cfg = {"profile": "smoke", "data": {"source": "demo", "seed": 0, "subset_n": 40},
           "pipeline": {"detectors": ["yolov8n"], "conditions": ["real", "copypaste", "midg"], "seeds": [0, 1, 2]},
           "cells": cells, "sections": {"generate": {"seed": 0}}}
    paths = dict(metrics_dir=tmp_path / "data" / "metrics", runs_dir=tmp_path / "runs", real=real,
                 synth_dir=tmp_path / "synth", generator_dir=tmp_path / "generator", curve_dir=tmp_path / "data" / "curve")
    out = tmp_path / "reports"
    single = build_report(cfg, out_dir=out, **paths)
    single_page = (out / "report.html").read_text(encoding="utf-8")
    assert "curve" not in single and list((out / "data_efficiency").iterdir()) == []
    assert "Data efficiency" not in single_page and "This run is one point of a curve: 40" in single_page

    metrics = build_report({**cfg, "curve": [{"slot": 0, "n": 40}, {"slot": 1, "n": 10}]}, out_dir=out, **paths)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["results"] == single["results"] and metrics["runs"] == single["runs"]  # the first N's, as before
    assert metrics["curve"]["n"] == [10, 40]
    assert metrics["curve"]["runs"]["10"]["yolov8n-midg-1"] == {"map50": 0.43, "map50_95": 0.215}
    midg = metrics["curve"]["results"]["yolov8n"]["midg"]
    assert [r["n"] for r in midg] == [10, 40] and midg[0]["gain_map50"] == pytest.approx(0.103333, abs=1e-6)
    assert (out / "data_efficiency" / "map_vs_n.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<h2>Data efficiency: mAP against N</h2>" in page and 'alt="mAP against N"' in page
    assert "midg helped at N = 10 and not at N = 40" in page
    assert "This run is a curve over N = 10, 40" in page
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "midg helped at N = 10 and not at N = 40" in summary and "Figure: data_efficiency/map_vs_n.png" in summary
    assert "yolov8n,midg,10,3,0.413333," in (out / "data_efficiency" / "map_vs_n.csv").read_text()

    build_report(cfg, out_dir=out, **paths)  # back to one N: the figure goes, the page is as before
    assert list((out / "data_efficiency").iterdir()) == [] and "curve" not in json.loads((out / "metrics.json").read_text())
    strip = lambda p: re.sub(r"generated [^&]*&middot;", "", p)  # noqa: E731 (the page's time stamp)
    assert strip((out / "report.html").read_text(encoding="utf-8")) == strip(single_page)


# ---------------------------------------------------------------- the whole job, through DVC


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    return repo.smoke_project(tmp_path_factory)


def _ran(root: Path) -> set[str]:
    log = (root / "data" / "logs" / "midg-run.log").read_text(encoding="utf-8")
    return set(re.findall(r"^Running stage '([^']+)'", log, re.M))


@pytest.mark.slow
def test_a_curve_through_dvc_adds_a_point_and_the_report_reads_it(smoke, tmp_path):
    root = repo.copy_project(smoke, tmp_path / "p")
    r = repo.midg(["run", "--profile", "smoke", "--n-images", "8", "4"], root, tmp_path, timeout=1800)
    assert _ran(root) == {"config", "curve@1", "report"}  # N = 8 is the smoke run's own: nothing of it reruns
    assert "Data and pipelines are up to date" in repo.dvc(["status"], root, tmp_path).stdout

    from midg.datasets.layout import load_dataset

    point = root / "data" / "curve" / "1"
    assert json.loads((point / "point.json").read_text())["n"] == 4
    small, large = load_dataset(point / "datasets" / "real"), load_dataset(root / "data" / "datasets" / "real")
    names = lambda ds: {Path(e.file).name for e in ds.images("train") if e.boxes}  # noqa: E731
    assert len(names(small)) == 4 and len(names(large)) == 8 and names(small) < names(large)  # nested
    assert [e.file for e in small.images("test")] == [e.file for e in large.images("test")]
    # the point's generator and synthetic sets learnt from its 4 images only
    canvases = {c["source"] for c in load_dataset(point / "synth" / "midg").meta["canvases"]}
    assert canvases and canvases <= {e.file for e in small.images("train")}
    boxes = sum(len(e.boxes) for e in small.images("train"))
    generator = json.loads((point / "generator" / "config.json").read_text())["dataset"]
    assert generator["root"].endswith("data/curve/1/datasets/real") and generator["training_crops"]["defect_crops"] == boxes
    library = json.loads((point / "library" / "stats.json").read_text())
    assert sum(c["count"] for c in library["per_class"].values()) == boxes < sum(len(e.boxes) for e in large.images("train"))

    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    assert metrics["curve"]["n"] == [4, 8]
    for n, folder in ((4, point / "metrics"), (8, root / "data" / "metrics")):
        runs = metrics["curve"]["runs"][str(n)]
        assert len(runs) == 3
        for key, row in runs.items():
            assert row["map50"] == pytest.approx(json.loads((folder / f"{key}.json").read_text())["map50"], abs=1e-6)
    rows = metrics["curve"]["results"]["yolov8n"]
    assert set(rows) == {"real", "copypaste", "midg"} and all([r["n"] for r in v] == [4, 8] for v in rows.values())
    page = (root / "reports" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Data efficiency: mAP against N</h2>" in page
    assert re.search(r"Data efficiency, yolov8n: copypaste helped at [^;]*; midg helped at ", page)
    assert "one seed: no interval" in page
    assert (root / "reports" / "data_efficiency" / "map_vs_n.png").read_bytes()[:4] == b"\x89PNG"
    said = " ".join((r.stdout + r.stderr).split())
    assert "3 stage(s) ran" in said and "mAP50 against N" in said and "N=4" in said and "N=8" in said

    # back to one N: the slot is skipped again and the report is the one-N report (config and
    # report may come back from DVC's run cache), with no figure left behind; nothing else reruns
    repo.midg(["run", "--profile", "smoke"], root, tmp_path)
    assert "curve@1" in _ran(root) <= {"config", "curve@1", "report"}
    assert json.loads((point / "skipped.json").read_text())["skipped"] is True
    assert "curve" not in json.loads((root / "reports" / "metrics.json").read_text())
    assert list((root / "reports" / "data_efficiency").iterdir()) == []
    assert "Data efficiency" not in (root / "reports" / "report.html").read_text(encoding="utf-8")
    assert "Data and pipelines are up to date" in repo.dvc(["status"], root, tmp_path).stdout
