"""The comparison protocol: a fixed real share per batch and schedules counted in steps.

Tiny toy sets (tests/_detector_data.py), a few steps at 64 px: seconds each.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from midg.detectors.base import train
from midg.detectors.config import load_detector_config
from midg.detectors.mixing import MixPlan, StepSampler

from _detector_data import make_toy_dataset

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def test_every_batch_holds_the_real_share_exactly_and_repeats():
    real, synth = list(range(10)), list(range(10, 40))
    plan = MixPlan.make(real, synth, batch=8, seed=3, real_fraction=0.5)
    batches = [plan.batch_indices(s) for s in range(30)]
    assert all(sum(i < 10 for i in b) == 4 for b in batches)  # 4 of 8 real, though 30 of 40 images are synthetic
    assert batches == [MixPlan.make(real, synth, 8, 3, 0.5).batch_indices(s) for s in range(30)]  # seeded
    assert batches != [MixPlan.make(real, synth, 8, 4, 0.5).batch_indices(s) for s in range(30)]
    # each pool is read pass after pass: every real image once per 10 real draws
    stream = [i for b in batches for i in b if i < 10]
    assert all(sorted(stream[k:k + 10]) == real for k in range(0, 120, 10))
    # the sampler ultralytics gets: the same steps, epoch after epoch
    sampler = StepSampler(plan, epoch_steps=5)
    flat = list(sampler) + list(sampler)
    assert len(flat) == 2 * len(sampler) == 80 and flat == [i for b in batches[:10] for i in b]
    # other shares, and no mixing where there is nothing to mix
    assert all(sum(i < 10 for i in MixPlan.make(real, synth, 8, 0, 0.25).batch_indices(s)) == 2 for s in range(9))
    assert not MixPlan.make(real, [], 8, 0, 0.5).mixed
    pooled = MixPlan.make(real, synth, 8, 0, None)
    share = Counter(i < 10 for s in range(50) for i in pooled.batch_indices(s))
    assert share[True] == 100  # by size: a quarter of 400 draws over 5 whole passes


def test_faster_rcnn_loader_reads_the_plan(tmp_path):
    from midg.detectors.faster_rcnn import collect_samples, make_loader, make_plan
    from midg.detectors.view import load_datasets

    real = make_toy_dataset(tmp_path / "real", n_train=4, n_val=1, n_test=1, size=32, prefix="r")
    synth = make_toy_dataset(tmp_path / "synth", n_train=12, n_val=0, n_test=0, size=32, seed=1, prefix="s")
    datasets = load_datasets([real, synth])
    cfg = load_detector_config(PARAMS, "smoke", "faster_rcnn_mobilenet", steps=6, real_fraction=0.5)
    samples = collect_samples(datasets)
    plan = make_plan(datasets, cfg)
    assert plan.real_per_batch == 2 and plan.real == (0, 1, 2, 3)
    seen = [plan.batch_indices(s) for s in range(6)]
    for step, (images, _) in enumerate(make_loader(samples, cfg, 0, plan)):
        assert len(images) == 4
        names = [samples[i].path.name for i in seen[step]]
        assert sum(n.startswith("r") for n in names) == 2


def _run(tmp_path: Path, name: str, real: Path, synth: Path) -> tuple[dict, list[dict]]:
    cfg = load_detector_config(PARAMS, "smoke", "yolov8n", steps=4, epoch_steps=2, warmup_steps=2,
                               close_mosaic_steps=2, real_fraction=0.5,
                               ultralytics_args={"optimizer": "AdamW", "lr0": 0.002, "mosaic": 1.0})
    run = train("yolov8n", [real, synth], tmp_path / name, cfg)
    meta = json.loads((run / "meta.json").read_text())
    with (run / "schedule.csv").open(newline="") as fh:
        return meta, list(csv.DictReader(fh))


@pytest.mark.slow  # ~10 s idle, ~28 s on 2 loaded cores
def test_yolo_schedule_and_share_do_not_depend_on_the_synthetic_set_size(tmp_path):
    real = make_toy_dataset(tmp_path / "real", n_train=8, n_val=2, n_test=2, size=64, prefix="r")
    small = make_toy_dataset(tmp_path / "s4", n_train=4, n_val=0, n_test=0, size=64, seed=1, prefix="s")
    big = make_toy_dataset(tmp_path / "s24", n_train=24, n_val=0, n_test=0, size=64, seed=2, prefix="s")
    meta_a, sched_a = _run(tmp_path, "a", real, small)
    meta_b, sched_b = _run(tmp_path, "b", real, big)
    assert meta_a["train_images"] == 12 and meta_b["train_images"] == 32
    assert sched_a == sched_b  # lr of every param group and mosaic on/off, step by step
    assert [r["mosaic"] for r in sched_a] == ["1", "1", "0", "0"]  # the last close_mosaic_steps without mosaic
    assert [r["step"] for r in sched_a] == ["1", "2", "3", "4"]
    assert float(sched_a[0]["lr0"]) < float(sched_a[1]["lr0"])  # warming up over warmup_steps
    assert meta_a["schedule_args"] == meta_b["schedule_args"] == {"epochs": 2, "warmup_epochs": 1.0, "close_mosaic": 1}
    for meta, n_synth in ((meta_a, 4), (meta_b, 24)):
        assert meta["mixing"] == {"real_images": 8, "synthetic_images": n_synth, "real_per_batch": 2, "real_share": 0.5}
        assert meta["batches_per_epoch"] == 2 and meta["mosaic_off_from_step"] == 2


@pytest.mark.slow  # ~18-24 s each on 2 loaded cores
@pytest.mark.parametrize("detector", ["yolov8n", "faster_rcnn_mobilenet"])
def test_convergence_budget_keeps_the_best_on_val(detector, tmp_path):
    from midg.detectors.base import predict

    real = make_toy_dataset(tmp_path / "real", n_train=8, n_val=2, n_test=2, size=64, prefix="r")
    cfg = load_detector_config(PARAMS, "smoke", detector, steps=4, epoch_steps=2, budget="convergence", val_every=2)
    run = train(detector, [real], tmp_path / "run", cfg)
    meta = json.loads((run / "meta.json").read_text())
    with (run / "val_curve.csv").open(newline="") as fh:
        curve = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in curve] == [2, 4] == [r["step"] for r in meta["val_curve"]]
    assert all(0 <= float(r["val_map50"]) <= 1 and 0 <= float(r["val_map50_95"]) <= 1 for r in curve)
    best = max(meta["val_curve"], key=lambda r: (r["val_map50"], -r["step"]))
    assert meta["best_step"] == best["step"] and meta["best_val_map50"] == best["val_map50"]
    assert meta["budget"] == "convergence" and meta["steps"] == 4 and meta["imgsz"] == 64
    assert meta["real_fraction"] == 0.5 and meta["weights"] == meta["best_weights"] != meta["last_weights"]
    assert (run / meta["weights"]).is_file()
    predict(run, real, "test", tmp_path / "preds.json")  # test is scored with the best-on-val weights
    assert isinstance(json.loads((tmp_path / "preds.json").read_text()), list)


def test_yolo_trains_on_the_threads_asked_for(tmp_path):
    import os

    real = make_toy_dataset(tmp_path / "real", n_train=4, n_val=1, n_test=1, size=64, prefix="r")
    cfg = load_detector_config(PARAMS, "smoke", "yolov8n", steps=1, threads=0)
    meta = json.loads((train("yolov8n", [real], tmp_path / "run", cfg) / "meta.json").read_text())
    assert meta["threads"] == meta["torch_threads"] == os.cpu_count()  # not ultralytics' OMP_NUM_THREADS=1


@pytest.mark.parametrize("curve, stop_after", [
    ([0.10, 0.30, 0.50, 0.502, 0.503, 0.504], 6),  # each adds < 0.5 points over 0.50
    ([0.10, 0.30, 0.50, 0.506, 0.507, 0.508, 0.509], 7),  # 0.506 is +0.6 points: the new reference
    ([0.10, 0.30, 0.50, 0.49, 0.60, 0.59, 0.58, 0.57], 8),  # a late gain resets the count
    ([0.2, 0.2, 0.2, 0.2], 4),  # flat from the start: the first value is the reference
])
def test_plateau_rule_stops_after_patience_evaluations_without_gain(curve, stop_after):
    from midg.detectors.common import PlateauRule

    rule = PlateauRule(patience=3, min_delta=0.5)
    steps = [100 * (i + 1) for i in range(len(curve))]
    first = next(i + 1 for i in range(len(curve)) if rule.reached(steps[:i + 1], curve[:i + 1]))
    assert first == stop_after
    assert not PlateauRule(patience=3, min_delta=0.5, min_steps=steps[-1] + 1).reached(steps, curve)  # too early


@pytest.mark.slow  # ~20-30 s on 2 loaded cores
@pytest.mark.parametrize("detector", ["yolov8n", "faster_rcnn_mobilenet"])
def test_plateau_budget_stops_where_a_stubbed_val_curve_flattens(detector, tmp_path, monkeypatch):
    """The val scores are scripted (every evaluation returns the next one): rising to step 3,
    then two evaluations that add under min_delta; patience 2 must stop training at step 5 of
    at most 12 (the later 0.9s are never reached), keeping the highest-scoring weights."""
    import midg.detectors.evaluate as evaluate
    from midg.detectors.base import predict

    script = iter([0.10, 0.20, 0.30, 0.301, 0.302, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])
    monkeypatch.setattr(evaluate, "evaluate_coco", lambda *a, **k: {"map50": next(script), "map50_95": 0.1})
    real = make_toy_dataset(tmp_path / "real", n_train=8, n_val=2, n_test=2, size=64, prefix="r")
    cfg = load_detector_config(PARAMS, "smoke", detector, steps=12, epoch_steps=2, budget="plateau", val_every=1,
                               patience=2, min_delta=0.5, min_steps=2, checkpoint_every=100)
    run = train(detector, [real], tmp_path / "run", cfg)
    meta = json.loads((run / "meta.json").read_text())
    assert [r["step"] for r in meta["val_curve"]] == [1, 2, 3, 4, 5]
    assert meta["stopped_at"] == 5 and meta["steps_done"] == 5 and meta["steps"] == 12
    assert meta["best_step"] == 5 and meta["best_val_map50"] == 0.302  # the highest, though not by min_delta
    assert meta["plateau_rule"] == {"patience": 2, "min_delta": 0.5, "min_steps": 2}
    assert meta["budget"] == "plateau" and meta["weights"] == meta["best_weights"]
    predict(run, real, "test", tmp_path / "preds.json")
