"""YOLOv8 (any size) and YOLOv5u through ultralytics, offline, from their model yaml.

    midg detector train --detector yolov8n --data data/real --out runs/y8 --profile demo
    midg detector predict --run runs/y8 --data data/real --split test --out runs/y8/preds_test.json

YOLOv5 in ultralytics is YOLOv5u: the v5 backbone and neck with the anchor-free v8 head.

The budget is optimiser steps, not epochs: `nbs` (ultralytics' nominal batch) is set to
`batch`, so every batch is one optimiser step; `epochs = ceil(steps / batches per epoch)`
and a callback stops the trainer after exactly `steps` batches. ultralytics validates only
at that end (`val=False`), then we predict with `train/weights/last.pt` (the weights the
budget bought; its EMA copy, as ultralytics saves it).

Repeatability: `seed` and `deterministic=True` make CPU runs repeat; on CUDA some kernels
stay nondeterministic (ultralytics only warns), so GPU runs repeat closely, not exactly.
"""

from __future__ import annotations

import math
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from midg.datasets.errors import ConfigError, DatasetError
from midg.datasets.layout import Dataset
from midg.datasets.progress import track

from .common import DetectorSpec, TrainingError, console, resolve_device
from .config import DetectorConfig
from .offline import restore_torch_threads, ultralytics_offline
from .view import build_view

WEIGHTS = "train/weights/last.pt"  # relative to the run folder
NMS_IOU = 0.7  # ultralytics' own default for val and predict: keeps our mAP comparable to its


def _yolo(run_dir: Path):
    ultralytics_offline(Path(run_dir) / "ultralytics_config")
    from ultralytics import YOLO

    return YOLO


class StepBudget:
    """ultralytics callbacks that count optimiser steps and images, and stop at the budget."""

    def __init__(self, steps: int, batch: int):
        self.steps, self.batch = steps, batch
        self.steps_done = self.images_seen = self.n_images = self._i = self.start_epoch = 0
        self.step_seconds: list[float] = []  # batch end to batch end within an epoch (loading included)
        self._t = 0.0

    def on_train_start(self, trainer) -> None:
        # On resume, start_epoch whole epochs are already done.
        self.start_epoch = trainer.start_epoch
        self.n_images = len(trainer.train_loader.dataset)
        self.steps_done = trainer.start_epoch * len(trainer.train_loader)
        self.images_seen = trainer.start_epoch * self.n_images

    def on_train_epoch_start(self, trainer) -> None:
        self._i = 0

    def on_train_batch_end(self, trainer) -> None:
        now = time.perf_counter()
        if self._i:
            self.step_seconds.append(now - self._t)
        self._t = now
        self.images_seen += min(self.batch, self.n_images - self._i * self.batch)  # last batch may be short
        self._i += 1
        self.steps_done += 1
        if self.steps_done >= self.steps:
            trainer.stop = True  # the trainer validates, saves last.pt and ends after this batch

    def attach(self, model) -> None:
        for event in ("on_train_start", "on_train_epoch_start", "on_train_batch_end"):
            model.add_callback(event, getattr(self, event))


# Train arguments this module sets itself: ultralytics_args may not touch them.
_OWNED_ARGS = {"data", "epochs", "batch", "nbs", "imgsz", "device", "workers", "seed", "deterministic", "pretrained",
               "amp", "project", "name", "exist_ok", "val", "plots", "cache", "resume", "model", "mode", "task", "time",
               "fraction", "patience", "save", "save_period", "max_det", "verbose"}


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


def _resumable(YOLO, last: Path) -> Any:
    """A YOLO model loaded from last.pt when it still holds optimiser state, else None."""
    if not last.is_file():
        return None
    model = YOLO(str(last))  # our own run's file: ultralytics unpickles it (see docs/detectors.md on trust)
    ckpt = model.ckpt or {}
    return model if ckpt.get("optimizer") is not None and ckpt.get("epoch", -1) >= 0 else None


