"""The job as one command: the plan, params.yaml edits, the stage commands, the report, and
the whole smoke pipeline through `midg run` / `dvc repro` in a throwaway clone.

    .venv/bin/python -m pytest tests/test_pipeline.py -x -q              # all (the DVC run: ~1-2 min)
    .venv/bin/python -m pytest tests/test_pipeline.py -x -q -m "not slow"  # seconds
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import _pipeline_repo as repo
from midg.datasets.errors import ConfigError, DatasetError
from midg.datasets.params import load_params
from midg.pipelines.plan import GRID, Cell, resolve_plan, stage_configs, write_stage_configs

GRID_CELLS = len(GRID["detectors"]) * len(GRID["conditions"]) * len(GRID["seeds"])  # dvc.yaml's detect matrix
from midg.pipelines.runner import set_run_params, stage_calls

ROOT = repo.ROOT
PROFILES = ("smoke", "demo", "paper", "bench-cpu")


# ---------------------------------------------------------------- the plan


def test_every_profile_resolves_with_its_cells():
    params = load_params(ROOT / "params.yaml")
    assert set(PROFILES) <= set(params["profiles"])
    for name in PROFILES:
        plan = resolve_plan(params, name)
        cells = plan.cells()
        assert cells, name
        assert {c.condition for c in cells} == {"real", "copypaste", "midg"}
        assert all(c.detector in GRID["detectors"] and c.seed in GRID["seeds"] for c in cells)
    bench = resolve_plan(params, "bench-cpu")
    assert bench.pipeline.detectors == ("yolov8n",) and bench.pipeline.seeds == (0, 1)
    assert bench.data.source == "deeppcb" and bench.data.subset_n == 100
    paper = resolve_plan(params, "paper")
    assert len(paper.cells()) == 27


def test_unknown_profile_and_keys_list_the_valid_ones():
    params = load_params(ROOT / "params.yaml")
    with pytest.raises(ConfigError, match="valid: smoke, demo, paper, bench-cpu"):
        resolve_plan(params, "fast")
    bad = json.loads(json.dumps(params))
    bad["profiles"]["smoke"]["pipeline"]["detector"] = ["yolov8n"]
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['detector'\]; valid: .*'detectors'"):
        resolve_plan(bad, "smoke")
    bad = json.loads(json.dumps(params))
    bad["profiles"]["smoke"]["pipline"] = {}
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['pipline'\]; valid: .*'pipeline'"):
        resolve_plan(bad, "smoke")
    bad = json.loads(json.dumps(params))
    bad["profiles"]["smoke"]["pipeline"]["seeds"] = [0, 7]
    with pytest.raises(ConfigError, match=r"\[7\] not in dvc.yaml's grid \[0, 1, 2\]"):
        resolve_plan(bad, "smoke")
    bad = json.loads(json.dumps(params))
    bad["profiles"]["smoke"]["pipeline"]["conditions"] = ["midg"]
    with pytest.raises(ConfigError, match="must include 'real'"):
        resolve_plan(bad, "smoke")


def test_run_overrides_replace_the_profile_values():
    params = load_params(ROOT / "params.yaml")
    params["run"] = {"detectors": ["yolov5nu", "faster_rcnn"], "seeds": [1, 2], "data": "mine/data.yaml",
                     "normals": "mine/good"}
    plan = resolve_plan(params, "demo")
    assert plan.pipeline.detectors == ("yolov5nu", "faster_rcnn") and plan.pipeline.seeds == (1, 2)
    assert plan.data.source == "mine/data.yaml" and plan.data.normals == "mine/good"
    assert Cell("faster_rcnn", "midg", 2) in plan.cells() and len(plan.cells()) == 12


def test_stage_configs_change_only_where_the_plan_does(tmp_path):
    """What makes `dvc repro` rerun exactly what a params change touches: every stage reads
    its own JSON, and a change elsewhere leaves that JSON's bytes alone."""
    params = load_params(ROOT / "params.yaml")
    params["run"] = {}
    base = stage_configs(resolve_plan(params, "smoke"))
    assert len([k for k in base if k.startswith("cells/")]) == GRID_CELLS
    assert base["cells/faster_rcnn-real-0.json"] == {"active": False}
    assert base["cells/yolov8n-midg-0.json"]["active"] is True

    other = json.loads(json.dumps(params))  # another profile's sections change: nothing of smoke's does
    other["profiles"]["paper"]["pipeline"]["seeds"] = [0]
    other["profiles"]["paper"]["generator"] = {"steps": 12345}
    assert stage_configs(resolve_plan(other, "smoke")) == base

    more = json.loads(json.dumps(params))  # one more seed: only that seed's cells (and the report)
    more["run"] = {"seeds": [0, 1]}
    changed = {k for k, v in stage_configs(resolve_plan(more, "smoke")).items() if base.get(k) != v}
    assert changed == {f"cells/{d}-{c}-1.json" for d in ["yolov8n"] for c in ("real", "copypaste", "midg")} | {"report.json"}

    out = tmp_path / "config"
    write_stage_configs(resolve_plan(params, "smoke"), out)
    before = {p: p.read_bytes() for p in out.rglob("*.json")}
    write_stage_configs(resolve_plan(params, "smoke"), out)
    assert {p: p.read_bytes() for p in out.rglob("*.json")} == before  # same plan, same bytes


