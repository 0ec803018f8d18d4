"""YOLOv8 (any size) and YOLOv5u through ultralytics, offline, from their model yaml.

    midg detector train --detector yolov8n --data data/real --out runs/y8 --profile demo
    midg detector predict --run runs/y8 --data data/real --split test --out runs/y8/preds_test.json

YOLOv5 in ultralytics is YOLOv5u: the v5 backbone and neck with the anchor-free v8 head.

The budget is optimiser steps, not epochs: `nbs` (ultralytics' nominal batch) is set to
`batch`, so every batch is one optimiser step, and a callback stops the trainer after
exactly `steps` batches.

Schedules in steps, the same for every condition: ultralytics counts its lr decay,
warmup and mosaic close in epochs, and an epoch is one pass over the (real + synthetic)
train set, so a bigger synthetic set would stretch every schedule. `MidgTrainer` (a
`DetectionTrainer` given as `model.train(trainer=...)`) replaces the train loader's
sampler with a `StepSampler` (detectors/mixing.py): an "epoch" is `epoch_steps` batches
whatever the data, so `epochs = ceil(steps / epoch_steps)`, `warmup_epochs = warmup_steps /
epoch_steps` (ultralytics warms up `round(warmup_epochs * batches per epoch)` iterations),
`close_mosaic = round(close_mosaic_steps / epoch_steps)` and the per-epoch lr factor are
identical across conditions. `optimizer: auto` chooses by its iteration count, which
ultralytics derives from the dataset size: the trainer passes `steps` instead.
`warmup_bias_lr` (bias lr starts there and falls to lr0 over the warmup) is left to
ultralytics: 0.1 with a named optimiser, 0 with `auto`. Forcing 0 for a named AdamW looked
tidier but stopped YOLOv8n learning from scratch on the demo boards (240 steps, warmup 60:
mAP50 0.03 against 0.29 with 0.1; 2026-12-02): the biases of the untrained head need the
large early steps.

Mixing: the sampler also fixes the share of real images in every batch (`real_fraction`).
Mosaic (and MixUp/CutMix) draw 3 (1) more images from the whole dataset, uniformly, which
would bring back the size-weighted mix inside each mosaic; their draws are replaced so each
extra tile is real with probability `real_fraction`: the batch's anchor images hold the
share exactly, the extra tiles in expectation. ultralytics validates only
at that end (`val=False`), then we predict with `train/weights/last.pt` (the weights the
budget bought; its EMA copy, as ultralytics saves it).

Several GPUs (`device: 0,1,...`): ultralytics' own DDP. It pickles this trainer class, the
model and our callbacks (cloudpickle) and runs them in `torch.distributed.run` workers;
rank r's sampler reads slots r, r+N, ... of each step's batch, rank 0 scores val and
records the steps (`StepBudget.on_train_end` -> train/ddp_budget.json), and this process,
which only launched them, reads that record back.

Repeatability: `seed` and `deterministic=True` make CPU runs repeat; on CUDA some kernels
stay nondeterministic (ultralytics only warns), so GPU runs repeat closely, not exactly.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from midg.datasets.atomic import atomic_write_json
from midg.datasets.errors import ConfigError, DatasetError
from midg.datasets.layout import Dataset
from midg.datasets.progress import track

from .common import DetectorSpec, TrainingError, console, first_device, resolve_device, resolve_train_device
from .config import DetectorConfig
from .mixing import MixPlan, StepSampler
from .offline import restore_torch_threads, ultralytics_offline
from .view import build_view

WEIGHTS = "train/weights/last.pt"  # relative to the run folder
VAL_SNAPSHOT = "train/weights/val_snapshot.pt"  # budget convergence: the EMA weights being scored on val
BEST_WEIGHTS = "train/weights/best_val.pt"  # ... and the best of them (by our mAP50 on the real val split)
DDP_BUDGET = "ddp_budget.json"  # in the trainer's folder: the DDP workers' step record (see StepBudget)
# This process's rank when torch.distributed.run started it (ultralytics' DDP workers), else None;
# ultralytics' own RANK reads -1 in a launch of one worker, whose record is still needed.
_LAUNCHED_RANK = int(os.environ["RANK"]) if "RANK" in os.environ else None
NMS_IOU = 0.7  # ultralytics' own default for val and predict: keeps our mAP comparable to its


def _yolo(run_dir: Path):
    ultralytics_offline(Path(run_dir) / "ultralytics_config")
    from ultralytics import YOLO

    return YOLO


class StepBudget:
    """ultralytics callbacks that count optimiser steps and images, and stop at the budget."""

    def __init__(self, steps: int, batch: int, val=None, val_every: int = 0, run_dir: Path | None = None):
        self.steps, self.batch = steps, batch
        self.val, self.val_every, self.run_dir = val, val_every, run_dir  # budget: convergence (common.ValTracker)
        import torch

        self.threads = torch.get_num_threads()  # train_threads() set it before the trainer was made
        self.steps_done = self.images_seen = self.n_images = self._i = self.start_epoch = self.threads_seen = 0
        self.schedule: list[dict[str, Any]] = []  # per step: lr of each param group, mosaic on/off
        self.step_seconds: list[float] = []  # batch end to batch end within an epoch (loading included)
        self.mixing: dict[str, Any] | None = None
        self.plateau_step = 0  # budget plateau: the step val mAP50 stopped rising at (0: not stopped)
        self._t = 0.0

    # What a DDP worker (rank 0) records for the launching process, whose own copy saw no step
    STATE = ("steps_done", "images_seen", "n_images", "start_epoch", "threads_seen", "schedule", "step_seconds",
             "mixing")

    def on_train_start(self, trainer) -> None:
        import torch

        # On resume, start_epoch whole epochs are already done.
        self.start_epoch = trainer.start_epoch
        trainer.step_sampler.epoch = trainer.start_epoch  # the plan's steps continue where the run stopped
        if trainer.device.type == "cpu":
            torch.set_num_threads(self.threads)  # select_device set ultralytics' own count
        self.n_images = len(trainer.train_loader.dataset)
        self.steps_done = trainer.start_epoch * len(trainer.train_loader)
        self.images_seen = self.steps_done * self.batch
        self.mixing = trainer.mix_plan.describe()

    def on_train_epoch_start(self, trainer) -> None:
        import torch

        self._i = 0
        self.threads_seen = torch.get_num_threads()  # what the training steps run with

    def on_train_batch_end(self, trainer) -> None:
        now = time.perf_counter()
        if self._i:
            self.step_seconds.append(now - self._t)
        self._t = now
        self.images_seen += self.batch  # the step sampler fills every batch
        self._i += 1
        self.steps_done += 1
        self.schedule.append({"step": self.steps_done, "mosaic": int(_mosaic_on(trainer.train_loader.dataset)),
                              **{f"lr{i}": round(g["lr"], 10) for i, g in enumerate(trainer.optimizer.param_groups)}})
        scores = self.val is not None and _LAUNCHED_RANK in (None, 0)  # under DDP rank 0 scores, the others wait
        if scores and (self.steps_done % self.val_every == 0 or self.steps_done >= self.steps):
            self.val(self.steps_done, _snapshot(trainer, self.run_dir / VAL_SNAPSHOT), self.run_dir / BEST_WEIGHTS)
            if self.val.should_stop(self.steps_done):  # budget plateau (one process: DDP runs keep the budget)
                self.plateau_step = self.steps_done
        if self.steps_done >= self.steps or self.plateau_step:
            trainer.stop = True  # the trainer validates, saves last.pt and ends after this batch

    def on_train_end(self, trainer) -> None:
        if _LAUNCHED_RANK is not None:  # a DDP worker (ultralytics calls this on rank 0 only)
            atomic_write_json(Path(trainer.save_dir) / DDP_BUDGET, {k: getattr(self, k) for k in self.STATE})

    def load(self, path: Path) -> None:
        """What the DDP workers' rank 0 recorded (this process only launched them)."""
        if not path.is_file():
            raise TrainingError(f"{path}: ultralytics' DDP workers finished without recording their steps")
        state = json.loads(path.read_text(encoding="utf-8"))
        for k in self.STATE:
            setattr(self, k, state[k])

    def attach(self, model) -> None:
        for event in ("on_train_start", "on_train_epoch_start", "on_train_batch_end", "on_train_end"):
            model.add_callback(event, getattr(self, event))


