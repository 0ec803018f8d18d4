"""Drive the job: through DVC (`dvc repro`) or, with `--no-dvc`, stage by stage in order.

    run_job(Path("."), profile="demo")                     # what `midg run --profile demo` does
    run_job(Path("."), profile="smoke", use_dvc=False)     # `midg run --no-dvc`: no DVC, no cache

Either way every stage runs as its own process (`python -m midg.pipelines.stages ...`): a
stage that imports ultralytics (which sets OMP_NUM_THREADS=1 and patches torch) cannot slow
or change the next one, and one progress view follows the stages from their output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from midg.datasets.atomic import atomic_write_text
from midg.datasets.errors import ConfigError, MidgError

from .calls import StageCall, stage_calls
from .plan import RUN_KEYS, resolve_plan
from .ray_executor import check_address, import_ray, run_on_ray
from .stage_process import ProgressView, StageFailed, console, stage_env

LOG = Path("data/logs/midg-run.log")  # relative to the project: every stage's output, for the post-mortem


# ---------------------------------------------------------------- params.yaml: profile and flags


_PROFILE_LINE = re.compile(r"^profile:[^\n]*$", re.M)
_RUN_LINE = re.compile(r"^run:[^\n]*(?:\n[ \t]+[^\n]*)*", re.M)  # the line, and a block under it


def _flow(value: Any) -> str:
    return "null" if value is None else json.dumps(value)  # JSON scalars and lists are YAML flow values


def set_run_params(params_path: Path, profile: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """Write `profile:` and the `run:` line of params.yaml (comments and other lines untouched).

    These are what DVC sees as params, so a flag change reruns exactly what it touches.
    Returns the params as now written (parsed back, checked).
    """
    from midg.datasets.params import load_params

    text = params_path.read_text(encoding="utf-8")
    params = load_params(params_path)
    if profile is not None:
        if profile not in params["profiles"]:
            raise ConfigError(f"unknown profile {profile!r}; valid: {', '.join(params['profiles'])}")
        line = f"profile: {profile}"
        text = _PROFILE_LINE.sub(line, text, count=1) if _PROFILE_LINE.search(text) else f"{line}\n{text}"
    run_line = "run: {" + ", ".join(f"{k}: {_flow(overrides.get(k))}" for k in RUN_KEYS) + "}"
    if _RUN_LINE.search(text):
        text = _RUN_LINE.sub(run_line, text, count=1)
    else:
        text = _PROFILE_LINE.sub(lambda m: f"{m.group(0)}\n{run_line}", text, count=1)
    if text != params_path.read_text(encoding="utf-8"):
        from midg.datasets.atomic import atomic_write_text

        atomic_write_text(params_path, text)
    params = load_params(params_path)
    resolve_plan(params)  # a bad flag (an unknown detector, a seed outside the grid) fails here, before DVC
    return params


# ---------------------------------------------------------------- running, with one progress view


_RUNNING = re.compile(r"^Running stage '([^']+)'")
_UNCHANGED = re.compile(r"^Stage '([^']+)' (didn't change, skipping|is cached - skipping run)")


def _pump(argv: list[str], cwd: Path, env: dict[str, str], on_line: Callable[[str], None]) -> int:
    """Run `argv`, handing each line of its stdout+stderr to `on_line`; returns the exit status."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", bufsize=1)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            on_line(line)
    except BaseException:  # Ctrl-C: stop the child too, then let the interrupt through
        proc.terminate()
        proc.wait()
        raise
    return proc.wait()


def run_dvc(root: Path, env: dict[str, str], view: ProgressView, force_config: bool = False) -> None:
    """`dvc repro` with its output parsed into the view: a stage counts when it runs or is skipped."""
    dvc = [sys.executable, "-m", "dvc"]
    if force_config:  # the data source is a path: the config stage takes its fingerprint again
        if _pump(dvc + ["repro", "--force", "--single-item", "config"], root, env, view.output) != 0:
            raise StageFailed(_failure(view, "config"))

    def on_line(line: str) -> None:
        m = _RUNNING.match(line)
        if m:
            if view.current is not None:
                view.finish(view.current)
            view.start(m.group(1))
        else:
            m = _UNCHANGED.match(line)
            if m:
                view.finish(m.group(1), skipped=True)
        view.output(line)

    if _pump(dvc + ["repro"], root, env, on_line) != 0:
        raise StageFailed(_failure(view, "dvc repro"))
    if view.current is not None:
        view.finish(view.current)
        view.current = None


def run_calls(root: Path, calls: list[StageCall], env: dict[str, str], view: ProgressView) -> None:
    """The stages in order, no DVC: each runs (nothing is cached, but runs resume where they can)."""
    for call in calls:
        view.start(call.name)
        view.output(f"$ {call.shell()}")
        if _pump(call.argv(), root, env, view.output) != 0:
            raise StageFailed(_failure(view, call.name))
        view.finish(call.name)
        view.current = None