def test_set_run_params_edits_two_lines_and_keeps_the_rest(tmp_path):
    src = (ROOT / "params.yaml").read_text(encoding="utf-8")
    p = tmp_path / "params.yaml"
    p.write_text(src, encoding="utf-8")
    set_run_params(p, "smoke", {"detectors": ["yolov8n", "faster_rcnn"], "seeds": [0, 2], "data": None})
    new = p.read_text(encoding="utf-8")
    doc = yaml.safe_load(new)
    assert doc["profile"] == "smoke"
    assert doc["run"] == {"detectors": ["yolov8n", "faster_rcnn"], "seeds": [0, 2], "data": None, "normals": None,
                          "subset_n": None}
    changed = [(a, b) for a, b in zip(src.splitlines(), new.splitlines()) if a != b]
    assert len(src.splitlines()) == len(new.splitlines()) and len(changed) == 2  # comments and sections untouched
    set_run_params(p, None, {})  # no flags: the profile stays, the overrides go back to null
    doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    assert doc["profile"] == "smoke" and doc["run"] == {"detectors": None, "seeds": None, "data": None, "normals": None,
                                                        "subset_n": None}
    with pytest.raises(ConfigError, match="unknown profile 'gpu'"):
        set_run_params(p, "gpu", {})
    with pytest.raises(ConfigError, match="faster-rcnn"):
        set_run_params(p, None, {"detectors": ["faster-rcnn"]})


def test_stage_calls_are_the_commands_of_dvc_yaml(tmp_path):
    """`midg run --no-dvc` runs exactly what DVC runs, for every stage the plan needs."""
    from dvc.repo import Repo

    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    Repo.init(str(tmp_path), no_scm=True)
    with Repo(str(tmp_path)) as dvc_repo:
        dvc_cmds = {s.name: s.cmd for s in dvc_repo.index.stages}
    params = load_params(ROOT / "params.yaml")
    params["run"] = {"detectors": list(GRID["detectors"]), "subset_n": [100, 10, 30, 50]}
    plan = resolve_plan(params, "paper")
    calls = stage_calls(plan)
    assert len(calls) == len(dvc_cmds)  # paper with every detector of the grid and four N uses every stage
    for call in calls:
        assert " ".join(dvc_cmds[call.name].split()) == call.shell(), call.name
    smoke = stage_calls(resolve_plan(params, "smoke"))
    assert [c.name for c in smoke][:4] == ["config", "prepare", "library", "generator_train"]
    assert [c.name for c in smoke][-1] == "report"


# ---------------------------------------------------------------- stages and report, in process


def _cell_config(tmp_path: Path, key: str, active: bool) -> Path:
    det, cond, seed = key.split("-")
    p = tmp_path / "config" / f"{key}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    content = {"active": True, "profile": "smoke", "detector": det, "condition": cond, "seed": int(seed),
               "key": key, "detector_params": {}} if active else {"active": False}
    p.write_text(json.dumps(content), encoding="utf-8")
    return p


