"""Run the job's stages as Ray tasks: side by side where the stage graph allows, on this
machine or across a cluster, with DVC still the record.

    midg run --profile demo --executor ray                      # a private Ray on this machine
    midg run --profile paper --executor ray --address auto      # the cluster `ray start` made
    midg run --profile paper --executor ray --address 10.0.0.5:6379
    midg generate ... --executor ray --shards 4                 # generation shards as tasks

Ray is an optional extra (`pip install 'midg[ray]'`) and is imported here only.

Each stage is a task that runs the stage's own command (`python -m midg.pipelines.stages ...`,
exactly what dvc.yaml or `--no-dvc` runs) as a subprocess in the project folder, so a stage
that imports ultralytics cannot change another. A task starts once every stage it reads from
is done; it asks Ray for one GPU per CUDA device a detector cell uses, CPUs otherwise. The
project folder must be the same path on every node (a shared filesystem): stages read and
write files there, as they do without Ray.

In a DVC project the driver does what `dvc repro` does around each stage, through DVC's own
API: a stage runs only if DVC says it changed (checked once the stages it reads from are
done, so an upstream rerun with identical outputs reruns nothing below it), its outputs
are removed first unless `persist`, and after it succeeds its outputs and dependencies are
saved to the cache and `dvc.lock`. So after a Ray run `dvc status` is clean, `dvc repro`
reruns nothing, and a rerun after a failed or killed task redoes only what is missing.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from midg.datasets.errors import ConfigError, MidgError

from .stage_process import ProgressView, StageFailed, die_with_parent, stage_env

RAY_MISSING = "--executor ray needs Ray, an optional extra: pip install 'midg[ray]'"
TASKS_LOG = Path("data/logs/ray-tasks.json")  # relative to the project: where each stage ran, how long
# A private local Ray only passes command lines and logs through its object store: 100 MB
# (near Ray's minimum) instead of its default 30 % of RAM.
LOCAL_OBJECT_STORE = 100_000_000


def import_ray():
    """Ray, without its usage-stats call home; a clear one-line error when it is not installed."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def check_address(address: str | None) -> str | None:
    if address is None or address == "auto":
        return address
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address must be auto or HOST:PORT (e.g. 10.0.0.5:6379), got {address!r}")
    return address


def connect(address: str | None):
    """Ray started here (no address: a private instance that ends with the run, no dashboard)
    or the cluster at `address` ("auto": the one `ray start` made on this machine)."""
    ray = import_ray()
    address = check_address(address)
    if ray.is_initialized():
        return ray
    if address is None:
        # "local", not None: None would join whatever cluster last ran on this machine
        ray.init(address="local", include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE,
                 log_to_driver=False, logging_level="warning")
    else:
        try:
            ray.init(address=address, log_to_driver=False, logging_level="warning")
        except ConnectionError as exc:
            raise ConfigError(f"--address {address}: no Ray cluster there ({exc}); start one with "
                              "`ray start --head` or leave --address out for a Ray on this machine") from None
    return ray


# ---------------------------------------------------------------- one task: a stage's command


def run_command(argv: list[str], cwd: str, env: dict[str, str]) -> dict[str, Any]:
    """The body of every task: run `argv` in `cwd`, return its exit status, output and where it ran.

    The environment is the driver's (so a stage sees what it would see without Ray: same
    PATH, no OMP_NUM_THREADS=1 from Ray's worker), except the GPUs Ray gave this task.
    """
    import ray

    env = dict(env)
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus is None:
        env.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        env["CUDA_VISIBLE_DEVICES"] = gpus
    start = time.time()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", preexec_fn=die_with_parent)
    return {"rc": proc.returncode, "output": proc.stdout, "node_id": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(), "pid": os.getpid(), "gpus": gpus, "start": start, "end": time.time()}


# ---------------------------------------------------------------- the graph and its scheduler


@dataclass
class Task:
    name: str  # the stage, as DVC names it: detect@yolov8n-real-0
    argv: list[str]
    needs: list[str] = field(default_factory=list)  # stages whose outputs it reads
    resources: Callable[[], dict[str, float]] | None = None  # asked when it starts (configs exist by then)
    what: str = "stage"  # how a failure names it: "stage detect@... failed"


