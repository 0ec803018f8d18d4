"""One interface for every detector: train into a run folder, predict into COCO results.

    from midg.detectors.base import train, predict
    run = train("yolov8n", [Path("data/real"), Path("data/synth")], Path("runs/yolov8n-real+midg"), cfg)
    predict(run, Path("data/real"), "test", Path("runs/yolov8n-real+midg/preds_test.json"))

A run folder describes itself:
```
RUN_DIR/
  meta.json      detector, config, data dirs, steps done, batch, images seen, seed, device,
                 versions, seconds, weights file, status (running | finished)
  config.json    the resolved DetectorConfig, written before training starts
  weights/...    the final weights (ultralytics: train/weights/last.pt; torchvision: weights/model.safetensors)
```
Backends (detectors/yolo.py, detectors/faster_rcnn.py; their shared helpers in detectors/common.py) each give `train_run(...)` and
`predict_images(...)`; this module owns the registry, the run folder, seeds, the meta
and the mapping of predictions to the dataset's COCO image ids (by file name).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Any

from midg.datasets.atomic import atomic_write_json, dumps_json
from midg.datasets.errors import ConfigError, DatasetError
from midg.datasets.layout import load_dataset
from midg.datasets.locking import OutputLock

from .common import (RUN_KIND, DetectorSpec, TrainingError, console, device_name, read_run_meta,  # noqa: F401
                     first_device, resolve_device, resolve_train_device, seed_everything, to_coco_results,
                     torch_device, train_threads, versions)
from . import distributed
from .common import PlateauRule, ValTracker
from .view import load_datasets
from .config import DetectorConfig, check_detector_name, config_from_dict, config_to_dict

def _registry() -> dict[str, DetectorSpec]:
    specs = {}
    for size in "nsmlx":
        specs[f"yolov8{size}"] = DetectorSpec(f"yolov8{size}", "ultralytics", f"yolov8{size}.yaml",
                                              f"YOLOv8{size} from its model yaml, from scratch")
        specs[f"yolov5{size}u"] = DetectorSpec(f"yolov5{size}u", "ultralytics", f"yolov5{size}u.yaml",
                                               f"YOLOv5{size}u: v5 backbone and neck, anchor-free v8 head")
    specs["faster_rcnn"] = DetectorSpec("faster_rcnn", "torchvision", "fasterrcnn_resnet50_fpn",
                                        "Faster R-CNN ResNet-50 FPN, from scratch")
    specs["faster_rcnn_mobilenet"] = DetectorSpec("faster_rcnn_mobilenet", "torchvision",
                                                  "fasterrcnn_mobilenet_v3_large_fpn",
                                                  "Faster R-CNN MobileNetV3-Large FPN, from scratch (quick profiles)")
    specs["faster_rcnn_r18"] = DetectorSpec("faster_rcnn_r18", "torchvision", "resnet18_fpn",
                                            "Faster R-CNN ResNet-18 FPN (strides 4-32, 128 channels), from scratch "
                                            "(small images on CPU)")
    return specs


DETECTORS: dict[str, DetectorSpec] = _registry()


def get_spec(name: str) -> DetectorSpec:
    check_detector_name(name)
    return DETECTORS[name]


def _backend(family: str):
    if family == "ultralytics":
        from . import yolo as backend
    else:
        from . import faster_rcnn as backend
    return backend


def _prepare_run_dir(out: Path) -> None:
    """A fresh run replaces an earlier run of ours; anything else in the way is an error."""
    if out.exists() and not out.is_dir():
        raise DatasetError(out, "exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        try:
            read_run_meta(out)
        except DatasetError:
            raise DatasetError(out, "folder is not empty and is not a detector run; refusing to overwrite it") from None
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


# Fields that change what a run computes: a resume with other values would mix two runs.
_RESUME_FIXED = ("steps", "batch", "imgsz", "seed", "optimizer", "lr", "momentum", "weight_decay", "warmup_steps",
                 "anchor_scale", "clip_grad_norm", "roi_batch", "ultralytics_args", "real_fraction", "epoch_steps",
                 "close_mosaic_steps", "budget", "val_every", "patience", "min_delta", "min_steps")


def _check_resume(meta: dict[str, Any], detector: str, data_dirs: list[Path], cfg: DetectorConfig) -> DetectorConfig:
    """The run's own config, with the device of this call; differences that matter are errors."""
    saved = config_from_dict(meta["config"], f"{meta.get('run_dir', 'run')}/meta.json config")
    if meta["detector"] != detector:
        raise ConfigError(f"--resume: the run trains {meta['detector']}, not {detector}")
    if [str(Path(d).resolve()) for d in data_dirs] != meta["data_dirs"]:
        raise ConfigError(f"--resume: the run's data folders are {meta['data_dirs']}, not {[str(d) for d in data_dirs]}")
    diff = [k for k in _RESUME_FIXED if getattr(saved, k) != getattr(cfg, k)]
    if diff:
        raise ConfigError(f"--resume continues the same run, but {', '.join(f'{k} ({getattr(saved, k)} -> {getattr(cfg, k)})' for k in diff)} "
                          "differ; train into a new folder instead")
    return dataclasses.replace(saved, device=cfg.device, workers=cfg.workers)


