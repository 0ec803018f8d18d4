"""Interrupt and resume: SIGKILL `midg generate`, `midg generator train` and `midg detector
train` at seeded random points, rerun the same command, and compare with an uninterrupted run.

    .venv/bin/python -m pytest tests/test_reliability_interrupt.py -x -q

The killed commands run as real subprocesses of the installed `midg` (smoke profile, 64-px
demo boards, one torch thread); reruns and references run in-process with one thread too,
so CPU results are comparable bit for bit. While a command runs, the final output path is
polled: it is absent, or holds the previous complete output, or a complete new one; never
half of one.

- generate: restarts from scratch (nothing to resume); the rerun's dataset equals the
  uninterrupted one byte for byte, and a kill while replacing an older dataset leaves
  that older dataset as it was.
- generator train: `--resume` continues from the last saved step; generator weights,
  resume state and metrics.csv steps equal the uninterrupted run's, byte for byte.
- detector train (yolov8n): `--resume` continues from ultralytics' last epoch checkpoint.
  ultralytics is not bit-deterministic across a resume (its data order and augmentation
  draws restart with the resumed epoch), so the weights are not compared; asserted: the run
  finishes, and meta.json's steps, images seen and epochs equal the uninterrupted run's.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from _reliability import (PARAMS, files, kill9, leftovers_beside, make_boards, spawn_midg, train_smoke_generator,
                          watch_until)
from midg.datasets.layout import load_dataset
from midg.datasets.locking import lock_path, read_holder
from midg.pipelines.cli import app

N_IMAGES = 100  # written in chunks of ~40 over ~3-5 s at one thread: room for kill points inside the write
PREVIOUS_IMAGES = 10  # the older dataset a kill must leave whole: any complete dataset other than the reference


@pytest.fixture(scope="module")
def boards(tmp_path_factory) -> Path:
    return make_boards(tmp_path_factory.mktemp("rel_boards") / "boards")


@pytest.fixture(scope="module")
def ckpt(boards, tmp_path_factory) -> Path:
    return train_smoke_generator(boards, tmp_path_factory.mktemp("rel_ckpt") / "ckpt")


@pytest.fixture(autouse=True)
def one_thread():
    """In-process runs with one torch thread, as the subprocesses (OMP_NUM_THREADS=1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def invoke(args: list[str]) -> None:
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, f"{res.output}\n{res.exception!r}"


# ---------------------------------------------------------------- midg generate


def _generate_args(ckpt: Path, boards: Path, out: Path, seed: int, n_images: int = N_IMAGES) -> list:
    return ["generate", "--checkpoint", ckpt, "--normals", boards, "--out", out, "--n-images", n_images,
            "--seed", seed, "--profile", "smoke", "--params", PARAMS]


def _written_in_temp(out: Path) -> int:
    """Images the running writer has put in its temporary folder beside `out`."""
    n = 0
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        d = tmp / "images" / "train"
        if d.is_dir():
            n += sum(1 for _ in d.iterdir())
    return n


class FinalPathWatch:
    """Asserts, at every poll, that `out` is absent, the previous dataset, or a complete one."""

    def __init__(self, out: Path, previous: dict[str, bytes] | None):
        self.out, self.previous, self.seen_new = out, previous, False

    def __call__(self) -> None:
        if not self.out.exists():
            assert self.previous is None, "the previous dataset vanished from the final path"
            return
        assert (self.out / "meta.json").is_file(), "a dataset without meta.json at the final path"
        if self.previous is not None and not self.seen_new:
            meta = (self.out / "meta.json").read_bytes()
            if meta == self.previous["meta.json"]:
                return  # still the old one (checked whole after the kill)
        if not self.seen_new:
            load_dataset(self.out)  # the new one is complete: it loads, YOLO and COCO agree
            self.seen_new = True


@pytest.mark.slow
def test_generate_killed_at_random_points_then_rerun_equals_the_uninterrupted_run(ckpt, boards, tmp_path):
    ref = tmp_path / "ref" / "synth"
    invoke(_generate_args(ckpt, boards, ref, seed=5))
    reference = files(ref)
    assert len([k for k in reference if k.startswith("images/train/")]) == N_IMAGES

    rng = random.Random(20261125)  # the kill points are seeded
    kill_points = [0, rng.randrange(1, N_IMAGES // 2), rng.randrange(N_IMAGES // 2, N_IMAGES)]
    report = []
    for i, after_images in enumerate(kill_points):
        out = tmp_path / f"kill{i}" / "synth"
        previous = None
        if i == 2:  # a kill while replacing an older dataset keeps that older one whole
            invoke(_generate_args(ckpt, boards, out, seed=6, n_images=PREVIOUS_IMAGES))
            previous = files(out)
            assert previous != reference
        watch = FinalPathWatch(out, previous)
        proc = spawn_midg(_generate_args(ckpt, boards, out, seed=5), cwd=tmp_path, log=tmp_path / f"kill{i}.log")
        try:
            if after_images == 0:  # as soon as it holds the output's lock: before any image
                reached = watch_until(proc, lambda: lock_path(out).exists(), watch)
            else:
                reached = watch_until(proc, lambda: _written_in_temp(out) >= after_images, watch)
        finally:
            code = kill9(proc)
        watch()
        report.append((after_images, _written_in_temp(out), code))
        assert reached, f"generate ended before the kill point ({(tmp_path / f'kill{i}.log').read_text()[-2000:]})"
        assert code == -9
        if previous is None:
            assert not out.exists(), "a killed generate left output at the final path"
        else:
            assert files(out) == previous, "the killed generate changed the previous dataset"
        holder = read_holder(lock_path(out))
        assert holder is not None and holder["pid"] == proc.pid  # its lock stays behind, stale

        invoke(_generate_args(ckpt, boards, out, seed=5))  # the same command again
        assert files(out) == reference, f"rerun after a kill at {after_images} images differs"
        assert leftovers_beside(out) == [], "temporary folders or the lock were left beside the output"
    print(f"generate kill points (images wanted, in temp at kill, exit): {report}")


# ---------------------------------------------------------------- midg generator train

TRAIN_STEPS = 30  # smoke: resume points every 10 steps, metrics rows every 5


def _train_args(boards: Path, out: Path) -> list:
    return ["generator", "train", boards, "--out", out, "--profile", "smoke", "--params", PARAMS,
            "--steps", TRAIN_STEPS]


def _metrics_rows(out: Path) -> int:
    try:
        return max(0, len((out / "metrics.csv").read_text().splitlines()) - 1)
    except (FileNotFoundError, UnicodeDecodeError):
        return 0


def _check_checkpoint_files(out: Path) -> None:
    """Whatever is in the run folder parses: config.json, and a resume point whose two files agree."""
    from midg.augment.checkpoint import load_train_state
    from midg.datasets.errors import DatasetError

    if (out / "config.json").is_file():
        json.loads((out / "config.json").read_text())
    if (out / "train_state" / "last.json").is_file():
        try:
            tensors, meta = load_train_state(out)
        except DatasetError as exc:  # the folder was swapped between our two reads
            if "missing" not in str(exc):
                raise
        else:
            assert tensors and meta["step"] % 10 == 0


@pytest.mark.slow
def test_generator_train_killed_at_random_points_resumes_to_the_same_weights(boards, tmp_path):
    ref = tmp_path / "ref"
    invoke(_train_args(boards, ref))
    rng = random.Random(7)
    # metrics rows seen before the kill: 0 is before the first resume point (step 10)
    kill_points = [0, rng.randrange(2, 4), rng.randrange(4, 6)]
    report = []
    for i, rows in enumerate(kill_points):
        out = tmp_path / f"kill{i}"
        proc = spawn_midg(_train_args(boards, out), cwd=tmp_path, log=tmp_path / f"train{i}.log")
        try:
            if rows == 0:
                reached = watch_until(proc, lambda: (out / "config.json").is_file(), lambda: _check_checkpoint_files(out))
            else:
                reached = watch_until(proc, lambda: _metrics_rows(out) >= rows, lambda: _check_checkpoint_files(out))
        finally:
            code = kill9(proc)
        assert reached and code == -9, (tmp_path / f"train{i}.log").read_text()[-2000:]
        saved = json.loads((out / "train_state" / "last.json").read_text())["step"] \
            if (out / "train_state" / "last.json").is_file() else 0
        report.append((rows, saved))
        assert not (out / "generator.safetensors").exists()  # final weights only at the very end

        invoke(_train_args(boards, out) + ["--resume"])
        for name in ("generator.safetensors", "train_state/last.safetensors", "library.safetensors", "stats.json"):
            assert (out / name).read_bytes() == (ref / name).read_bytes(), f"{name} differs after a kill at {rows} rows"
        steps = lambda p: [line.split(",")[0] for line in (p / "metrics.csv").read_text().splitlines()]  # noqa: E731
        assert steps(out) == steps(ref)  # no row lost, none doubled
        assert leftovers_beside(out) == [] and not [p.name for p in out.iterdir() if ".tmp-" in p.name]
    print(f"generator train kill points (metrics rows, saved step): {report}")


# ---------------------------------------------------------------- midg detector train (yolov8n)

DET_STEPS = 12  # 10 train boards, batch 4: 3 steps per epoch, 4 epochs


def _detector_args(boards: Path, out: Path) -> list:
    return ["detector", "train", "--detector", "yolov8n", "--data", boards, "--out", out, "--profile", "smoke",
            "--params", PARAMS, "--steps", DET_STEPS]


def _check_run_meta(out: Path) -> None:
    meta_path = out / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        assert meta["status"] in ("running", "finished")
        if meta["status"] == "finished":
            assert (out / meta["weights"]).is_file()


@pytest.mark.slow
def test_detector_train_killed_then_resumed_finishes_with_the_same_steps(boards, tmp_path):
    ref = tmp_path / "ref"
    invoke(_detector_args(boards, ref))
    want = json.loads((ref / "meta.json").read_text())
    assert want["steps_done"] == DET_STEPS and want["epochs"] == 4

    rng = random.Random(3)
    last = lambda out: out / "train" / "weights" / "last.pt"  # noqa: E731
    # before ultralytics' first epoch checkpoint (a fresh restart), and after one (a real resume)
    kill_points = [("meta.json", rng.uniform(0.0, 0.5)), ("last.pt", rng.uniform(0.0, 0.3))]
    report = []
    for i, (what, delay) in enumerate(kill_points):
        out = tmp_path / f"kill{i}"
        proc = spawn_midg(_detector_args(boards, out), cwd=tmp_path, log=tmp_path / f"det{i}.log")
        try:
            marker = (out / "meta.json") if what == "meta.json" else last(out)
            reached = watch_until(proc, marker.is_file, lambda: _check_run_meta(out), timeout=300)
            if reached and delay:
                import time

                time.sleep(delay)
        finally:
            code = kill9(proc)
        assert reached, (tmp_path / f"det{i}.log").read_text()[-2000:]
        meta = json.loads((out / "meta.json").read_text())
        report.append((what, round(delay, 2), meta["status"], code))
        if meta["status"] == "finished":
            continue  # it finished within the delay: nothing to resume (the poll still checked it)
        invoke(_detector_args(boards, out) + ["--resume"])
        got = json.loads((out / "meta.json").read_text())
        assert got["status"] == "finished"
        for key in ("steps_done", "images_seen", "epochs", "batches_per_epoch", "train_images"):
            assert got[key] == want[key], key
        assert (out / got["weights"]).is_file() and leftovers_beside(out) == []
        if what == "last.pt":
            assert got["resumed_from_epoch"] is not None and got["resumed_from_epoch"] >= 1
            # epochs before the kill are the same training (losses equal; column 1 is wall time)
            rows = lambda p: [r.split(",")[2:] for r in (p / "train" / "results.csv").read_text().splitlines()]  # noqa: E731
            done = got["resumed_from_epoch"]
            assert rows(out)[1:done + 1] == rows(ref)[1:done + 1]
    print(f"detector kill points (marker, delay s, status at kill, exit): {report}")