# Train arguments this module sets itself: ultralytics_args may not touch them.
_OWNED_ARGS = {"data", "epochs", "batch", "nbs", "imgsz", "device", "workers", "seed", "deterministic", "pretrained",
               "amp", "project", "name", "exist_ok", "val", "plots", "cache", "resume", "model", "mode", "task", "time",
               "fraction", "patience", "save", "save_period", "max_det", "verbose",
               "warmup_epochs", "close_mosaic"}  # set from warmup_steps, close_mosaic_steps


def _extra_args(cfg: DetectorConfig) -> dict[str, Any]:
    from ultralytics.cfg import DEFAULT_CFG_DICT

    owned = sorted(set(cfg.ultralytics_args) & _OWNED_ARGS)
    if owned:
        raise ConfigError(f"detector.ultralytics_args: {owned} are set by midg from the detector config; remove them")
    unknown = sorted(set(cfg.ultralytics_args) - set(DEFAULT_CFG_DICT))
    if unknown:
        raise ConfigError(f"detector.ultralytics_args: {unknown} are not ultralytics train arguments "
                          "(see ultralytics/cfg/default.yaml)")
    return dict(cfg.ultralytics_args)


def _walk_transforms(t, seen=None):
    """Every transform inside ultralytics' Compose tree (mix transforms keep a pre_transform)."""
    seen = set() if seen is None else seen
    if t is None or id(t) in seen:
        return
    seen.add(id(t))
    yield t
    for child in getattr(t, "transforms", None) or []:
        yield from _walk_transforms(child, seen)
    yield from _walk_transforms(getattr(t, "pre_transform", None), seen)