def test_inactive_cells_write_markers_without_heavy_imports(tmp_path):
    code = (
        "import sys, json, pathlib\n"
        "from midg.pipelines.stages import main, is_skipped\n"
        f"t = pathlib.Path({str(tmp_path)!r})\n"
        "assert main(['detect', '--config', str(t / 'config/faster_rcnn-real-2.json'), '--data', str(t / 'none'),"
        " '--gt', str(t / 'none'), '--out', str(t / 'runs/x')]) == 0\n"
        "assert main(['evaluate', '--config', str(t / 'config/faster_rcnn-real-2.json'), '--run', str(t / 'runs/x'),"
        " '--gt', str(t / 'none'), '--out', str(t / 'metrics/x.json')]) == 0\n"
        "assert is_skipped(t / 'runs/x') and is_skipped(t / 'metrics/x.json')\n"
        "heavy = [m for m in ('torch', 'ultralytics', 'cv2', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    _cell_config(tmp_path, "faster_rcnn-real-2", active=False)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "runs/x/skipped.json").read_text())["skipped"] is True


def test_a_params_file_outside_the_project_is_copied_never_edited(tmp_path):
    """`midg run --no-dvc` from a folder without params.yaml uses the built-in profiles (the
    installed package's file) or --params FILE: the run writes its profile and flags into a
    copy under data/, and the original keeps its bytes."""
    from midg.pipelines.runner import RUN_PARAMS, run_params_file

    outside = tmp_path / "elsewhere" / "params.yaml"
    outside.parent.mkdir()
    shutil.copy(ROOT / "params.yaml", outside)
    before = outside.read_bytes()
    project = tmp_path / "project"
    project.mkdir()
    used = run_params_file(project, outside.resolve())
    assert used == project / RUN_PARAMS and used.read_bytes() == before
    set_run_params(used, "smoke", {"detectors": ["yolov8n"], "seeds": [1], "data": None})
    assert outside.read_bytes() == before and used.read_bytes() != before
    own = project / "params.yaml"
    shutil.copy(ROOT / "params.yaml", own)
    assert run_params_file(project, own.resolve()) == own.resolve()  # the project's own file is its to edit


def test_stage_errors_name_the_file(tmp_path, capsys):
    from midg.pipelines.stages import main

    assert main(["prepare", "--config", str(tmp_path / "nope.json"), "--out", str(tmp_path / "real")]) == 2
    assert "nope.json: stage config missing" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"active": tru', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"bad.json:1: not valid JSON"):
        from midg.pipelines.plan import read_stage_config

        read_stage_config(bad)


def _data_config(tmp_path: Path, **data) -> Path:
    p = tmp_path / "data.json"
    p.write_text(json.dumps({"data": {"subset_n": 0, "seed": 0, **data}}), encoding="utf-8")
    return p


def test_prepare_takes_a_users_yolo_dataset_with_extra_normals(tmp_path):
    from data_builders import write_image, write_yolo_dataset
    from midg.datasets.layout import load_dataset
    from midg.pipelines.stages import prepare_stage

    src = write_yolo_dataset(tmp_path / "mine")
    normals = tmp_path / "good"
    for k in range(3):
        write_image(normals / f"ok{k}.png", 24, 32, seed=900 + k)
    prepare_stage(_data_config(tmp_path, source=str(src / "data.yaml"), normals=str(normals)), tmp_path / "real")
    ds = load_dataset(tmp_path / "real")
    assert all(ds.images(s) for s in ("train", "val", "test"))
    assert sorted(Path(n).name for n in ds.normals) == ["ok0.png", "ok1.png", "ok2.png"]
    assert not list(tmp_path.glob(".real.*"))  # no temporary folder left behind


def test_prepare_subsets_a_canonical_dataset_and_refuses_too_few(tmp_path, tiny_canonical):
    from midg.datasets.layout import load_dataset
    from midg.pipelines.stages import prepare_stage

    prepare_stage(_data_config(tmp_path, source=str(tiny_canonical), subset_n=2), tmp_path / "real")
    ds = load_dataset(tmp_path / "real")
    assert sum(1 for e in ds.images("train") if e.boxes) == 2 and len(ds.images("test")) == 2
    assert len(ds.normals) == 3 and not {e.template for e in ds.images("test")} & set(ds.normals)
    with pytest.raises(DatasetError, match=r"data.json: data.subset_n=50 but the source \(.*tiny\) has only 5 annotated training images"):
        prepare_stage(_data_config(tmp_path, source=str(tiny_canonical), subset_n=50), tmp_path / "real2")
    with pytest.raises(DatasetError, match="no normals/"):
        from data_builders import write_yolo_dataset

        prepare_stage(_data_config(tmp_path, source=str(write_yolo_dataset(tmp_path / "y"))), tmp_path / "real3")
    assert not (tmp_path / "real3").exists()  # refused before anything was written
    with pytest.raises(DatasetError, match="data source does not exist"):
        prepare_stage(_data_config(tmp_path, source=str(tmp_path / "nowhere")), tmp_path / "real4")


def test_prepare_splits_a_single_coco_file_three_ways(tmp_path):
    from data_builders import write_image
    from midg.datasets.layout import load_dataset
    from midg.pipelines.stages import prepare_stage

    images = tmp_path / "imgs"
    doc = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "scratch"}]}
    for i in range(10):
        write_image(images / f"{i}.png", 32, 32, seed=i)
        doc["images"].append({"id": i + 1, "file_name": f"{i}.png", "width": 32, "height": 32})
        doc["annotations"].append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [4, 4, 10, 8],
                                   "area": 80, "iscrowd": 0})
    (tmp_path / "instances.json").write_text(json.dumps(doc))
    write_image(tmp_path / "good" / "ok.png", 32, 32, seed=99)
    cfg = _data_config(tmp_path, source=str(tmp_path / "instances.json"), coco_images=str(images),
                       normals=str(tmp_path / "good"))
    prepare_stage(cfg, tmp_path / "real")
    ds = load_dataset(tmp_path / "real")
    assert [len(ds.images(s)) for s in ("train", "val", "test")] == [7, 1, 2] and ds.names == ["scratch"]
    again = tmp_path / "again"
    prepare_stage(cfg, again)  # the same seed, the same split, the same bytes
    assert [e.file for e in load_dataset(again).images("test")] == [e.file for e in ds.images("test")]
    assert (again / "annotations" / "test.json").read_bytes() == (tmp_path / "real" / "annotations" / "test.json").read_bytes()


