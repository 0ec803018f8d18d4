"""`benchmarks/deeppcb.py run --executor ray`: the benchmark's seed preparations and cells as
Ray tasks (midg's own executor), each cell once its seed is prepared; a rerun does only the
missing cells.

    .venv/bin/python -m pytest tests/test_bench_ray.py -x -q

A bundle of 16 demo boards stands in for DeepPCB's (the benchmark only needs a canonical
dataset whose meta lists each seed's training images); the smoke profile's detector
settings keep a cell to seconds. Cells run the local executor's own `run_cell` (one function
for both), so what a cell computes is tested once, here only how they are run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _detector_data import make_demo_or_toy

pytest.importorskip("ray", reason="the Ray executor is an optional extra: pip install 'midg[ray]'")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "deeppcb.py"


def _bundle(tmp: Path) -> Path:
    from midg.datasets.layout import DatasetWriter, load_dataset

    demo = load_dataset(make_demo_or_toy(tmp / "demo", n_images=16, size=64))
    train = [e for e in demo.images("train")]
    subsets = {"0": [Path(e.file).name for e in train[:6]], "1": [Path(e.file).name for e in train[2:8]]}
    with DatasetWriter(tmp / "bundle", demo.names, source="test-bundle", seed=0, params={}) as w:
        for split in ("train", "val", "test"):
            for e in demo.images(split):
                w.add_image(split, Path(e.file).name, src=demo.path(e.file), boxes=list(e.boxes))
        for n in demo.normals:
            w.add_normal(Path(n).name, src=demo.path(n))
        w.update_meta(subsets=subsets)
    return tmp / "bundle"


def _params(tmp: Path) -> Path:
    doc = yaml.safe_load((ROOT / "params.yaml").read_text())
    doc["profiles"]["smoke"]["benchmark"] = {"synthetic_images": 6, "n_images": 6}
    out = tmp / "params.yaml"
    out.write_text(yaml.safe_dump(doc))
    return out


def _run(tmp: Path, bundle: Path, params: Path, name: str, seeds: list[str], *extra: str):
    cmd = [sys.executable, str(SCRIPT), "run", "--profile", "smoke", "--params", str(params), "--bundle", str(bundle),
           "--work", str(tmp / f"work_{name}"), "--results", str(tmp / f"{name}.json"), "--detectors", "yolov8n",
           "--conditions", "real", "--seeds", *seeds, "--threads", "1", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench_ray")
    bundle, params = _bundle(tmp), _params(tmp)
    return tmp, _run(tmp, bundle, params, "ray", ["0", "1"], "--executor", "ray")


def test_ray_executor_runs_every_seed_and_cell_as_a_task(runs):
    tmp, ray_run = runs
    assert ray_run.returncode == 0, ray_run.stdout[-3000:] + ray_run.stderr[-3000:]
    cells = json.loads((tmp / "ray.json").read_text())
    assert sorted((c["condition"], c["seed"]) for c in cells) == [("real", 0), ("real", 1)]
    tasks = json.loads((tmp / "work_ray" / "ray-tasks.json").read_text())
    assert sorted(t["stage"] for t in tasks) == ["cell yolov8n/real/n6/s0", "cell yolov8n/real/n6/s1", "prepare n6/s0",
                                                 "prepare n6/s1"]
    assert all(t["rc"] == 0 for t in tasks)
    end = {t["stage"]: t["end"] for t in tasks}  # a cell starts only after its seed's preparation ended
    assert all(t["start"] >= end[f"prepare n6/s{t['stage'][-1]}"] for t in tasks if t["stage"].startswith("cell"))
    for c in cells:  # each record is the cell's own: its seed's subset, its run folder's steps, a score
        run_meta = json.loads((tmp / "work_ray" / "n6" / f"s{c['seed']}" / "yolov8n_real" / "run" / "meta.json").read_text())
        assert c["steps"] == run_meta["steps_done"] == 4 and c["synthetic_images"] == 0
        assert 0.0 <= c["map50"] <= 1.0 and set(c["per_class_ap50"]) == set(run_meta["names"])
        assert c["command"].endswith(f"--seeds {c['seed']} --n-images 6") and c["profile"] == "smoke"
        assert c["n_images"] == 6
    subsets = {s: sorted(p.name for p in (tmp / "work_ray" / "n6" / f"s{s}" / "real" / "images" / "train").iterdir())
               for s in (0, 1)}
    assert subsets[0] != subsets[1] and len(subsets[0]) == 6


def test_rerun_on_ray_does_only_the_missing_cells(runs):
    tmp, _ = runs
    results = tmp / "ray.json"
    results.write_text(json.dumps([c for c in json.loads(results.read_text()) if c["seed"] == 0]))
    again = _run(tmp, tmp / "bundle", tmp / "params.yaml", "ray", ["0", "1"], "--executor", "ray")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "1 cells to do, 1 already" in again.stdout
    tasks = json.loads((tmp / "work_ray" / "ray-tasks.json").read_text())
    assert sorted(t["stage"] for t in tasks) == ["cell yolov8n/real/n6/s1", "prepare n6/s1"]
    assert sorted(c["seed"] for c in json.loads(results.read_text())) == [0, 1]


def test_deadline_is_refused_on_ray(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "run", "--executor", "ray", "--deadline-s", "60", "--seeds", "0",
                        "--detectors", "yolov8n", "--conditions", "real", "--results", str(tmp_path / "r.json")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--deadline-s is for the local executor" in r.stderr