@dataclass
class Hooks:
    """What happens around a task: DVC's checks and records in a DVC project, nothing without."""

    should_run: Callable[[str], bool] = lambda name: True
    before: Callable[[str], None] = lambda name: None
    after: Callable[[str], None] = lambda name: None


def run_tasks(ray, tasks: list[Task], root: Path, env: dict[str, str], view, hooks: Hooks | None = None,
              log_path: Path | None = None) -> list[dict[str, Any]]:
    """Run `tasks` (in list order where several are ready) once their `needs` are done.

    A task that fails stops new starts; those running finish and are recorded, then the run
    fails naming the stage and its last lines. Returns one record per task that ran.
    """
    hooks = hooks or Hooks()
    remote = ray.remote(run_command)
    pending = {t.name: t for t in tasks}
    unknown = {n for t in tasks for n in t.needs} - set(pending)
    assert not unknown, f"tasks need stages that are not in the graph: {sorted(unknown)}"
    done: set[str] = set()
    running: dict[Any, Task] = {}
    records: list[dict[str, Any]] = []
    failed: list[tuple[Task, dict[str, Any]]] = []
    try:
        while True:
            started = True
            while started and not failed:  # skipping a stage can make others ready: until nothing starts
                started = False
                for name in [n for n, t in pending.items() if all(d in done for d in t.needs)]:
                    task = pending.pop(name)
                    if not hooks.should_run(name):
                        view.finish(name, skipped=True)
                        done.add(name)
                        started = True
                        continue
                    hooks.before(name)
                    options = {"max_retries": 0, "name": name, **(task.resources() if task.resources else {"num_cpus": 1})}
                    running[remote.options(**options).remote(task.argv, str(root), env)] = task
                    view.output(f"[ray] started {name} ({', '.join(f'{k}={v}' for k, v in options.items() if k.startswith('num_'))})")
            view.running([t.name for t in running.values()])
            if not running:
                break
            finished, _ = ray.wait(list(running), num_returns=1)
            for ref in finished:
                task = running.pop(ref)
                try:
                    rec = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker or its node died
                    rec = {"rc": None, "output": f"{type(exc).__name__}: {exc}", "node_id": None, "host": None}
                rec = {"stage": task.name, "command": shlex.join(task.argv), **rec}
                view.output(f"Running stage '{task.name}' on {rec.get('host')} (node {str(rec.get('node_id'))[:12]}):")
                view.output(f"> {rec['command']}")
                for line in rec["output"].splitlines():
                    view.output(line)
                if rec["rc"] == 0:
                    hooks.after(task.name)
                    done.add(task.name)
                    view.finish_task(task.name, rec["end"] - rec["start"])
                else:
                    failed.append((task, rec))
                records.append({k: v for k, v in rec.items() if k != "output"})
    except BaseException:  # Ctrl-C or a DVC error: stop what still runs, then let it through
        for ref in running:
            ray.cancel(ref, force=True)
        raise
    finally:
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    if failed:
        raise StageFailed("\n".join(_failure(task, rec, view.log_path) for task, rec in failed))
    return records


def _failure(task: Task, rec: dict[str, Any], log: Path) -> str:
    lines = [l for l in rec["output"].splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith(("error:", "ERROR:")) or "Error" in l.split(":")[0]]
    how = f"exit {rec['rc']}" if rec["rc"] is not None else "its Ray task died"
    tail = "\n    ".join(lines[-6:]) or "(no output)"
    return (f"{task.what} {task.name} failed ({how}, on {rec.get('host') or 'an unknown node'}): "
            f"{errors[-1] if errors else (lines[-1] if lines else '(no output)')}\n"
            f"    {tail}\n  full output: {log}")


# ---------------------------------------------------------------- resources per stage


