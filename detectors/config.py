"""DetectorConfig: the one set of defaults for detector training and prediction.

Filled from the `detector:` section of a params.yaml profile, then from CLI flags:

    cfg = load_detector_config("params.yaml", "demo", "yolov8n", steps=50)

`per_detector` in that section overrides fields for one detector (e.g. a smaller batch
for Faster R-CNN; a value replaces the section's, so a per-detector `ultralytics_args`
replaces the whole mapping); unknown keys, detectors or choices are ConfigErrors that
list the valid ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from midg.datasets.errors import ConfigError
from midg.datasets.params import as_dict, fill, find_params, load_params, profile_section

DETECTOR_NAMES = ("yolov8n", "yolov8s", "yolov8m", "yolov8l", "yolov8x",
                  "yolov5nu", "yolov5su", "yolov5mu", "yolov5lu", "yolov5xu",
                  "faster_rcnn", "faster_rcnn_r18", "faster_rcnn_mobilenet")


@dataclass(frozen=True)
class DetectorConfig:
    # --- the compute budget: every condition of a comparison gets the same one
    steps: int = 200  # optimiser steps; images seen = steps * batch (ultralytics: nbs = batch, no accumulation)
    batch: int = 8  # images per optimiser step
    imgsz: int = 256  # px: YOLO letterbox side; Faster R-CNN longest side (min_size = max_size = imgsz)
    seed: int = 0  # python, numpy, torch; the data order and flips of Faster R-CNN derive from it
    budget: Literal["steps", "convergence", "plateau"] = "steps"  # steps: the weights after `steps`; convergence:
    # the best-on-val weights of those `steps` (real val split, our COCO mAP50 every `val_every` steps); plateau:
    # as convergence, but training stops once val mAP50 has not risen by `min_delta` for `patience` evaluations
    # (never before `min_steps`; `steps` is the most it may take). The schedule (lr decay, mosaic) is laid out
    # over `steps` either way, so every arm of a comparison follows the same curve until it stops.
    val_every: int = 100  # steps between val evaluations (budget: convergence, plateau)
    patience: int = 3  # plateau: evaluations without an improvement of min_delta before stopping
    min_delta: float = 0.5  # plateau: mAP50 points (0-100) an evaluation must add to the best so far to count
    min_steps: int = 0  # plateau: never stop before this many steps
    # --- mixing (detectors/mixing.py): the first --data folder is real, the others synthetic
    real_fraction: float | None = 0.5  # share of real images in every batch, whatever the synthetic set's size;
    # None pools all images (batches follow dataset sizes); one --data folder trains on it alone either way
    # --- the schedule, in steps, the same for every condition (see detectors/yolo.py)
    epoch_steps: int = 50  # steps in one ultralytics "epoch" (its lr, warmup and mosaic machinery count epochs)
    close_mosaic_steps: int = 0  # ultralytics: mosaic/mixup off for the last this many steps (0: on to the end)
    threads: int = 0  # torch CPU threads for training and prediction; 0 = every core (ultralytics would pin 1)
    # --- where and how
    device: str = "cpu"  # cpu | cuda | 0 | cuda:1; YOLO also 0,1,... (one model on several GPUs, ultralytics DDP)
    amp: bool = True  # mixed precision on CUDA (ultralytics amp, torch.autocast + GradScaler); off on CPU
    workers: int = 0  # DataLoader worker processes; 0 loads in the main process (2-core machines)
    cache: bool = True  # ultralytics: keep decoded images in RAM (small datasets; faster on CPU)
    plots: bool = False  # ultralytics' plots of batches and curves (slow on CPU; work offline)
    # --- prediction
    conf: float = 0.001  # score threshold: COCO mAP needs the low-confidence tail too
    max_det: int = 100  # boxes kept per image (COCOeval reads at most 100)
    # --- ultralytics: any other train argument (optimizer, lr0, scale, mosaic, ...) except the
    # ones this config already sets (data, epochs, batch, nbs, imgsz, device, seed, project, ...)
    ultralytics_args: dict[str, Any] = field(default_factory=dict)
    # --- Faster R-CNN (torchvision); ultralytics picks its own optimiser unless ultralytics_args says
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.01  # peak learning rate after warmup, cosine decay to 0 over `steps`
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 1e-4
    warmup_steps: int = 50  # linear warmup from lr/1000 (torchvision references: warmup_factor 0.001)
    anchor_scale: float = 1.0  # multiplies torchvision's anchor sizes (32..512 px); 0.25 -> 8..128 px for small defects
    roi_batch: int = 512  # RoIs sampled per image for the box head (torchvision: 512); its cost dominates on CPU
    proposals: int = 1000  # RPN proposals kept per image at predict (torchvision: 1000); the box head runs on each
    clip_grad_norm: float = 10.0  # from-scratch training spikes early; 0 turns clipping off
    checkpoint_every: int = 50  # steps between resumable checkpoints (safetensors + json)
    log_every: int = 10  # steps between rows of results.csv
    # --- overrides for one detector, e.g. {faster_rcnn_mobilenet: {batch: 4}}
    per_detector: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1, "steps must be >= 1"),
            (self.batch >= 1, "batch must be >= 1"),
            (32 <= self.imgsz <= 4096 and self.imgsz % 32 == 0, "imgsz must be a multiple of 32 in 32..4096"),
            (0.0 <= self.conf < 1.0, "conf must be in [0, 1)"),
            (self.max_det >= 1, "max_det must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (0.05 <= self.anchor_scale <= 20, "anchor_scale must be in 0.05..20"),
            (self.roi_batch >= 1 and self.proposals >= 1, "roi_batch and proposals must be >= 1"),
            (self.warmup_steps >= 0 and self.checkpoint_every >= 1 and self.log_every >= 1,
             "warmup_steps >= 0, checkpoint_every >= 1 and log_every >= 1"),
            (self.workers >= 0, "workers must be >= 0"),
            (self.real_fraction is None or 0.0 <= self.real_fraction <= 1.0, "real_fraction must be in 0..1 or null"),
            (self.val_every >= 1 and self.epoch_steps >= 1, "val_every and epoch_steps must be >= 1"),
            (self.patience >= 1 and self.min_delta >= 0 and 0 <= self.min_steps <= self.steps,
             "patience must be >= 1, min_delta >= 0 and min_steps in 0..steps"),
            (self.close_mosaic_steps >= 0 and self.threads >= 0, "close_mosaic_steps and threads must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"detector config: {msg}")
        for name, over in self.per_detector.items():
            check_detector_name(name)
            if not isinstance(over, dict):
                raise ConfigError(f"detector.per_detector.{name} must be a mapping of config keys")
            bad = sorted(set(over) - set(_OVERRIDABLE))
            if bad:
                raise ConfigError(f"detector.per_detector.{name}: unknown key(s) {bad}; valid: {sorted(_OVERRIDABLE)}")

    def for_detector(self, name: str) -> "DetectorConfig":
        """This config with `per_detector[name]` applied (and the override map dropped)."""
        check_detector_name(name)
        values = {**as_dict(self), "per_detector": {}, **self.per_detector.get(name, {})}
        return fill(DetectorConfig, values, f"detector.per_detector.{name}")  # type-checks the overrides


def check_detector_name(name: str) -> str:
    if name not in DETECTOR_NAMES:
        raise ConfigError(f"unknown detector {name!r}; valid: {', '.join(DETECTOR_NAMES)}")
    return name


_OVERRIDABLE = tuple(f.name for f in dataclasses.fields(DetectorConfig) if f.name != "per_detector")


def config_to_dict(cfg: DetectorConfig) -> dict[str, Any]:
    return as_dict(cfg)


def config_from_dict(values: dict[str, Any], where: str = "detector config") -> DetectorConfig:
    return fill(DetectorConfig, values, where)


def load_detector_config(params_path: str | Path | None = None, profile: str | None = None,
                         detector: str | None = None, **overrides: Any) -> DetectorConfig:
    """The `detector` section of `profile`, for `detector`, with CLI `overrides` (None = not given)."""
    params_path = find_params(params_path)
    params = load_params(params_path)
    section = profile_section(params, profile, "detector")
    cfg = config_from_dict(section, f"{params_path}: profiles.{profile or params.get('profile')}.detector")
    if detector is not None:
        cfg = cfg.for_detector(detector)
    given = {k: v for k, v in overrides.items() if v is not None}
    bad = sorted(set(given) - set(_OVERRIDABLE))
    if bad:
        raise ConfigError(f"unknown detector option(s) {bad}; valid: {sorted(_OVERRIDABLE)}")
    return dataclasses.replace(cfg, **given) if given else cfg