def train_run(spec: DetectorSpec, datasets: list[Dataset], out: Path, cfg: DetectorConfig, *,
              weights: Path | None = None, resume: bool = False) -> dict[str, Any]:
    import torch

    threads = torch.get_num_threads()
    YOLO = _yolo(out)
    view = build_view(datasets, out / "data")
    batches_per_epoch = math.ceil(view.n_train / cfg.batch)
    epochs = math.ceil(cfg.steps / batches_per_epoch)
    device = resolve_device(cfg.device)
    budget = StepBudget(cfg.steps, cfg.batch)
    last = out / WEIGHTS
    model = _resumable(YOLO, last) if resume else None
    resumed = model is not None
    try:
        if resumed:
            console.print(f"resuming from {last}")
            budget.attach(model)
            model.train(resume=True, device=device, workers=cfg.workers)
        else:
            shutil.rmtree(out / "train", ignore_errors=True)  # an unresumable leftover (killed in epoch 1)
            if weights is not None:
                console.print(f"[yellow]loading {weights} with ultralytics (a pickle: only use weights you trust)[/]")
            model = YOLO(spec.arch)  # from the model yaml; the trainer rebuilds it with the data's classes
            budget.attach(model)
            model.train(
                data=str(view.yaml), epochs=epochs, batch=cfg.batch, nbs=cfg.batch, imgsz=cfg.imgsz,
                device=device, workers=cfg.workers, seed=cfg.seed, deterministic=True,
                pretrained=str(weights) if weights is not None else False, amp=cfg.amp,
                project=str(out), name="train", exist_ok=True,  # absolute: never under ultralytics' runs dir
                val=False, plots=cfg.plots, cache="ram" if cfg.cache else False, max_det=300,
                patience=0,  # early stopping off: the budget is the budget
                verbose=True, **_extra_args(cfg),
            )
    finally:
        restore_torch_threads(threads)  # ultralytics sets torch threads itself for CPU training
    if budget.steps_done < cfg.steps:
        raise TrainingError(f"{out}: ultralytics stopped after {budget.steps_done} of {cfg.steps} steps")
    if not last.is_file():
        raise TrainingError(f"{last}: ultralytics finished without writing its last checkpoint")
    metrics = getattr(model.trainer, "metrics", None) or {}
    return {
        "weights": WEIGHTS,
        "steps_done": budget.steps_done,
        "images_seen": budget.images_seen,
        "epochs": epochs,
        "resumed_from_epoch": budget.start_epoch if resumed else None,
        "batches_per_epoch": batches_per_epoch,
        "train_images_used": budget.n_images,
        "s_per_step": round(statistics.median(budget.step_seconds), 4) if budget.step_seconds else None,
        "val_source": view.val_source,
        "view": str(view.yaml),
        "backend_val": {k: round(float(v), 5) for k, v in metrics.items() if isinstance(v, (int, float))},
    }


def _load(run_dir: Path, meta: dict[str, Any]):
    YOLO = _yolo(run_dir)
    path = Path(run_dir) / meta["weights"]
    if not path.is_file():
        raise DatasetError(path, "weights file missing from the run folder")
    return YOLO(str(path))


def predict_images(spec: DetectorSpec, run_dir: Path, meta: dict[str, Any], paths: list[Path],
                   cfg: DetectorConfig, chunk: int = 16) -> list[list[tuple]]:
    """Per image: (cls, x1, y1, x2, y2, score) in the image's pixels."""
    import torch

    threads = torch.get_num_threads()
    model = _load(run_dir, meta)
    device = resolve_device(cfg.device)
    out: list[list[tuple]] = []
    try:
        starts = range(0, len(paths), chunk)
        for start in track(starts, f"predict {spec.name}", total=len(starts)):
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
                      iou=NMS_IOU, device=resolve_device(device or cfg["device"]), plots=False, verbose=False,
                      project=str(Path(run_dir).resolve()), name=f"val_{split}", exist_ok=True)
    finally:
        restore_torch_threads(threads)
    return {"map50": float(m.box.map50), "map50_95": float(m.box.map)}
