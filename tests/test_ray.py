"""`midg run --executor ray`: the smoke job's stages as Ray tasks on this machine, with DVC
still the record and the outputs of a serial run; a killed task fails the run by name and a
rerun redoes only it; without Ray installed, one line says how to get it.

    .venv/bin/python -m pytest tests/test_ray.py -x -q

One Ray run of the smoke profile (module fixture) serves the assertions; the serial run
they compare with is the session's smoke pipeline (tests/_pipeline_repo.py), shared with
test_pipeline.py and test_dvc.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import _pipeline_repo as repo

# What differs between two runs of the same inputs: wall-clock times and the clone's git revision.
VOLATILE = {"train_seconds", "seconds", "created", "git_rev", "git_commit", "date", "time", "started", "finished"}


def _tasks(root: Path) -> list[dict]:
    return json.loads((root / "data" / "logs" / "ray-tasks.json").read_text(encoding="utf-8"))


def _stable(value):
    """A JSON document less its timing and revision fields."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _files(root: Path, project: Path) -> dict[str, bytes]:
    """Every file's bytes, the project's own path (recorded in some configs) replaced by a token."""
    return {p.relative_to(root).as_posix(): p.read_bytes().replace(str(project).encode(), b"<project>")
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".cache"}


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> Path:
    return repo.smoke_project(tmp_path_factory)


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("ray")
    root = repo.make_project(tmp / "project", tmp)
    r = repo.midg(["run", "--profile", "smoke", "--executor", "ray"], root, tmp)
    return root, tmp, r


@pytest.mark.slow
def test_ray_run_is_recorded_by_dvc(ray_run):
    root, tmp, r = ray_run
    stages = repo.dvc(["stage", "list", "--name-only"], root, tmp).stdout.split()
    tasks = _tasks(root)
    assert sorted(t["stage"] for t in tasks) == sorted(stages) and all(t["rc"] == 0 for t in tasks)
    assert f"{len(stages)} stage(s) ran" in " ".join((r.stdout + r.stderr).split())
    assert "Data and pipelines are up to date" in repo.dvc(["status"], root, tmp).stdout
    again = repo.dvc(["repro"], root, tmp)
    assert "Running stage" not in again.stdout and "Data and pipelines are up to date" in again.stdout
    log = (root / "data" / "logs" / "midg-run.log").read_text(encoding="utf-8")
    assert "Running stage 'detect@yolov8n-midg-0'" in log and "evaluated yolov8n-midg-0: mAP50" in log


@pytest.mark.slow
def test_ray_run_equals_the_serial_run(ray_run, serial):
    root = ray_run[0]
    for rel in ("data/datasets/real", "data/library", "data/synth/copypaste", "data/synth/midg",
                "data/datasets/copypaste", "data/datasets/midg"):
        a, b = _files(serial / rel, serial), _files(root / rel, root)
        assert a.keys() == b.keys() and len(a) >= 3, rel
        assert [k for k in a if a[k] != b[k]] == [], rel
    cells = json.loads((serial / "reports" / "metrics.json").read_text())["runs"]
    assert len(cells) == 3
    for metrics in sorted((serial / "data" / "metrics").glob("*.json")):
        mine = root / "data" / "metrics" / metrics.name
        assert _stable(json.loads(mine.read_text())) == _stable(json.loads(metrics.read_text())), metrics.name
    rel = "data/generator/generator.safetensors"
    assert (root / rel).read_bytes() == (serial / rel).read_bytes()
    for key in cells:  # the detectors' own outputs: the same predictions, byte for byte
        rel = f"data/runs/{key}/predictions_test.json"
        assert (root / rel).read_bytes() == (serial / rel).read_bytes(), rel
    report = lambda p: _stable(json.loads((p / "reports" / "metrics.json").read_text())["results"])  # noqa: E731
    assert report(root) == report(serial)


@pytest.mark.slow
def test_ray_runs_independent_stages_side_by_side(ray_run):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: Ray runs one task at a time")
    tasks = {t["stage"]: t for t in _tasks(ray_run[0])}
    order = lambda a, b: tasks[a]["end"] <= tasks[b]["start"]  # noqa: E731
    assert order("config", "prepare") and order("prepare", "generator_train")
    assert order("generator_train", "generate@midg") and order("merge@midg", "detect@yolov8n-midg-0")
    assert order("detect@yolov8n-midg-0", "evaluate@yolov8n-midg-0")
    assert all(order(s, "report") for s in tasks if s != "report")
    spans = sorted((t["start"], t["end"]) for t in tasks.values())
    overlapping = sum(1 for (s0, e0), (s1, _) in zip(spans, spans[1:]) if s1 < e0)
    assert overlapping >= 3  # two CPUs: at least a few stages ran at the same time