def _mosaic_on(dataset) -> bool:
    from ultralytics.data.augment import Mosaic

    return any(isinstance(t, Mosaic) and t.p > 0 for t in _walk_transforms(dataset.transforms))


def _mix_extra_draws(dataset, plan: MixPlan, real_fraction: float) -> int:
    """Mosaic/MixUp/CutMix draw their extra images real with probability real_fraction."""
    import random

    from ultralytics.data.augment import BaseMixTransform, Mosaic

    def draw() -> int:  # python's random: ultralytics seeds it, as for its own draws
        pool = plan.real if plan.synth == () or random.random() < real_fraction else plan.synth
        return pool[random.randrange(len(pool))]

    n = 0
    for t in _walk_transforms(dataset.transforms):
        if isinstance(t, Mosaic):
            t.get_indexes = lambda t=t: [draw() for _ in range(t.n - 1)]
            t.buffer_enabled = False
            n += 1
        elif isinstance(t, BaseMixTransform):
            t.get_indexes = draw
            n += 1
    return n


def _trainer_class(cfg: DetectorConfig, view_root: Path):
    """A DetectionTrainer whose train loader reads the step plan (detectors/mixing.py)."""
    import os

    import torch
    from ultralytics.data.build import InfiniteDataLoader, seed_worker
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.torch_utils import torch_distributed_zero_first

    real_prefix = str(Path(view_root).resolve() / "0") + os.sep
    epoch_steps = min(cfg.epoch_steps, cfg.steps)

    class MidgTrainer(DetectionTrainer):
        def get_dataloader(self, dataset_path, batch_size=16, rank=0, mode="train"):
            if mode != "train":
                return super().get_dataloader(dataset_path, batch_size, rank, mode)
            with torch_distributed_zero_first(rank):  # as ultralytics: under DDP rank 0 writes the label cache first
                dataset = self.build_dataset(dataset_path, mode, batch_size)
            real = [i for i, f in enumerate(dataset.im_files) if str(f).startswith(real_prefix)]
            synth = [i for i, f in enumerate(dataset.im_files) if not str(f).startswith(real_prefix)]
            # under DDP ultralytics passes one rank's share of the batch: the plan is of whole steps
            world = max(self.world_size, 1) if rank != -1 else 1
            self.mix_plan = MixPlan.make(real, synth, batch_size * world, cfg.seed, cfg.real_fraction)
            if self.mix_plan.mixed:
                _mix_extra_draws(dataset, self.mix_plan, cfg.real_fraction)
            self.step_sampler = StepSampler(self.mix_plan, epoch_steps, max(rank, 0), world)
            workers = min(os.cpu_count() or 1, self.args.workers)
            return InfiniteDataLoader(
                dataset=dataset, batch_size=batch_size, sampler=self.step_sampler, shuffle=False,
                num_workers=workers, prefetch_factor=4 if workers else None,
                pin_memory=self.device.type == "cuda", collate_fn=dataset.collate_fn,
                worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(cfg.seed), drop_last=False)

        def save_model(self):
            # ultralytics writes last.pt in place, so a kill mid-write left a file that neither
            # resumes nor scores: write beside it, then move into place (the previous epoch's
            # checkpoint stays whole until the new one is complete).
            final = (self.last, self.best)
            partial = tuple(p.with_name(f".{p.name}.partial") for p in final)
            self.last, self.best = partial
            try:
                super().save_model()
            except BaseException:
                for p in partial:
                    p.unlink(missing_ok=True)
                raise
            finally:
                self.last, self.best = final
            for p, target in zip(partial, final):
                if p.exists():
                    os.replace(p, target)

        def build_optimizer(self, model, name="auto", lr=0.001, momentum=0.9, decay=1e-5, iterations=1e5):
            # `auto` picks the optimiser by iteration count: ours is `steps`, not a dataset-size estimate
            return super().build_optimizer(model, name, lr, momentum, decay, iterations=cfg.steps)

    return MidgTrainer