def _fake_metrics(metrics_dir: Path, key: str, map50: float, map50_95: float) -> dict:
    det, cond, seed = key.split("-")
    m = {"map50": map50, "map50_95": map50_95, "map33": map50, "ar100": 0.5,
         "per_class": {"open": {"ap50": map50, "ap": map50_95}, "short": {"ap50": None, "ap": None}},
         "detector": det, "condition": cond, "seed": int(seed), "steps": 10, "batch": 2}
    metrics_dir.mkdir(parents=True, exist_ok=True)
    (metrics_dir / f"{key}.json").write_text(json.dumps(m), encoding="utf-8")
    return m


def test_report_numbers_are_those_of_the_metrics_files(tmp_path):
    from midg.datasets.demo import make_demo_dataset
    from midg.pipelines.report import build_report

    real = tmp_path / "real"
    make_demo_dataset(real, n_images=12, seed=0, size=64, progress=False)
    scores = {"yolov8n-real-0": (0.40, 0.20), "yolov8n-real-1": (0.50, 0.30),
              "yolov8n-midg-0": (0.60, 0.31), "yolov8n-midg-1": (0.70, 0.33)}
    for key, (a, b) in scores.items():
        _fake_metrics(tmp_path / "metrics", key, a, b)
    cfg = {"profile": "smoke", "data": {"source": "demo", "seed": 0},
           "pipeline": {"detectors": ["yolov8n"], "conditions": ["real", "midg"], "seeds": [0, 1]},
           "cells": list(scores), "sections": {"generate": {"seed": 0}}}
    out = tmp_path / "reports"
    metrics = build_report(cfg, metrics_dir=tmp_path / "metrics", runs_dir=tmp_path / "runs", real=real,
                           synth_dir=tmp_path / "synth", generator_dir=tmp_path / "generator", out_dir=out)
    r = json.loads((out / "metrics.json").read_text())
    assert r == metrics
    real_row, midg_row = r["results"]["yolov8n"]["real"], r["results"]["yolov8n"]["midg"]
    assert real_row["map50"] == pytest.approx(0.45) and real_row["map50_std"] == pytest.approx(0.0707107, abs=1e-6)
    assert midg_row["map50"] == pytest.approx(0.65) and midg_row["gain_map50"] == pytest.approx(0.20)
    assert midg_row["gain_map50_95"] == pytest.approx(0.07) and midg_row["seeds"] == 2
    page = (out / "report.html").read_text(encoding="utf-8")
    for text in ("0.450 ± 0.071", "0.650 ± 0.071", "+0.200", "+0.070", "Profile <b>smoke</b>"):
        assert text in page, text
    assert "| yolov8n | midg | 0.650 ± 0.071 | 0.320 ± 0.014 | +0.200 | +0.070 | 2 |" in (out / "summary.md").read_text()
    # the reading says it in words: +20 points against a seed spread of 7.1
    assert "midg +20.0 points (more than twice the seed spread)" in page
    assert "real-only scores mAP50 0.450; best is midg" in (out / "summary.md").read_text()
    # self-contained: every image inlined, nothing fetched
    assert not re.search(r'src="(?!data:image/png;base64,)', page) and "http" not in page.replace("http-equiv", "")
    assert (out / "plots" / "map.csv").read_text().splitlines()[1].startswith("yolov8n-real-0,yolov8n,real,0,0.400000")
    assert "yolov8n/midg,yolov8n,midg,0.200000,0.070000" in (out / "plots" / "gain.csv").read_text()


