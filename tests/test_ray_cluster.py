"""A Ray cluster of two nodes on the loopback address: `ray start --head` and a second
`ray start --address 127.0.0.1:PORT`, one CPU each; `midg run --no-dvc --executor ray
--address 127.0.0.1:PORT` runs the smoke job across them, the task records show stages on
both nodes, and the results are those of the serial run. Both nodes stop in every outcome.

    .venv/bin/python -m pytest tests/test_ray_cluster.py -x -q

Ray is kept off the network: usage stats off, no dashboard, token auth off (loopback only).
The serial run compared with is the session's smoke pipeline (tests/_pipeline_repo.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

import _pipeline_repo as repo


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_env(tmp: Path) -> dict[str, str]:
    env = repo.env(tmp)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["RAY_AUTH_MODE"] = "disabled"  # two nodes of one test on loopback: no token to share
    return env


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    code = ("import ray; ray.init(address=%r, logging_level='error'); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))" % address)
    r = subprocess.run([str(repo.BIN / "python"), "-c", code], env=env, capture_output=True, text=True, timeout=120)
    return int(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two Ray nodes on 127.0.0.1 (`ray start --block`, so stopping each is ending its own process)."""
    tmp = tmp_path_factory.mktemp("cluster")
    env = _ray_env(tmp)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--num-gpus", "0", "--disable-usage-stats", "--object-store-memory", "100000000",
              "--node-ip-address", "127.0.0.1", "--block"]
    ray = str(repo.BIN / "ray")
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(subprocess.Popen([ray, "start", "--head", "--port", str(port), "--include-dashboard=false",
                                       "--temp-dir", str(tmp / "ray"), *common], env=env,
                                      stdout=open(tmp / "head.log", "w"), stderr=subprocess.STDOUT))
        deadline = time.time() + 120
        while _alive_nodes(address, env) < 1:
            assert time.time() < deadline and nodes[0].poll() is None, (tmp / "head.log").read_text()[-3000:]
            time.sleep(1)
        nodes.append(subprocess.Popen([ray, "start", "--address", address, *common], env=env,
                                      stdout=open(tmp / "worker.log", "w"), stderr=subprocess.STDOUT))
        while _alive_nodes(address, env) < 2:
            assert time.time() < deadline and nodes[1].poll() is None, (tmp / "worker.log").read_text()[-3000:]
            time.sleep(1)
        yield address, env
    finally:
        for node in reversed(nodes):  # SIGTERM: `ray start --block` stops the processes it started
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()


@pytest.mark.slow
def test_smoke_job_runs_across_two_nodes_with_the_serial_results(cluster, tmp_path_factory, tmp_path):
    address, env = cluster
    serial = repo.smoke_project(tmp_path_factory)
    params = yaml.safe_load((repo.ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["profile"] = "smoke"
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    r = subprocess.run([str(repo.BIN / "midg"), "run", "--no-dvc", "--executor", "ray", "--address", address],
                       cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]

    tasks = json.loads((folder / "data" / "logs" / "ray-tasks.json").read_text(encoding="utf-8"))
    assert all(t["rc"] == 0 for t in tasks) and len(tasks) == 15  # the plan's stages, no grid markers
    nodes = {t["node_id"] for t in tasks}
    assert len(nodes) == 2, nodes  # both nodes ran stages ...
    cells = [t for t in tasks if t["stage"].startswith(("detect@", "evaluate@"))]
    assert len({t["node_id"] for t in cells}) == 2, [(t["stage"], t["node_id"][:8]) for t in cells]  # ... cells too

    for key in json.loads((serial / "reports" / "metrics.json").read_text())["runs"]:
        mine = json.loads((folder / "data" / "metrics" / f"{key}.json").read_text())
        theirs = json.loads((serial / "data" / "metrics" / f"{key}.json").read_text())
        mine.pop("train_seconds"), theirs.pop("train_seconds")
        assert mine == theirs, key
        rel = f"data/runs/{key}/predictions_test.json"
        assert (folder / rel).read_bytes() == (serial / rel).read_bytes(), rel
    assert os.path.getsize(folder / "reports" / "report.html") > 1000