def _failure(view: ProgressView, what: str) -> str:
    stage = view.current or what
    errors = [l for l in view.tail if l.startswith(("error:", "ERROR:")) or "Error" in l.split(":")[0]]
    last = errors[-1] if errors else (view.tail[-1] if view.tail else "(no output)")
    return f"stage {stage} failed: {last}\n  full output: {view.log_path}"


# ---------------------------------------------------------------- the whole job


def _in_git(root: Path) -> bool:
    try:
        r = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=root, capture_output=True, text=True)
    except OSError:
        return False
    return r.returncode == 0 and r.stdout.strip() == "true"


def ensure_dvc_repo(root: Path, env: dict[str, str]) -> None:
    """A clone ships .dvc/; a copy without it (or outside git) gets `dvc init` here."""
    if (root / ".dvc").is_dir():
        return
    argv = [sys.executable, "-m", "dvc", "init", "--quiet"] + ([] if _in_git(root) else ["--no-scm"])
    r = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise MidgError(f"{root}: `dvc init` failed: {r.stderr.strip() or r.stdout.strip()}")
    console.print(f"[dim]initialised DVC in {root}{'' if _in_git(root) else ' (no git: --no-scm)'}[/]")


def count_dvc_stages(root: Path, env: dict[str, str]) -> int:
    r = subprocess.run([sys.executable, "-m", "dvc", "stage", "list", "--name-only"], cwd=root, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise MidgError(f"{root / 'dvc.yaml'}: DVC cannot read it: {r.stderr.strip()}")
    return len([l for l in r.stdout.splitlines() if l.strip()])


@dataclass
class JobResult:
    root: Path
    profile: str
    ran: list[str]
    skipped: list[str]
    seconds: float
    metrics: dict[str, Any]
    timings: dict[str, float]  # seconds per stage that ran


RUN_PARAMS = Path("data/params.yaml")  # the run's own copy when the params file is not the project's


def run_params_file(root: Path, params_path: Path) -> Path:
    """The params file this run may write its `profile:` and `run:` lines into: the
    project's own params.yaml, else a copy in the run's data folder, so that neither a
    user's --params file nor the installed package's built-in profiles are ever edited."""
    if params_path == (root / "params.yaml").resolve():
        return params_path
    copy = root / RUN_PARAMS
    copy.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(copy, params_path.read_text(encoding="utf-8"))
    return copy


def run_job(root: Path, *, profile: str | None = None, overrides: dict[str, Any] | None = None,
            params: Path | None = None, use_dvc: bool = True, command: str | None = None,
            quiet: bool = False, executor: str | None = None, address: str | None = None) -> JobResult:
    """Set the profile and flags in params.yaml, run every stage, return what ran and the metrics.

    `executor="ray"` runs the stages as Ray tasks, side by side where they are independent
    (pipelines/ray_executor.py), on this machine or the cluster at `address`.
    """
    if executor not in (None, "ray"):
        raise ConfigError(f"--executor must be ray (or left out: the stages run one after another), got {executor!r}")
    if address is not None and executor != "ray":
        raise ConfigError("--address is the Ray cluster to run on: give it with --executor ray")
    if executor == "ray":
        import_ray()  # a missing extra fails here, before params.yaml is touched
        check_address(address)
    root = Path(root).resolve()
    overrides = overrides or {}
    params_path = (params or root / "params.yaml").resolve()
    if not params_path.is_file():
        raise ConfigError(f"{params_path}: params file not found (pass --params, or run in the midg project folder)")
    if use_dvc and params_path != root / "params.yaml":
        raise ConfigError(f"--params {params_path}: dvc.yaml reads {root / 'params.yaml'}; copy your file there "
                          "or pass --no-dvc")
    params_path = run_params_file(root, params_path)
    params_doc = set_run_params(params_path, profile, overrides)
    plan = resolve_plan(params_doc)
    env = stage_env(root, command)
    t0 = time.time()
    if use_dvc:
        ensure_dvc_repo(root, env)
        total = count_dvc_stages(root, env)
        force_config = plan.data.source != "demo"
        with ProgressView(total, root / LOG, quiet) as view:
            if executor == "ray":
                run_on_ray(root, env, view, address=address, force=("config",) if force_config else ())
            else:
                run_dvc(root, env, view, force_config=force_config)
    else:
        rel_params = os.path.relpath(params_path, root)
        calls = stage_calls(plan, rel_params)
        with ProgressView(len(calls), root / LOG, quiet) as view:
            if executor == "ray":
                run_on_ray(root, env, view, address=address, calls=calls)
            else:
                run_calls(root, calls, env, view)
    metrics = json.loads((root / "reports" / "metrics.json").read_text(encoding="utf-8"))
    return JobResult(root, plan.profile, view.ran, view.skipped, time.time() - t0, metrics, view.timings)