def _kill_stage_when_it_starts(pattern: str, proc: subprocess.Popen, root: Path, timeout: float = 240) -> None:
    """SIGKILL the stage process whose command line contains `pattern` and that runs in this
    test's project `root` (never another job's stage of the same name), once it appears."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        for pid in os.listdir("/proc"):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                here = Path(os.readlink(f"/proc/{pid}/cwd")).resolve() == Path(root).resolve()
            except (OSError, ValueError):
                continue
            if here and "midg.pipelines.stages detect" in cmd and pattern in cmd and "-c" not in cmd.split()[:2]:
                time.sleep(3)  # let it start training: the kill lands mid-run
                os.kill(int(pid), signal.SIGKILL)
                return
        time.sleep(0.2)
    raise AssertionError(f"no stage process with {pattern!r} appeared")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the stage's process in /proc")
def test_killed_task_fails_the_run_by_name_and_a_rerun_redoes_only_it(ray_run, tmp_path):
    root = repo.copy_project(ray_run[0], tmp_path / "project")
    key = "yolov8n-midg-0"
    repo.sh(["rm", "-rf", f"data/runs/{key}", f"data/metrics/{key}.json"], root, tmp_path)
    proc = subprocess.Popen([str(repo.BIN / "midg"), "run", "--executor", "ray"], cwd=root, env=repo.env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _kill_stage_when_it_starts(f"data/runs/{key}", proc, root)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, out
    flat = " ".join(out.split())
    assert f"stage detect@{key} failed (exit " in flat and "midg-run.log" in flat
    assert [t["stage"] for t in _tasks(root)] == [f"detect@{key}"]  # nothing else had changed
    assert f"detect@{key}" in repo.dvc(["status"], root, tmp_path).stdout

    repo.midg(["run", "--executor", "ray"], root, tmp_path)
    assert sorted(t["stage"] for t in _tasks(root)) == sorted([f"detect@{key}", f"evaluate@{key}", "report"])
    assert "Data and pipelines are up to date" in repo.dvc(["status"], root, tmp_path).stdout
    assert json.loads((root / "data" / "metrics" / f"{key}.json").read_text())["map50"] is not None


@pytest.mark.slow
def test_a_locked_dvc_repo_is_one_line_before_ray_starts(ray_run, tmp_path):
    root = repo.copy_project(ray_run[0], tmp_path / "project")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom dvc.repo import Repo, lock_repo\n"
                               "with lock_repo(Repo('.')):\n    print('locked', flush=True); time.sleep(60)"],
                              cwd=root, env=repo.env(tmp_path), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = repo.midg(["run", "--executor", "ray"], root, tmp_path, check=False)
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 2 and "DVC: Unable to acquire lock" in " ".join(r.stderr.split())
    assert "[ray] connected" not in (root / "data" / "logs" / "midg-run.log").read_text(encoding="utf-8")


# ---------------------------------------------------------------- the graph and the resource requests


class _OneNode:
    """What call_tasks asks of Ray: the cluster's resources (here one node, 4 CPUs, 2 GPUs)."""

    @staticmethod
    def cluster_resources():
        return {"CPU": 4.0, "GPU": 2.0}

    @staticmethod
    def nodes():
        return [{"Alive": True, "Resources": {"CPU": 4.0, "GPU": 2.0}}]


def test_no_dvc_calls_need_the_stages_whose_outputs_they_read():
    from midg.datasets.params import load_params
    from midg.pipelines.plan import resolve_plan
    from midg.pipelines.ray_executor import call_tasks
    from midg.pipelines.runner import stage_calls

    params = load_params(repo.ROOT / "params.yaml")
    params["run"] = {}
    tasks = {t.name: t for t in call_tasks(stage_calls(resolve_plan(params, "smoke")), Path("."), _OneNode())}
    need = lambda name: set(tasks[name].needs)  # noqa: E731
    assert need("config") == set() and need("prepare") == {"config"}
    assert need("generator_train") == need("library") == {"config", "prepare"}
    assert need("generate@midg") == {"config", "prepare", "generator_train"}
    assert need("detect@yolov8n-real-0") == {"config", "prepare"}  # the real cell need not wait for any generator
    assert need("detect@yolov8n-midg-0") == {"config", "prepare", "merge@midg"}
    assert need("evaluate@yolov8n-midg-0") == {"config", "prepare", "detect@yolov8n-midg-0"}
    assert {n for n in tasks if n.startswith(("detect@", "evaluate@"))} <= need("report")