def stage_resources(root: Path, name: str, cluster_gpus: float) -> dict[str, float]:
    """What a stage asks Ray for, from the stage's own config (written by `config` before it runs)."""
    kind, _, key = name.partition("@")
    configs = root / "data" / "config"
    try:
        if kind == "detect":
            return _cell_resources(json.loads((configs / "cells" / f"{key}.json").read_text(encoding="utf-8")))
        if kind == "generator_train":
            return _generator_resources(json.loads((configs / "generator.json").read_text(encoding="utf-8")), cluster_gpus)
        if kind == "curve":  # its stages run one after another: the most any of them asks
            cfg = json.loads((configs / f"curve-{key}.json").read_text(encoding="utf-8"))
            inner = cfg.get("configs") or {}
            asks = [_generator_resources(inner.get("generator.json") or {}, cluster_gpus)]
            asks += [_cell_resources(c) for rel, c in inner.items() if rel.startswith("cells/")]
            return {k: max(a.get(k, 0) for a in asks) for k in {k for a in asks for k in a}}
    except (OSError, json.JSONDecodeError):
        pass  # the stage itself will name the missing or broken config
    return {"num_cpus": 1}


def _cell_resources(cfg: dict[str, Any]) -> dict[str, float]:
    if not cfg.get("active"):
        return {"num_cpus": 1}
    from midg.detectors.common import cuda_devices
    from midg.detectors.config import config_from_dict

    det = config_from_dict(cfg["detector_params"]).for_detector(cfg["detector"])
    gpus = cuda_devices(det.device)
    return {"num_gpus": gpus, "num_cpus": 1} if gpus else {"num_cpus": det.threads or 1}


def _generator_resources(cfg: dict[str, Any], cluster_gpus: float) -> dict[str, float]:
    gen = (cfg.get("generator") or {}) if cfg.get("active") else {}
    device = str(gen.get("device", "cpu"))
    if device.startswith("cuda") or (device == "auto" and cluster_gpus >= 1):
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": int(gen.get("threads") or 1)}


def _fit(resources: dict[str, float], ray) -> dict[str, float]:
    """Never ask more CPUs than the largest node has: Ray would wait for ever."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    most = max((r.get("CPU", 0) for r in nodes), default=1) or 1
    if resources.get("num_cpus", 0) > most:
        resources = {**resources, "num_cpus": most}
    return resources


# ---------------------------------------------------------------- the job's two graphs


def _paths(args: tuple[str, ...]) -> tuple[list[str], str | None]:
    """A stage call's input paths and its --out."""
    pairs = dict(zip(args[1::2], args[2::2])) if len(args) % 2 == 1 else {}
    out = pairs.pop("--out", None)
    return list(pairs.values()), out


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def call_tasks(calls, root: Path, ray) -> list[Task]:
    """`--no-dvc`'s stage calls as tasks: a call needs every earlier call whose --out holds
    (or lies inside) one of its input paths, the rule DVC applies to dvc.yaml's deps and outs."""
    gpus = ray.cluster_resources().get("GPU", 0)
    tasks: list[Task] = []
    outs: list[tuple[str, str]] = []
    for call in calls:
        inputs, out = _paths(call.args)
        needs = [name for name, o in outs if any(_overlaps(i, o) for i in inputs)]
        tasks.append(Task(call.name, call.argv(), needs,
                          lambda name=call.name: _fit(stage_resources(root, name, gpus), ray)))
        if out:
            outs.append((call.name, out))
    return tasks