def test_reading_says_when_a_gain_is_within_the_noise_or_unjudgeable():
    from midg.pipelines.report_data import RunScore, reading, summarise

    def score(cond, seed, m50):
        return RunScore(f"yolov8n-{cond}-{seed}", "yolov8n", cond, seed, m50, m50 / 2, {"open": m50}, {})

    noisy = [score("real", 0, 0.40), score("real", 1, 0.50), score("copypaste", 0, 0.47), score("copypaste", 1, 0.46)]
    text = " ".join(reading(summarise(noisy), {"yolov8n": {"real": {"open": 0.45}, "copypaste": {"open": 0.465}}}, noisy))
    assert "copypaste +1.5 points (within twice the seed spread: not a clear difference)" in text
    assert "copypaste: open +1.5." in text  # one class moved: named once
    single = [score("real", 0, 0.01), score("midg", 0, 0.02)]
    text = " ".join(reading(summarise(single), {}, single))
    assert "midg +1.0 points (one seed: no spread to judge it against)" in text
    assert "barely learnt within this budget" in text and "yolov8n learnt next to nothing" in text
    tied = [score("real", 0, 0.0), score("midg", 0, 0.0)]
    text = " ".join(reading(summarise(tied), {"yolov8n": {"real": {"open": 0.0}, "midg": {"open": 0.0}}}, tied))
    assert "best is a tie (real, midg)" in text and "moved most" not in text


def test_report_refuses_a_missing_or_skipped_run(tmp_path):
    from midg.pipelines.report_data import load_scores

    with pytest.raises(DatasetError, match="yolov8n-real-0.json: missing"):
        load_scores(["yolov8n-real-0"], tmp_path)
    (tmp_path / "yolov8n-real-0.json").write_text('{"skipped": true}')
    with pytest.raises(DatasetError, match="'skipped' marker but the plan includes this run"):
        load_scores(["yolov8n-real-0"], tmp_path)


# ---------------------------------------------------------------- the whole job, through DVC


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    return repo.smoke_project(tmp_path_factory)


@pytest.mark.slow
def test_smoke_pipeline_report_matches_the_metrics_files(smoke):
    report = json.loads((smoke / "reports" / "metrics.json").read_text())
    assert report["profile"] == "smoke"
    plan_cells = json.loads((smoke / "data" / "config" / "report.json").read_text())["cells"]
    assert set(report["runs"]) == set(plan_cells) and plan_cells
    page = (smoke / "reports" / "report.html").read_text(encoding="utf-8")
    summary = (smoke / "reports" / "summary.md").read_text(encoding="utf-8")
    for det, conds in report["results"].items():
        for cond, row in conds.items():
            runs = [json.loads((smoke / "data" / "metrics" / f"{k}.json").read_text())
                    for k in plan_cells if k.startswith(f"{det}-{cond}-")]
            mean50 = sum(m["map50"] for m in runs) / len(runs)
            mean95 = sum(m["map50_95"] for m in runs) / len(runs)
            assert row["map50"] == pytest.approx(mean50, abs=1e-6) and row["map50_95"] == pytest.approx(mean95, abs=1e-6)
            cell = f"{row['map50']:.3f} ± {row['map50_std']:.3f}"
            assert cell in page and f"| {det} | {cond} | {cell} |" in summary
    # the skipped cells of the grid wrote markers, the plan's cells real metrics
    skipped = [p for p in (smoke / "data" / "metrics").glob("*.json") if json.loads(p.read_text()).get("skipped")]
    assert len(skipped) == GRID_CELLS - len(plan_cells)