def test_resource_requests_follow_each_stages_config(tmp_path):
    from midg.pipelines.ray_executor import stage_resources

    cells = tmp_path / "data" / "config" / "cells"
    cells.mkdir(parents=True)
    for key, params in {"yolov8n-real-0": {"device": "cuda"},
                        "yolov8n-real-2": {"device": "cpu", "threads": 3},
                        "faster_rcnn-real-0": {"device": "cpu", "per_detector": {"faster_rcnn": {"device": "cuda:1"}}}
                        }.items():
        det, cond, seed = key.split("-")
        (cells / f"{key}.json").write_text(json.dumps({"active": True, "detector": det, "condition": cond,
                                                       "seed": int(seed), "detector_params": params}))
    (cells / "yolov8n-midg-0.json").write_text('{"active": false}')
    ask = lambda name, gpus=0: stage_resources(tmp_path, name, gpus)  # noqa: E731
    assert ask("detect@yolov8n-real-0") == {"num_gpus": 1, "num_cpus": 1}
    assert ask("detect@yolov8n-real-2") == {"num_cpus": 3}
    assert ask("detect@faster_rcnn-real-0") == {"num_gpus": 1, "num_cpus": 1}  # per_detector applies
    assert ask("detect@yolov8n-midg-0") == ask("evaluate@yolov8n-real-0") == {"num_cpus": 1}
    (tmp_path / "data" / "config" / "generator.json").write_text(
        json.dumps({"active": True, "generator": {"device": "auto", "threads": 2}}))
    assert ask("generator_train", gpus=0) == {"num_cpus": 2} and ask("generator_train", gpus=4)["num_gpus"] == 1


# ---------------------------------------------------------------- without Ray, and bad flags


def _midg_without_ray(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    code = ("import sys; sys.modules['ray'] = None\n"  # `import ray` now fails as if it were not installed
            f"sys.argv = ['midg', *{args!r}]\n"
            "from midg.pipelines.cli import main; main()\n")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_executor_ray_without_ray_says_how_to_install_it(tmp_path):
    (tmp_path / "params.yaml").write_text((repo.ROOT / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    before = (tmp_path / "params.yaml").read_bytes()
    r = _midg_without_ray(["run", "--profile", "smoke", "--no-dvc", "--executor", "ray"], tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --executor ray needs Ray, an optional extra: pip install 'midg[ray]'"
    assert (tmp_path / "params.yaml").read_bytes() == before and not (tmp_path / "data").exists()


@pytest.mark.parametrize("args, message", [
    (["--executor", "dask"], "--executor must be ray (or left out: the stages run one after another), got 'dask'"),
    (["--address", "auto"], "--address is the Ray cluster to run on: give it with --executor ray"),
    (["--executor", "ray", "--address", "headnode"], "--address must be auto or HOST:PORT (e.g. 10.0.0.5:6379), got 'headnode'"),
])
def test_bad_executor_flags_are_one_line_errors(tmp_path, args, message):
    (tmp_path / "params.yaml").write_text((repo.ROOT / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    r = repo.midg(["run", "--profile", "smoke", "--no-dvc", *args], tmp_path, tmp_path, check=False)
    assert r.returncode == 2 and " ".join(r.stderr.split()) == f"error: {message}"
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------- generation shards as tasks


def test_generate_shards_on_ray_merge_into_the_single_run(tmp_path):
    from helpers_generate import make_normals, make_paired_dataset
    from midg.augment.library import write_library_folder
    from midg.datasets.layout import load_dataset

    write_library_folder(load_dataset(make_paired_dataset(tmp_path / "real", n_images=12)), tmp_path / "lib",
                         crop_size=32, min_window=16)
    make_normals(tmp_path / "normals", n=5)
    base = ["generate", "--checkpoint", str(tmp_path / "lib"), "--normals", str(tmp_path / "normals"),
            "--n-images", "7", "--seed", "2", "--method", "copypaste"]
    out = tmp_path / "out"
    out.mkdir()
    repo.midg(base + ["--out", str(out / "single")], tmp_path, tmp_path)
    r = repo.midg(base + ["--out", str(out / "sharded"), "--executor", "ray", "--shards", "3"], tmp_path, tmp_path)
    assert "3 shards merged" in " ".join((r.stdout + r.stderr).split())  # rich wraps long paths
    single, sharded = _files(out / "single", out), _files(out / "sharded", out)
    for prefix in ("images/train/", "labels/train/"):  # the shard guarantee: the single run's images and labels
        mine = {k: v for k, v in single.items() if k.startswith(prefix)}
        assert len(mine) == 7 and mine == {k: v for k, v in sharded.items() if k.startswith(prefix)}
    assert sorted(p.name for p in out.iterdir()) == [".sharded.shards.log", "sharded", "single"]  # no shard folder left

    broken = tmp_path / "broken-lib"  # every shard fails on it: nothing may appear at --out
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    bad = [a if a != str(tmp_path / "lib") else str(broken) for a in base]
    r = repo.midg(bad + ["--out", str(out / "failed"), "--executor", "ray", "--shards", "2"], tmp_path, tmp_path,
                  check=False)
    assert r.returncode == 2 and "generate shard 0/2 failed (exit 2" in " ".join(r.stderr.split())
    assert sorted(p.name for p in out.iterdir()) == [".failed.shards.log", ".sharded.shards.log", "sharded", "single"]
