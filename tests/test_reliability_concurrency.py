"""Concurrent writers: one writer per output, through the lock file (datasets/locking.py).

    .venv/bin/python -m pytest tests/test_reliability_concurrency.py -x -q

- A second writer of the same output (dataset, generator checkpoint, detector run folder),
  in this process or another, is refused at once with a MidgError naming the holder.
- Two real `midg generate` into one folder: the second is refused, the first finishes.
- A stale lock (its process killed, a zombie, a reused pid, a reboot, a half-written lock)
  is taken over; one from another host is refused with the file to delete.
- Racing processes: of several that try to take the same output (fresh or stale), exactly
  one wins, round after round.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from _reliability import (PARAMS, child_env, files, kill9, leftovers_beside, make_boards, spawn_midg,
                          train_smoke_generator, watch_until)
from midg.datasets.errors import MidgError
from midg.datasets.layout import DatasetWriter, load_dataset
from midg.datasets.locking import OutputBusy, OutputLock, holder_info, lock_path, read_holder
from midg.pipelines.cli import app

HOLD = r"""
import sys, time
from midg.datasets.locking import OutputLock
lock = OutputLock(sys.argv[1], what="dataset").acquire()
print("held", flush=True)
time.sleep(120)
"""


def start_holder(target: Path) -> subprocess.Popen:
    """Another process holding `target`'s lock (a light one: no torch)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True,
                            env=child_env(), start_new_session=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def write_small(out: Path, value: int = 0) -> None:
    with DatasetWriter(out, ["open"], source="test") as w:
        w.add_image("train", "a", array=np.full((8, 8), value, np.uint8))


# ---------------------------------------------------------------- the lock itself


def test_lock_file_names_its_holder_and_goes_away(tmp_path):
    target = tmp_path / "out"
    with OutputLock(target, what="dataset") as lock:
        info = read_holder(lock.path)
        assert lock.path == tmp_path / ".out.lock"
        assert (info["pid"], info["host"], info["target"]) == (os.getpid(), socket.gethostname(), str(target))
        assert info["started"] and isinstance(info["pid_start"], int)
        with pytest.raises(OutputBusy, match="already being written by this process"):
            OutputLock(target).acquire()
    assert list(tmp_path.iterdir()) == []
    OutputLock(target).acquire().release()  # free again


def test_a_lock_whose_owner_was_dropped_unreleased_is_taken_over_in_process(tmp_path):
    OutputLock(tmp_path / "out").acquire()  # never released: garbage at once, its finalizer removes the file
    assert not lock_path(tmp_path / "out").exists()
    stale = json.dumps({**holder_info(), "target": "x"})  # our pid, but no live owner object
    lock_path(tmp_path / "out").write_text(stale)
    with OutputLock(tmp_path / "out") as lock:
        assert lock.took_over["pid"] == os.getpid()


def test_second_writer_in_another_process_is_refused_at_once(tmp_path):
    """A holder process; a dataset writer, a generator training and a detector training of
    that path are each refused in well under a second, naming its pid; nothing is touched."""
    from midg.augment.train import train_generator
    from midg.detectors.base import train as train_detector
    from midg.detectors.config import DetectorConfig

    from _reliability import quiet, smoke_generator_config

    out = tmp_path / "shared"
    write_small(out, 1)
    before = files(out)
    holder = start_holder(out)
    try:
        attempts = {
            "dataset": lambda: write_small(out, 2),
            "generator": lambda: train_generator(tmp_path / "nodata", out, smoke_generator_config(), console=quiet()),
            "detector": lambda: train_detector("yolov8n", [tmp_path / "nodata"], out, DetectorConfig()),
        }
        for what, attempt in attempts.items():
            t0 = time.perf_counter()
            with pytest.raises(OutputBusy) as exc:
                attempt()
            seconds = time.perf_counter() - t0
            msg = str(exc.value)
            assert f"pid {holder.pid} on host {socket.gethostname()}" in msg and str(out) in msg, msg
            assert "being written by another midg process" in msg and ".shared.lock" in msg
            assert seconds < 1.0, f"{what}: refused after {seconds:.2f} s"
        assert files(out) == before
    finally:
        kill9(holder)
    # the holder was killed: its lock is stale, and the next writer takes it over
    assert read_holder(lock_path(out))["pid"] == holder.pid
    write_small(out, 3)
    assert files(out) != before and leftovers_beside(out) == []


