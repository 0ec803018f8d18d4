"""What every stage process shares, whoever starts it (`runner.py`: in order or under DVC;
`ray_executor.py`: as Ray tasks): the environment it runs in, the one progress view that
follows the stages from their output, and the error a failed stage raises."""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from midg.datasets.errors import MidgError

console = Console(stderr=True)


class StageFailed(MidgError):
    """A stage exited non-zero: the message names it and its last lines; the log has the rest."""


def stage_env(root: Path, command: str | None = None) -> dict[str, str]:
    """The environment of every stage (and of DVC): this Python first on PATH, DVC offline."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["DVC_NO_ANALYTICS"] = "1"
    env.setdefault("DVC_SITE_CACHE_DIR", str(root / ".dvc" / "tmp" / "site-cache"))
    env["PYTHONUNBUFFERED"] = "1"  # stage output reaches the progress view as it happens
    env.setdefault("YOLO_OFFLINE", "true")
    if command:
        env["MIDG_RUN_COMMAND"] = command
    return env


class ProgressView:
    """One bar across stages, the current stage's name and its latest output line."""

    def __init__(self, total: int, log_path: Path, quiet: bool = False):
        self.total = total
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = log_path.open("w", encoding="utf-8")
        self.tail: deque[str] = deque(maxlen=40)
        self.done = 0
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self.current: str | None = None
        self.started = 0.0
        self.timings: dict[str, float] = {}  # seconds per stage that ran
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[line]}"),
                                 console=console, transient=False, disable=quiet)
        self.task = self.progress.add_task("pipeline", total=total, line="")

    def __enter__(self) -> "ProgressView":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)
        self.log.close()

    def start(self, stage: str) -> None:
        self.current = stage
        self.started = time.time()
        self.ran.append(stage)
        self.progress.update(self.task, description=stage, line="")

    def finish(self, stage: str, skipped: bool = False) -> None:
        if skipped:
            self.skipped.append(stage)
        elif stage == self.current:
            self.timings[stage] = round(time.time() - self.started, 2)
            self.log.write(f"[midg run] {stage}: {self.timings[stage]:.1f} s\n")
        self.done += 1
        self.progress.update(self.task, completed=min(self.done, self.total), description=stage)

    def finish_task(self, stage: str, seconds: float) -> None:
        """A stage that ran as a task elsewhere (Ray): count it and keep its time."""
        self.ran.append(stage)
        self.timings[stage] = round(seconds, 2)
        self.log.write(f"[midg run] {stage}: {self.timings[stage]:.1f} s\n")
        self.done += 1
        self.progress.update(self.task, completed=min(self.done, self.total), description=stage)

    def running(self, stages: list[str]) -> None:
        """Stages running side by side (Ray): their names instead of one stage's last line."""
        shown = ", ".join(stages[:3]) + (f" +{len(stages) - 3}" if len(stages) > 3 else "")
        self.progress.update(self.task, line=f"[dim]running: {escape(shown)}[/]" if stages else "")

    def output(self, line: str) -> None:
        line = line.rstrip("\r\n")
        self.log.write(line + "\n")
        self.log.flush()
        visible = line.split("\r")[-1].strip()
        if visible:
            self.tail.append(visible)
            self.progress.update(self.task, line=f"[dim]{escape(visible[:70])}[/]")  # stage output is not markup


def die_with_parent() -> None:
    """In a stage's process (a `preexec_fn`): die when its parent does (a cancelled Ray task or
    curve stage must not leave its stage writing outputs on its own). Linux only; elsewhere a no-op."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
