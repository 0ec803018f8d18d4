"""MIDG generator training: the smoke run, its checkpoint, resume, the CLI and the samples sheet.

    .venv/bin/python -m pytest tests/test_generator_train.py -x -q

One smoke-profile run (20 steps, crop 32, on 16 procedural 64-px boards) is trained once per
module and shared; the resume tests train a few more short runs of the same profile.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from safetensors import safe_open
from typer.testing import CliRunner

from midg.augment.checkpoint import load_checkpoint_config, load_generator
from midg.augment.config import generator_config
from midg.augment.train import TrainingDiverged, train_generator
from midg.datasets.boxes import Box
from midg.datasets.errors import ConfigError, DatasetError
from midg.datasets.images import read_image
from midg.datasets.layout import DatasetWriter
from midg.datasets.params import load_params

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")


def smoke(**overrides):
    return generator_config(PARAMS, "smoke", **overrides)


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


@pytest.fixture(scope="module")
def boards(tmp_path_factory) -> Path:
    from midg.datasets.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("gen_boards") / "boards"
    make_demo_dataset(root, n_images=16, seed=0, size=64, progress=False)
    return root


@pytest.fixture(scope="module")
def smoke_run(boards, tmp_path_factory) -> tuple[Path, dict, float]:
    out = tmp_path_factory.mktemp("gen_smoke") / "ckpt"
    t0 = time.perf_counter()
    summary = train_generator(boards, out, smoke(), profile="smoke", console=quiet())
    return out, summary, time.perf_counter() - t0


def test_smoke_run_writes_a_self_describing_checkpoint(smoke_run, boards):
    out, summary, seconds = smoke_run
    cfg = smoke()
    print(f"smoke generator training: {cfg.steps} steps in {seconds:.1f} s (wall, incl. library)")
    assert seconds < 60, "the smoke profile must train in seconds"
    for name in ("config.json", "generator.safetensors", "library.safetensors", "stats.json", "metrics.csv",
                 "metrics.json", "train_state/last.safetensors", "train_state/last.json"):
        assert (out / name).is_file(), name
    config = load_checkpoint_config(out)
    assert config["classes"] == ["open", "short", "mousebite", "spur", "copper", "pin-hole"]
    assert (config["crop_size"], config["channels"], config["profile"], config["seed"]) == (32, 1, "smoke", 0)
    assert config["step"] == cfg.steps and config["generator"]["steps"] == cfg.steps
    assert {"torch", "midg", "python"} <= set(config["versions"])
    assert config["sampler_stats"] == json.loads((out / "stats.json").read_text())
    assert set(config["networks"]) == {"inpaint", "edge", "defect"}
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(cfg.log_every, cfg.steps + 1, cfg.log_every))
    assert {"g_total", "d_total", "edge_bce", "defect_l1", "inpaint_hole_l1"} <= set(rows[0])
    assert all(np.isfinite(float(v)) for r in rows for k, v in r.items())
    grids = sorted(p.name for p in (out / "samples").glob("*.png"))
    assert grids == [f"step_{s:06d}.png" for s in range(cfg.sample_every, cfg.steps + 1, cfg.sample_every)]
    grid = read_image(out / "samples" / grids[-1])
    assert grid.ndim == 3 and grid.shape[0] > 6 * 96  # one row per class, 96-px cells
    assert summary["step"] == cfg.steps and json.loads((out / "metrics.json").read_text())["step"] == cfg.steps


def test_checkpoint_holds_safetensors_and_json_only(smoke_run):
    out, _, _ = smoke_run
    seen = set()
    for path in out.rglob("*"):
        if path.is_dir():
            continue
        suffix = path.suffix
        seen.add(suffix)
        if suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as fh:  # parses the header, no pickle involved
                assert list(fh.keys())
        elif suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        else:
            assert suffix in (".csv", ".png"), f"unexpected file {path}"
    assert {".safetensors", ".json", ".csv", ".png"} == seen


LOAD_WITHOUT_PICKLE = r"""
import json, pickle, sys
import torch
def forbidden(*a, **k):
    raise AssertionError("pickle used while loading a MIDG checkpoint")