def test_two_midg_generate_into_one_folder(tmp_path):
    boards = make_boards(tmp_path / "boards")
    ckpt = train_smoke_generator(boards, tmp_path / "ckpt", steps=2, sample_every=0, log_every=1)
    out = tmp_path / "synth"
    args = ["generate", "--checkpoint", ckpt, "--normals", boards, "--out", out, "--n-images", 200, "--seed", 0,
            "--profile", "smoke", "--params", PARAMS]
    first = spawn_midg(args, cwd=tmp_path, log=tmp_path / "first.log")
    try:
        assert watch_until(first, lock_path(out).exists), (tmp_path / "first.log").read_text()
        res = CliRunner().invoke(app, [str(a) for a in args])
        assert isinstance(res.exception, OutputBusy), res.output
        assert f"pid {first.pid}" in str(res.exception) and "midg generate" in str(res.exception)
        assert first.wait(timeout=300) == 0, (tmp_path / "first.log").read_text()[-2000:]
    finally:
        kill9(first)
    assert len(load_dataset(out).images("train")) == 200
    assert leftovers_beside(out) == []


def test_two_generator_trainings_into_one_folder(tmp_path):
    boards = make_boards(tmp_path / "boards")
    out = tmp_path / "ckpt"
    args = ["generator", "train", boards, "--out", out, "--profile", "smoke", "--params", PARAMS, "--steps", 100000]
    first = spawn_midg(args, cwd=tmp_path, log=tmp_path / "first.log")
    try:
        assert watch_until(first, lambda: (out / "config.json").is_file()), (tmp_path / "first.log").read_text()
        res = CliRunner().invoke(app, [str(a) for a in args] + ["--resume"])
        assert isinstance(res.exception, OutputBusy), res.output
        assert f"pid {first.pid}" in str(res.exception) and "generator checkpoint" in str(res.exception)
        assert first.poll() is None  # the first one trains on
    finally:
        kill9(first)


# ---------------------------------------------------------------- stale locks


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _zombie() -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 30
    while open(f"/proc/{proc.pid}/stat").read().split(")")[1].split()[0] != "Z":
        assert time.time() < deadline
        time.sleep(0.01)
    return proc  # exited, not reaped: os.kill(pid, 0) still succeeds


@pytest.mark.parametrize("case", ["dead pid", "zombie", "reused pid", "rebooted", "half-written, old", "garbage, old",
                                  "nested, old"])
def test_stale_locks_are_taken_over(tmp_path, case):
    target = tmp_path / "out"
    path = lock_path(target)
    me = holder_info()
    zombie = None
    if case == "dead pid":
        record = {**me, "pid": _dead_pid()}
    elif case == "zombie":
        zombie = _zombie()
        record = {**me, "pid": zombie.pid}
    elif case == "reused pid":  # pid 1 is alive, but it started before the recorded start time
        record = {**me, "pid": 1, "pid_start": me["pid_start"] + 10**6}
    elif case == "rebooted":
        record = {**me, "pid": 1, "boot_id": "another-boot"}
    else:
        record = None
    path.write_bytes(b"" if case.startswith("half") else b"{not json" if case.startswith("garbage")
                     else b"[" * 100_000 if case.startswith("nested") else json.dumps(record).encode())
    if case.endswith("old"):
        os.utime(path, (time.time() - 60, time.time() - 60))
    try:
        write_small(target)
    finally:
        if zombie is not None:
            zombie.wait()
    assert load_dataset(target).images("train") and not path.exists()


def test_a_fresh_half_written_lock_counts_as_held(tmp_path):
    path = lock_path(tmp_path / "out")
    path.write_bytes(b"")  # a writer between its O_EXCL create and its one write
    with pytest.raises(OutputBusy, match="still creating it"):
        write_small(tmp_path / "out")


def test_a_lock_from_another_host_is_refused_with_the_file_to_delete(tmp_path):
    path = lock_path(tmp_path / "out")
    path.write_text(json.dumps({**holder_info(), "host": "other-machine", "pid": 4242}))
    with pytest.raises(OutputBusy) as exc:
        write_small(tmp_path / "out")
    msg = str(exc.value)
    assert "pid 4242 on host other-machine" in msg and "cannot be checked" in msg and f"delete {path}" in msg
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- races


def _contender(target: str, barrier, results) -> None:
    barrier.wait()
    try:
        lock = OutputLock(target).acquire()
    except MidgError:
        results.put(("refused", os.getpid()))
        return
    results.put(("won", os.getpid()))
    time.sleep(0.3)  # hold it while the others try
    lock.release()


@pytest.mark.parametrize("stale_first", [False, True])
def test_racing_processes_exactly_one_wins(tmp_path, stale_first):
    ctx = mp.get_context("fork")
    target = tmp_path / "out"
    n, rounds = 5, 4
    for r in range(rounds):
        if stale_first:
            lock_path(target).write_text(json.dumps({**holder_info(), "pid": _dead_pid()}))
        barrier, results = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_contender, args=(str(target), barrier, results)) for _ in range(n)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        outcomes = [results.get(timeout=5)[0] for _ in range(n)]
        assert outcomes.count("won") == 1, f"round {r}: {outcomes}"
        assert not lock_path(target).exists() and not list(tmp_path.glob("*.takeover"))