class DvcRecord:
    """`dvc repro`'s bookkeeping around stages run elsewhere, through DVC's API: the graph,
    whether a stage changed, its outputs removed before and saved (cache, dvc.lock) after.
    Use it as a context: it holds the repo lock, as `dvc repro` does, for the whole run."""

    def __init__(self, root: Path, force: tuple[str, ...] = ()):
        from contextlib import ExitStack

        from dvc.repo import Repo, lock_repo

        self.force = set(force)
        self._stack = ExitStack()
        dvc_log = logging.getLogger("dvc")  # its "Updating lock file" per stage would scroll the progress view away
        self._stack.callback(dvc_log.setLevel, dvc_log.level)
        dvc_log.setLevel(logging.WARNING)
        try:
            self.repo = self._stack.enter_context(Repo(str(root)))
            self._stack.enter_context(lock_repo(self.repo))  # the index is read under the lock: DVC resets it on taking it
            self._stack.enter_context(self.repo.scm_context(quiet=True))
            self.graph = self.repo.index.graph  # edges run from a stage to the stages it reads from
            self.stages = {s.addressing: s for s in self.repo.index.stages}
        except BaseException:
            self._stack.close()
            raise

    def __enter__(self) -> "DvcRecord":
        return self

    def __exit__(self, *exc) -> None:
        self._stack.__exit__(*exc)

    def tasks(self, root: Path, env: dict[str, str], ray) -> list[Task]:
        gpus = ray.cluster_resources().get("GPU", 0)
        shell = env.get("SHELL") or "/bin/sh"
        tasks = []
        for name, stage in self.stages.items():
            if stage.frozen or not stage.cmd:
                continue
            needs = [s.addressing for s in self.graph.successors(stage) if s.addressing in self.stages]
            cmd = " && ".join(stage.cmd) if isinstance(stage.cmd, list) else stage.cmd
            tasks.append(Task(name, [shell, "-c", cmd], needs,
                              lambda name=name: _fit(stage_resources(root, name, gpus), ray)))
        return tasks

    def should_run(self, name: str) -> bool:
        stage = self.stages[name]
        return name in self.force or stage.changed(upstream=list(self.graph.successors(stage)))

    def before(self, name: str) -> None:
        self.stages[name].remove_outs(ignore_remove=False, force=False)  # persist outputs stay

    def after(self, name: str) -> None:
        stage = self.stages[name]
        stage.save()
        stage.commit()
        stage.dump(update_pipeline=False)


def run_on_ray(root: Path, env: dict[str, str], view, *, address: str | None, calls=None,
               force: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The job's stages on Ray: `calls` (the plan's stages, without DVC) or, when None, every
    stage of dvc.yaml with DVC's record kept. Writes where each ran to data/logs/ray-tasks.json."""
    if calls is not None:
        with _ray_session(address, view) as ray:
            return run_tasks(ray, call_tasks(calls, root, ray), root, env, view, log_path=root / TASKS_LOG)
    from dvc.exceptions import DvcException

    try:
        with DvcRecord(root, force) as record, _ray_session(address, view) as ray:  # DVC's lock first: fail before Ray starts
            hooks = Hooks(record.should_run, record.before, record.after)
            return run_tasks(ray, record.tasks(root, env, ray), root, env, view, hooks, log_path=root / TASKS_LOG)
    except DvcException as exc:  # e.g. another `dvc repro` holds the lock
        raise MidgError(f"{root}: DVC: {exc}") from None


@contextmanager
def _ray_session(address: str | None, view):
    """Ray for one run: connected (or started) here, stopped at the end when started here."""
    t0 = time.time()
    ray = connect(address)
    view.output(f"[ray] connected in {time.time() - t0:.1f} s: {ray.cluster_resources()}")
    try:
        yield ray
    finally:
        if address is None:
            ray.shutdown()


# ---------------------------------------------------------------- generation shards


def generate_shards_on_ray(generate_args: list[str], out: Path, shards: int, *, address: str | None,
                           resources: dict[str, float], quiet: bool = False) -> list[dict[str, Any]]:
    """`midg generate <generate_args>` as `shards` Ray tasks (`--shard I/N` each, the images
    k = I mod N of the single run), written into a temporary folder beside `out` and merged
    into `out` at the end (`midg data merge`'s function). If a task fails, nothing is at `out`
    and the temporary folder is gone; the shards' output is in `.OUT.shards.log` beside it."""
    import shutil
    import sys
    import tempfile

    from midg.datasets.atomic import replace_dir
    from midg.datasets.splits import merge

    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    ray = connect(address)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.shards-", dir=out.parent))
    try:
        argv = [sys.executable, "-m", "midg.pipelines.cli", "generate", *generate_args]
        tasks = [Task(f"shard {i}/{shards}", [*argv, "--shard", f"{i}/{shards}", "--out", str(tmp / f"shard{i}")],
                      resources=lambda: _fit(dict(resources), ray), what="generate") for i in range(shards)]
        with ProgressView(shards, out.parent / f".{out.name}.shards.log", quiet) as view:
            records = run_tasks(ray, tasks, Path.cwd(), stage_env(Path.cwd()), view)
        parts = [tmp / f"shard{i}" for i in range(shards)]
        if shards == 1:
            replace_dir(parts[0], out)
        else:
            merge(parts, out)  # writes aside and moves into place itself
        return records
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if address is None:
            ray.shutdown()