def schedule_args(cfg: DetectorConfig) -> dict[str, Any]:
    """ultralytics' epoch-counted settings from the step-counted ones (see the module docstring)."""
    epoch_steps = min(cfg.epoch_steps, cfg.steps)
    epochs = math.ceil(cfg.steps / epoch_steps)
    args = {"epochs": epochs, "warmup_epochs": cfg.warmup_steps / epoch_steps,
            "close_mosaic": min(round(cfg.close_mosaic_steps / epoch_steps), epochs)}
    return args  # warmup_bias_lr: ultralytics' own (see the module docstring)


def _resumable(YOLO, last: Path) -> Any:
    """A YOLO model loaded from last.pt when it still holds optimiser state, else None."""
    if not last.is_file():
        return None
    try:
        model = YOLO(str(last))  # our own run's file: ultralytics unpickles it (see docs/detectors.md on trust)
    except Exception as exc:  # written by a version before atomic saves, or damaged since
        console.print(f"[yellow]{last} is not a loadable checkpoint ({type(exc).__name__}): training starts over[/]")
        return None
    ckpt = model.ckpt or {}
    return model if ckpt.get("optimizer") is not None and ckpt.get("epoch", -1) >= 0 else None


def train_run(spec: DetectorSpec, datasets: list[Dataset], out: Path, cfg: DetectorConfig, *,
              weights: Path | None = None, resume: bool = False, val=None) -> dict[str, Any]:
    import torch

    threads = torch.get_num_threads()
    YOLO = _yolo(out)
    view = build_view(datasets, out / "data")
    sched = schedule_args(cfg)
    epochs = sched["epochs"]
    batches_per_epoch = min(cfg.epoch_steps, cfg.steps)
    Trainer = _trainer_class(cfg, view.root)
    device = resolve_train_device(cfg.device, "ultralytics")
    world = len(device.split(","))  # >1: ultralytics' DDP, one worker process per GPU
    if cfg.batch % world:
        raise ConfigError(f"device {cfg.device!r}: batch {cfg.batch} must divide by the {world} GPUs "
                          "(each takes an equal share of every step's images)")
    budget = StepBudget(cfg.steps, cfg.batch, val, cfg.val_every, out)
    last = out / WEIGHTS
    model = _resumable(YOLO, last) if resume else None
    resumed = model is not None
    (out / "train" / DDP_BUDGET).unlink(missing_ok=True)  # only this run's workers' record may be read back
    try:
        if resumed:
            console.print(f"resuming from {last}")
            budget.attach(model)
            model.train(resume=True, device=device, workers=cfg.workers, trainer=Trainer)
        else:
            shutil.rmtree(out / "train", ignore_errors=True)  # an unresumable leftover (killed in epoch 1)
            if weights is not None:
                console.print(f"[yellow]loading {weights} with ultralytics (a pickle: only use weights you trust)[/]")
            model = YOLO(spec.arch)  # from the model yaml; the trainer rebuilds it with the data's classes
            budget.attach(model)
            model.train(
                trainer=Trainer, data=str(view.yaml), **sched, batch=cfg.batch, nbs=cfg.batch, imgsz=cfg.imgsz,
                device=device, workers=cfg.workers, seed=cfg.seed, deterministic=True,
                pretrained=str(weights) if weights is not None else False, amp=cfg.amp,
                project=str(out), name="train", exist_ok=True,  # absolute: never under ultralytics' runs dir
                val=False, plots=cfg.plots, cache="ram" if cfg.cache else False, max_det=300,
                patience=0,  # early stopping off: the budget is the budget
                verbose=True, **_extra_args(cfg),
            )
    finally:
        restore_torch_threads(threads)  # ultralytics sets torch threads itself for CPU training
    if model.trainer.ddp:  # the steps ran in ultralytics' DDP workers: take their record
        budget.load(out / "train" / DDP_BUDGET)
        if val is not None:
            val.reload()
    if budget.steps_done < cfg.steps and not budget.plateau_step:
        raise TrainingError(f"{out}: ultralytics stopped after {budget.steps_done} of {cfg.steps} steps")
    if not last.is_file():
        raise TrainingError(f"{last}: ultralytics finished without writing its last checkpoint")
    _write_schedule(out / "schedule.csv", budget.schedule)
    metrics = getattr(model.trainer, "metrics", None) or {}
    return {
        "weights": WEIGHTS,
        "steps_done": budget.steps_done,
        "images_seen": budget.images_seen,
        "epochs": epochs,
        "resumed_from_epoch": budget.start_epoch if resumed else None,
        "batches_per_epoch": batches_per_epoch,
        "schedule_args": sched,
        "best_weights": BEST_WEIGHTS if val is not None else None,
        "torch_threads": budget.threads_seen,
        "mosaic_off_from_step": (epochs - sched["close_mosaic"]) * batches_per_epoch if sched["close_mosaic"] else None,
        "mixing": budget.mixing,
        "ddp_world_size": model.trainer.world_size if model.trainer.ddp else None,
        "train_images_used": budget.n_images,
        "s_per_step": round(statistics.median(budget.step_seconds), 4) if budget.step_seconds else None,
        "val_source": view.val_source,
        "view": str(view.yaml),
        "backend_val": {k: round(float(v), 5) for k, v in metrics.items() if isinstance(v, (int, float))},
    }