pickle.load = pickle.loads = torch.load = forbidden
pickle.Unpickler = forbidden
from midg.augment.checkpoint import load_generator
gen = load_generator(sys.argv[1])
g = torch.Generator().manual_seed(0)
crops = torch.rand(2, 1, 32, 32, generator=g)
holes = torch.zeros(2, 1, 32, 32); holes[:, :, 8:20, 10:22] = 1
out = gen.generate(crops, holes, torch.tensor([0, 3]), torch.Generator().manual_seed(7))
print(json.dumps({k: float(v.double().sum()) for k, v in out.items()}))
"""


def test_load_generator_in_a_fresh_process_without_pickle(smoke_run):
    out, _, _ = smoke_run
    res = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_PICKLE, str(out)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    sums = json.loads(res.stdout.strip().splitlines()[-1])
    gen = load_generator(out)
    g = torch.Generator().manual_seed(0)
    crops = torch.rand(2, 1, 32, 32, generator=g)
    holes = torch.zeros(2, 1, 32, 32)
    holes[:, :, 8:20, 10:22] = 1
    here = gen.generate(crops, holes, torch.tensor([0, 3]), torch.Generator().manual_seed(7))
    # the same outputs (up to float summation order: thread counts may differ between processes)
    assert sums == pytest.approx({k: float(v.double().sum()) for k, v in here.items()}, rel=1e-6)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(smoke_run, boards, tmp_path):
    full, _, _ = smoke_run
    out = tmp_path / "ckpt"
    train_generator(boards, out, smoke(steps=10), profile="smoke", console=quiet())  # "interrupted" at 10
    with pytest.raises(DatasetError, match="already holds a training run.*--resume"):
        train_generator(boards, out, smoke(), profile="smoke", console=quiet())
    with pytest.raises(ConfigError, match=r"cannot resume with a different config \(lr"):
        train_generator(boards, out, smoke(lr=1e-3), profile="smoke", resume=True, console=quiet())
    train_generator(boards, out, smoke(), profile="smoke", resume=True, console=quiet())
    assert _bytes(out / "generator.safetensors") == _bytes(full / "generator.safetensors")
    assert _bytes(out / "train_state" / "last.safetensors") == _bytes(full / "train_state" / "last.safetensors")
    with open(out / "metrics.csv", newline="") as a, open(full / "metrics.csv", newline="") as b:
        steps_a = [r["step"] for r in csv.DictReader(a)]
        steps_b = [r["step"] for r in csv.DictReader(b)]
    assert steps_a == steps_b  # rows up to the resume point kept, none doubled
    assert _bytes(out / "samples" / "step_000020.png") == _bytes(full / "samples" / "step_000020.png")


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(boards, tmp_path):
    """A real kill -9 in the middle of training; --resume picks up the last saved step."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "midg.pipelines.cli", "generator", "train", str(boards), "--out", str(out),
           "--profile", "smoke", "--params", str(REPO / "params.yaml"), "--steps", "100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.time() + 120
        while not (out / "train_state" / "last.json").is_file():
            assert proc.poll() is None and time.time() < deadline, "training never saved a resume point"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    saved = json.loads((out / "train_state" / "last.json").read_text())["step"]
    steps = saved + 10
    train_generator(boards, out, smoke(steps=steps), profile="smoke", resume=True, console=quiet())
    ref = tmp_path / "uninterrupted"
    train_generator(boards, ref, smoke(steps=steps), profile="smoke", console=quiet())
    assert _bytes(out / "generator.safetensors") == _bytes(ref / "generator.safetensors")


def test_non_finite_loss_stops_the_run_and_names_the_losses(boards, tmp_path, monkeypatch):
    from midg.augment import model as model_mod

    real_step = model_mod.MIDGModel.step

    def poisoned(self, batch):
        losses = real_step(self, batch)
        losses["edge_bce"] = torch.tensor(float("nan"))
        return losses

    monkeypatch.setattr(model_mod.MIDGModel, "step", poisoned)
    with pytest.raises(TrainingDiverged, match=r"non-finite loss by step 5.*edge_bce=nan"):
        train_generator(boards, tmp_path / "nan", smoke(), profile="smoke", console=quiet())


def test_bad_inputs_are_refused_with_the_file_named(boards, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="notes.txt.*refusing to train into it"):
        train_generator(boards, foreign, smoke(), profile="smoke", console=quiet())
    empty = tmp_path / "nodefects"
    with DatasetWriter(empty, ["open"], source="test") as w:
        w.add_image("train", "a", array=np.zeros((32, 32), np.uint8), boxes=[])
    with pytest.raises(DatasetError, match="no defect boxes"):
        train_generator(empty, tmp_path / "x", smoke(), profile="smoke", console=quiet())
    unpaired = tmp_path / "unpaired"  # no templates, no normals: nothing supervises the inpainting block
    with DatasetWriter(unpaired, ["open"], source="test") as w:
        w.add_image("train", "a", array=np.zeros((32, 32), np.uint8), boxes=[Box(0, 4, 4, 10, 10)])
    with pytest.raises(DatasetError, match="no inpainting supervision"):
        train_generator(unpaired, tmp_path / "y", smoke(), profile="smoke", console=quiet())


def test_cli_train_and_samples_sheet(smoke_run, boards, tmp_path):
    from midg.pipelines.cli import app

    runner = CliRunner()
    out = tmp_path / "cli_ckpt"
    res = runner.invoke(app, ["generator", "train", str(boards), "--out", str(out), "--profile", "smoke",
                              "--params", str(REPO / "params.yaml"), "--steps", "3", "--seed", "1"])
    assert res.exit_code == 0, res.output
    cfg = load_checkpoint_config(out)
    assert (cfg["step"], cfg["seed"]) == (3, 1)

    ckpt, _, _ = smoke_run
    sheets = []
    for name in ("a.png", "b.png"):
        res = runner.invoke(app, ["generator", "samples", str(ckpt), "--normals", str(boards / "normals"),
                                  "--out", str(tmp_path / name), "--seed", "3"])
        assert res.exit_code == 0, res.output
        sheets.append(_bytes(tmp_path / name))
    assert sheets[0] == sheets[1]  # same seed, same pixels
    sheet = read_image(tmp_path / "a.png")
    assert sheet.shape[0] >= 6 * 2 * 96  # 6 classes x 2 rows of 96-px cells
    assert sheet.shape[1] >= 6 * 96  # six columns
    res = runner.invoke(app, ["generator", "samples", str(ckpt), "--normals", str(boards), "--out",
                              str(tmp_path / "c.png"), "--seed", "4", "--rows", "1"])  # a dataset works as --normals
    assert res.exit_code == 0, res.output
    assert read_image(tmp_path / "c.png").shape[0] < sheet.shape[0]
    res = runner.invoke(app, ["generator", "samples", str(tmp_path / "none"), "--normals", str(boards),
                              "--out", str(tmp_path / "d.png")])
    assert isinstance(res.exception, DatasetError) and "does not exist" in str(res.exception)


def test_cli_error_is_one_line_without_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "midg.pipelines.cli", "generator", "train", str(tmp_path / "nope"),
                          "--out", str(tmp_path / "o"), "--profile", "smoke", "--params", str(REPO / "params.yaml")],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 2
    assert "dataset folder does not exist" in res.stderr and "Traceback" not in res.stderr