# ---------------------------------------------------------------- the interface


def train(detector_name: str, data_dirs: list[Path], out: Path, cfg: DetectorConfig, *,
          weights: Path | None = None, resume: bool = False) -> Path:
    """Train `detector_name` on the train splits of `data_dirs` (val: the first one's) into `out`.

    The budget is `cfg.steps` optimiser steps of `cfg.batch` images. `weights` is a local
    weights file to start from (ultralytics .pt, or a torchvision state_dict);
    `resume` continues an interrupted run in `out` from its last checkpoint.
    Returns the run folder (with meta.json and weights).
    """
    out = Path(out).resolve()
    rank = distributed.current()
    if rank is None:
        with OutputLock(out, what="detector run folder"):  # a second training into `out` is refused at once
            return _train(detector_name, data_dirs, out, cfg, weights=weights, resume=resume)
    # started by torchrun (`midg detector train --nproc N`): one rank of a DDP model
    distributed.check_world(cfg.batch, rank.world, get_spec(detector_name).family)
    device = distributed.init(rank, cfg.device)
    threads = cfg.threads or (max(1, (os.cpu_count() or 1) // rank.world) if device == "cpu" else 0)
    cfg = dataclasses.replace(cfg, device=device, threads=threads)  # CPU ranks share the cores
    try:
        if rank.main:  # rank 0 owns the run folder
            with OutputLock(out, what="detector run folder"):
                return _train(detector_name, data_dirs, out, cfg, weights=weights, resume=resume, rank=rank)
        return _train(detector_name, data_dirs, out, cfg, weights=weights, resume=resume, rank=rank)
    finally:
        distributed.close()


def _train(detector_name: str, data_dirs: list[Path], out: Path, cfg: DetectorConfig, *,
           weights: Path | None, resume: bool, rank: distributed.Rank | None = None) -> Path:
    spec = get_spec(detector_name)
    if rank is not None and not rank.main:  # rank 0 prepared the run folder: take its decisions
        meta, resuming, saved = distributed.share(None)
        if meta.get("status") == "finished":
            return out
        return _train_steps(spec, out, dataclasses.replace(saved, device=cfg.device, threads=cfg.threads), meta,
                            weights, resuming, rank)
    data_dirs = [Path(d) for d in data_dirs]
    if weights is not None:
        weights = Path(weights).resolve()
        if not weights.is_file():
            raise DatasetError(weights, "weights file does not exist (weights are never downloaded)")
    resolve_train_device(cfg.device, spec.family)  # fail before any work

    meta_path = out / "meta.json"
    if resume and meta_path.is_file():
        meta = read_run_meta(out)
        cfg = _check_resume(meta, detector_name, data_dirs, cfg)
        if meta.get("status") == "finished":
            console.print(f"[green]{out}[/]: already finished ({meta['steps_done']} steps); nothing to resume")
            if rank is not None:
                distributed.share((meta, True, cfg))
            return out
        resuming = True
    else:
        if resume:
            console.print(f"[yellow]{out}: no run to resume; starting a new one[/]")
        _prepare_run_dir(out)
        resuming = False
        meta = {
            "kind": RUN_KIND,
            "status": "running",
            "detector": spec.name,
            "family": spec.family,
            "arch": spec.arch,
            "data_dirs": [str(d.resolve()) for d in data_dirs],
            "init_weights": str(weights) if weights else None,
            "config": config_to_dict(cfg),
            "seed": cfg.seed,
            "batch": cfg.batch,
            "steps_budget": cfg.steps,
        }
        atomic_write_json(meta_path, meta)
        atomic_write_json(out / "config.json", config_to_dict(cfg))

    if rank is not None:
        distributed.share((meta, resuming, cfg))
        meta["world_size"] = rank.world
    console.print(f"[bold]detector train[/] {spec.name} ({spec.note}) -> {out}"
                  f"{' (resuming)' if resuming else ''}"
                  f"{f' on {rank.world} processes (DDP)' if rank else ''}\n"
                  + dumps_json(config_to_dict(cfg)).rstrip(), highlight=False)
    return _train_steps(spec, out, cfg, meta, weights, resuming, rank)


def _train_steps(spec: DetectorSpec, out: Path, cfg: DetectorConfig, meta: dict[str, Any], weights: Path | None,
                 resuming: bool, rank: distributed.Rank | None) -> Path:
    meta_path = out / "meta.json"
    main = rank is None or rank.main
    seed_everything(cfg.seed)
    threads = train_threads(cfg.threads)
    t0 = time.time()
    datasets = load_datasets([Path(d) for d in meta["data_dirs"]])
    meta["names"] = list(datasets[0].names)
    meta["train_images"] = sum(len(ds.images("train")) for ds in datasets)
    backend = _backend(spec.family)
    tracker = None
    if cfg.budget in ("convergence", "plateau") and main:  # under DDP rank 0 alone scores snapshots
        names = list(datasets[0].names)

        def predict_fn(snapshot: Path, paths: list[Path]):
            snap_meta = {"weights": str(snapshot.relative_to(out)), "names": names}
            return backend.predict_images(spec, out, snap_meta, paths, cfg, progress=False)

        rule = PlateauRule(cfg.patience, cfg.min_delta, cfg.min_steps) if cfg.budget == "plateau" else None
        tracker = ValTracker(out, datasets[0], predict_fn, start_step=10**12 if resuming else 0,  # resumed: rows are redone as steps repeat
                             plateau=rule)
    result = backend.train_run(spec, datasets, out, cfg, weights=weights, resume=resuming, val=tracker)
    if not main:
        return out
    result.update({"threads": threads, "budget": cfg.budget, "real_fraction": cfg.real_fraction, "imgsz": cfg.imgsz, "steps": cfg.steps})
    if tracker is not None:
        result.update(tracker.summary())
        if tracker.best is None:
            raise TrainingError(f"{out}: budget {cfg.budget}, but no val evaluation ran (val_every {cfg.val_every} > steps {cfg.steps}?)")
        result["last_weights"] = result["weights"]
        result["weights"] = result["best_weights"]
    else:
        result["best_step"] = None
    meta.update(result)
    meta.update({
        "status": "finished",
        "seconds": round(time.time() - t0 + (meta.get("seconds", 0.0) if resuming else 0.0), 2),
        "device": device_name(cfg.device),
        "versions": versions(),
    })
    atomic_write_json(meta_path, meta)
    console.print(f"[green]trained[/] {spec.name}: {meta['steps_done']} steps x {meta['batch']} images "
                  f"in {meta['seconds']:.1f} s -> {out / meta['weights']}", highlight=False)
    return out


def predict(run_dir: Path, dataset_dir: Path, split: str, out_json: Path, *,
            conf: float | None = None, device: str | None = None) -> Path:
    """Run a finished detector on `split` of a dataset; write COCO results (a JSON list).

    image_id and category_id are those of DATASET/annotations/{split}.json: images are
    matched by file name, category_id = class + 1, bbox = [x, y, w, h] in pixels.
    """
    run_dir = Path(run_dir).resolve()
    meta = read_run_meta(run_dir)
    if meta.get("status") != "finished":
        raise DatasetError(run_dir / "meta.json", "the run has not finished training (resume it with --resume)")
    ds = load_dataset(dataset_dir)
    if ds.names != meta["names"]:
        raise DatasetError(Path(dataset_dir) / "data.yaml", f"classes {ds.names} differ from the run's {meta['names']}")
    entries = ds.images(split)
    if not entries:
        raise DatasetError(Path(dataset_dir) / "images" / split, f"no images in split {split!r}")
    cfg = config_from_dict(meta["config"])
    cfg = dataclasses.replace(cfg, conf=cfg.conf if conf is None else conf, device=first_device(device or cfg.device))
    resolve_device(cfg.device)
    spec = get_spec(meta["detector"])
    paths = [ds.path(e.file) for e in entries]
    detections = _backend(spec.family).predict_images(spec, run_dir, meta, paths, cfg)
    results = to_coco_results(entries, detections)
    atomic_write_json(out_json, results)
    console.print(f"[green]predicted[/] {len(results)} boxes on {len(entries)} {split} images -> {out_json}", highlight=False)
    return Path(out_json)