def _snapshot(trainer, path: Path) -> Path:
    """The trainer's EMA weights as a checkpoint YOLO() loads (as save_model writes it, without
    the optimiser: a snapshot to score, not to resume; ultralytics' own last.pt stays epoch-bound)."""
    import copy

    import torch

    ema = copy.deepcopy(trainer.ema.ema).half()
    if hasattr(ema, "criterion"):
        ema.criterion = None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"epoch": -1, "model": None, "ema": ema, "optimizer": None, "train_args": vars(trainer.args)}, tmp)
    tmp.replace(path)
    return path


def _write_schedule(path: Path, rows: list[dict[str, Any]]) -> None:
    """schedule.csv: per step, the lr of each parameter group and whether mosaic was on."""
    import csv

    if not rows:
        return
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _load(run_dir: Path, meta: dict[str, Any]):
    YOLO = _yolo(run_dir)
    path = Path(run_dir) / meta["weights"]
    if not path.is_file():
        raise DatasetError(path, "weights file missing from the run folder")
    return YOLO(str(path))


def predict_images(spec: DetectorSpec, run_dir: Path, meta: dict[str, Any], paths: list[Path],
                   cfg: DetectorConfig, chunk: int = 16, progress: bool = True) -> list[list[tuple]]:
    """Per image: (cls, x1, y1, x2, y2, score) in the image's pixels."""
    import torch

    threads = torch.get_num_threads()
    model = _load(run_dir, meta)
    device = resolve_device(first_device(cfg.device))
    out: list[list[tuple]] = []
    try:
        starts = range(0, len(paths), chunk)
        for start in (track(starts, f"predict {spec.name}", total=len(starts)) if progress else starts):
            part = [str(p) for p in paths[start:start + chunk]]
            results = model.predict(source=part, imgsz=cfg.imgsz, conf=cfg.conf, iou=NMS_IOU, max_det=cfg.max_det,
                                    device=device, batch=len(part), verbose=False, save=False)
            for r in results:
                b = r.boxes
                xyxy, cls, score = b.xyxy.cpu().tolist(), b.cls.cpu().tolist(), b.conf.cpu().tolist()
                out.append([(int(c), *box, s) for c, box, s in zip(cls, xyxy, score)])
    finally:
        restore_torch_threads(threads)
    return out


def ultralytics_val(run_dir: Path, split: str = "test", device: str | None = None) -> dict[str, float]:
    """ultralytics' own mAP on the run's data view (to cross-check our evaluator; not our metric)."""
    import torch

    from .common import read_run_meta

    threads = torch.get_num_threads()
    meta = read_run_meta(run_dir)
    model = _load(run_dir, meta)
    cfg = meta["config"]
    try:
        m = model.val(data=meta["view"], split=split, imgsz=cfg["imgsz"], batch=cfg["batch"], conf=cfg["conf"],
                      iou=NMS_IOU, device=resolve_device(first_device(device or cfg["device"])), plots=False, verbose=False,
                      project=str(Path(run_dir).resolve()), name=f"val_{split}", exist_ok=True)
    finally:
        restore_torch_threads(threads)
    return {"map50": float(m.box.map50), "map50_95": float(m.box.map)}