@pytest.mark.slow
def test_smoke_pipeline_data_is_sound(smoke):
    from midg.datasets.layout import load_dataset

    real = load_dataset(smoke / "data" / "datasets" / "real")
    test_templates = {e.template for e in real.images("test")}
    assert not test_templates & set(real.normals)  # no test board is painted into training data
    cp = load_dataset(smoke / "data" / "synth" / "copypaste")
    mg = load_dataset(smoke / "data" / "synth" / "midg")
    # the same canvas per output image (the annotated training images: canvas auto on a dataset); MIDG
    # places by matching (the boards are paired), copy-paste, the baseline, by the sampler (placement
    # auto), each kept clear of the real boxes, so a crowded image may take one defect fewer in one of them
    canvases = lambda ds: [(c["image"].rsplit("_", 1)[1], c["source"], c["canvas"]) for c in ds.meta["canvases"]]  # noqa: E731
    assert canvases(cp) == canvases(mg) and {c for _, _, c in canvases(cp)} == {"annotated"}
    assert {c["source"] for c in cp.meta["canvases"]} <= {e.file for e in real.images("train")}
    assert abs(len(cp.meta["defects"]) - len(mg.meta["defects"])) <= 0.1 * len(cp.meta["defects"])
    assert any(d.get("entry") is not None for d in mg.meta["defects"])
    assert not any("entry" in d for d in cp.meta["defects"])
    assert mg.meta["generate"]["params"]["placement"] == "matched"
    assert cp.meta["generate"]["params"]["placement"] == "conductor"
    merged = load_dataset(smoke / "data" / "datasets" / "midg")
    assert len(merged.images("train")) == len(real.images("train")) + len(mg.images("train"))
    assert [e.file for e in merged.images("test")] == [e.file for e in real.images("test")]


@pytest.mark.slow
def test_second_repro_reruns_nothing_and_another_profiles_edit_reruns_only_config(smoke, tmp_path):
    """With nothing changed nothing reruns; an edit to another profile reruns `config` alone
    (its JSONs keep their bytes). That one more seed reruns only its cells is checked on
    the configs in test_stage_configs_change_only_where_the_plan_does."""
    root = repo.copy_project(smoke, tmp_path / "p")
    r = repo.dvc(["repro"], root, tmp_path)
    assert "Running stage" not in r.stdout and "Data and pipelines are up to date" in r.stdout
    assert "Data and pipelines are up to date" in repo.dvc(["status"], root, tmp_path).stdout

    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    params["profiles"]["paper"]["pipeline"]["seeds"] = [0, 1]
    params["profiles"]["demo"].setdefault("generator", {})["steps"] = 7
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    r = repo.midg(["run"], root, tmp_path)
    log = (root / "data" / "logs" / "midg-run.log").read_text()
    assert set(re.findall(r"^Running stage '([^']+)'", log, re.M)) == {"config"}
    n = len(repo.dvc(["stage", "list", "--name-only"], root, tmp_path).stdout.split())
    said = " ".join((r.stdout + r.stderr).split())
    assert f"{n} unchanged" not in said and f"{n - 1} unchanged" in said


@pytest.mark.slow
def test_no_dvc_run_in_a_plain_folder(tmp_path):
    """`midg run --no-dvc` anywhere: no git, no dvc.yaml; the same stages in order."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["profile"] = "smoke"
    params["profiles"]["smoke"]["pipeline"]["conditions"] = ["real"]  # the shortest job: no generator
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "my-params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    r = repo.midg(["run", "--no-dvc", "--params", "my-params.yaml"], folder, tmp_path)
    assert (folder / "reports" / "report.html").is_file()
    metrics = json.loads((folder / "reports" / "metrics.json").read_text())
    assert list(metrics["results"]["yolov8n"]) == ["real"]
    assert not (folder / ".dvc").exists() and not (folder / "data" / "generator").exists()
    assert "stage(s) ran" in r.stdout + r.stderr


def test_reading_names_the_runs_n_and_canvas(tmp_path):
    import json

    from midg.pipelines.report_data import scope

    for method, canvas in (("copypaste", "annotated"), ("midg", "annotated")):
        (tmp_path / method).mkdir()
        (tmp_path / method / "meta.json").write_text(json.dumps({"generate": {"canvas": canvas}}))
    text = " ".join(scope({"data": {"subset_n": 40}}, tmp_path))
    assert "40 annotated training images" in text and "midg into the annotated images" in text
    assert "cell_tables.py curve" in text
    text = " ".join(scope({"data": {}}, tmp_path / "nothing"))
    assert "all the annotated training images." in text and "painted" not in text
