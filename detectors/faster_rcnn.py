"""Faster R-CNN (ResNet-50 FPN, ResNet-18 FPN, MobileNetV3-Large FPN) through torchvision, from scratch.

    midg detector train --detector faster_rcnn_r18 --data data/real --out runs/frcnn --profile demo
    midg detector train ... --resume          # continue from RUN_DIR/checkpoints/last.safetensors

A flat loop in the manner of torchvision's `references/detection/engine.py`: one function
a job (`build_model`, `make_loader`, `train_one_step`, `save_checkpoint`, ...), a
non-finite loss stops the run and names the losses. Labels: torchvision's 0 is the
background, so YOLO class c is label c + 1 (`LABEL_OFFSET`), and back at predict.

Data order and flips are a pure function of (seed, position in the image stream): step s
reads stream positions s*B .. s*B+B-1, where epoch e visits the images in a permutation
seeded by (seed, e). A resumed run therefore sees exactly the images the uninterrupted
run would have, whatever the number of DataLoader workers; the global torch RNG (RPN and
RoI sampling) is saved in every checkpoint. On CUDA some kernels are nondeterministic.

Checkpoints are safetensors (model, optimiser tensors, RNG states) with the rest (step,
optimiser groups, scheduler, GradScaler, config) as JSON in the file's metadata, plus a
readable `last.json` copy: nothing here is pickled.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from midg.datasets.atomic import atomic_write_json
from midg.datasets.errors import DatasetError
from midg.datasets.images import read_image
from midg.datasets.layout import Dataset
from midg.datasets.progress import track

from . import distributed
from .common import DetectorSpec, TrainingError, console, torch_device
from .config import DetectorConfig, config_to_dict
from .mixing import MixPlan

LABEL_OFFSET = 1  # torchvision label = YOLO class + 1 (0 is the background)
WEIGHTS = "weights/model.safetensors"  # relative to the run folder
CHECKPOINT = "checkpoints/last.safetensors"
VAL_SNAPSHOT = "weights/val_snapshot.safetensors"  # budget convergence: the weights being scored on val
BEST_WEIGHTS = "weights/best_val.safetensors"  # ... and the best of them
LOSS_KEYS = ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg")


# ---------------------------------------------------------------- model


def build_model(spec: DetectorSpec, num_classes: int, cfg: DetectorConfig, conf: float = 0.05, max_det: int = 100):
    """torchvision's builder with no download: weights=None, weights_backbone=None.

    min_size = max_size = imgsz: the longest side is resized to imgsz (torchvision's 800 px
    default would cost 10x at the demo's 256 px). `anchor_scale` multiplies the anchor
    sizes (32..512 px, made for 800 px COCO images): 0.25 gives 8..128 px for the demo's
    small defects. Only the sizes change, so the RPN head keeps its shape. `roi_batch` and
    `proposals` bound the box head's work, which dominates a CPU step, not the image size.
    """
    from torchvision.models import detection
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    common = dict(num_classes=num_classes + LABEL_OFFSET, min_size=cfg.imgsz, max_size=cfg.imgsz,
                  box_score_thresh=conf, box_detections_per_img=max_det, box_batch_size_per_image=cfg.roi_batch,
                  rpn_pre_nms_top_n_test=cfg.proposals, rpn_post_nms_top_n_test=cfg.proposals)
    if spec.arch == RESNET18_FPN:
        model = build_resnet18_fpn(**common)
    else:
        model = getattr(detection, spec.arch)(weights=None, weights_backbone=None, **common)
    if cfg.anchor_scale != 1.0:
        old = model.rpn.anchor_generator
        sizes = tuple(tuple(max(1, round(s * cfg.anchor_scale)) for s in level) for level in old.sizes)
        model.rpn.anchor_generator = AnchorGenerator(sizes, old.aspect_ratios)
    return model


# The small-image variant (`faster_rcnn_r18`). torchvision's MobileNetV3 FPN returns only its
# stride-32 maps (its default layers assume 800 px inputs): at the demo's 256 px a 17 px defect
# is half a cell and the model never localised one (mAP50 0.0 after 300 steps, 2026-12-02).
# ResNet-18 with an FPN on strides 4, 8, 16 (+ max-pool, 32) learns in the same budget (0.21).
# 128 FPN channels instead of 256 halve a CPU step (0.93 against 2.0 s at batch 4, one thread).
RESNET18_FPN = "resnet18_fpn"
R18_LAYERS = {"layer1": 64, "layer2": 128, "layer3": 256}  # returned layers and their channels
R18_FPN_CHANNELS = 128
R18_ANCHORS = (32, 64, 128, 256)  # px per level (strides 4..32), as torchvision's R50 FPN's first four


def build_resnet18_fpn(num_classes: int, **kwargs) -> torch.nn.Module:
    """Faster R-CNN on a ResNet-18 FPN built from torchvision's parts, from scratch (BatchNorm
    trains: torchvision freezes it only under pretrained weights)."""
    from torchvision.models import resnet18
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    levels = [str(i) for i in range(len(R18_LAYERS))]
    backbone = BackboneWithFPN(resnet18(weights=None), dict(zip(R18_LAYERS, levels)), list(R18_LAYERS.values()),
                               R18_FPN_CHANNELS, extra_blocks=LastLevelMaxPool())
    anchors = AnchorGenerator(tuple((s,) for s in R18_ANCHORS), ((0.5, 1.0, 2.0),) * len(R18_ANCHORS))
    return FasterRCNN(backbone, num_classes, rpn_anchor_generator=anchors,
                      box_roi_pool=MultiScaleRoIAlign(levels, output_size=7, sampling_ratio=2), **kwargs)


def load_matching(model: torch.nn.Module, path: Path) -> tuple[int, int]:
    """Load a user's local state_dict (torch.load(weights_only=True), or .safetensors):
    tensors whose name and shape match; others (e.g. a head for other classes) are skipped."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle beyond tensors, or not a torch file
            raise DatasetError(path, f"not a plain state_dict torch can load with weights_only=True ({exc})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # torchvision references' checkpoints: {"model": ..., "optimizer": ...}
    if not isinstance(state, dict):
        raise DatasetError(path, "expected a state_dict (a mapping of names to tensors)")
    own = model.state_dict()
    keep = {k: v for k, v in state.items() if k in own and torch.is_tensor(v) and v.shape == own[k].shape}
    if not keep:
        raise DatasetError(path, f"no tensor matches {type(model).__name__}'s names and shapes")
    model.load_state_dict(keep, strict=False)
    return len(keep), len(own) - len(keep)


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Sample:
    path: Path
    boxes: np.ndarray  # N x 4 float32, x1 y1 x2 y2 in pixels
    labels: np.ndarray  # N int64, torchvision labels (class + 1)


def collect_samples(datasets: list[Dataset], split: str = "train") -> list[Sample]:
    samples = []
    for ds in datasets:
        for e in ds.images(split):
            boxes = np.array([b.xyxy() for b in e.boxes], dtype=np.float32).reshape(-1, 4)
            labels = np.array([b.cls + LABEL_OFFSET for b in e.boxes], dtype=np.int64)
            samples.append(Sample(ds.path(e.file), boxes, labels))
    return samples


def load_tensor(path: Path) -> torch.Tensor:
    """3 x H x W float in [0, 1]; grayscale repeated to 3 channels (the backbones want RGB)."""
    arr = read_image(path)
    t = torch.from_numpy(np.array(arr, dtype=np.float32)).div_(255.0)  # a copy: read_image may return read-only memory
    return t.unsqueeze(0).expand(3, -1, -1).contiguous() if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


class ImageStream(torch.utils.data.Dataset):
    """Item k of the endless, seeded stream of training images: slot k % batch of step
    k // batch of the mixing plan (detectors/mixing.py); flips are seeded by k."""

    def __init__(self, samples: list[Sample], plan: MixPlan, hflip: float = 0.5):
        self.samples, self.plan, self.seed, self.hflip = samples, plan, plan.seed, hflip
        self._step: tuple[int, list[int]] = (-1, [])

    def __len__(self) -> int:  # the stream is endless; the batch sampler says what is read
        return 2**62

    def __getitem__(self, k: int):
        step, slot = divmod(k, self.plan.batch)
        if self._step[0] != step:
            self._step = (step, self.plan.batch_indices(step))
        s = self.samples[self._step[1][slot]]
        image = load_tensor(s.path)
        boxes = torch.from_numpy(s.boxes.copy())
        if np.random.default_rng([self.seed, k, 1]).random() < self.hflip:
            image = image.flip(-1)
            width = image.shape[-1]
            boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
        return image, {"boxes": boxes, "labels": torch.from_numpy(s.labels.copy())}


def collate(batch):
    return tuple(zip(*batch))


def make_plan(datasets: list[Dataset], cfg: DetectorConfig) -> MixPlan:
    """The first dataset's train images are real (indices 0..n-1 of collect_samples), the rest synthetic."""
    n_real = len(datasets[0].images("train"))
    n_all = sum(len(ds.images("train")) for ds in datasets)
    return MixPlan.make(list(range(n_real)), list(range(n_real, n_all)), cfg.batch, cfg.seed, cfg.real_fraction)


def make_loader(samples: list[Sample], cfg: DetectorConfig, start_step: int, plan: MixPlan, rank: int = 0,
                world: int = 1):
    """Batches for steps start_step .. cfg.steps-1 of the seeded stream; under DDP rank r of
    `world` reads slots r, r+world, ... of each step's batch (together: the same images)."""
    b = cfg.batch
    batches = [list(range(s * b + rank, (s + 1) * b, world)) for s in range(start_step, cfg.steps)]
    # Its own generator: a DataLoader otherwise draws its worker seed from the global RNG,
    # which would shift the RPN/RoI sampling of a resumed run against the uninterrupted one.
    return torch.utils.data.DataLoader(ImageStream(samples, plan), batch_sampler=batches,
                                       num_workers=cfg.workers, collate_fn=collate,
                                       worker_init_fn=_worker_init, persistent_workers=False,
                                       generator=torch.Generator().manual_seed(cfg.seed))


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(0)  # no thread pools inside workers on small machines
    torch.set_num_threads(1)


# ---------------------------------------------------------------- optimisation


def make_optimizer(model: torch.nn.Module, cfg: DetectorConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: DetectorConfig) -> float:
    """Linear warmup from 1/1000 (torchvision references), then cosine decay to 0 at `steps`."""
    warm = min(cfg.warmup_steps, max(cfg.steps - 1, 0))
    if step < warm:
        return 0.001 + (1 - 0.001) * step / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(cfg.steps - warm, 1)))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: DetectorConfig):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))


def train_one_step(model, optimizer, scaler, images, targets, device: torch.device, amp: bool,
                   clip_grad_norm: float) -> dict[str, float]:
    images = [im.to(device, non_blocking=True) for im in images]
    targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
    with torch.autocast(device.type, enabled=amp):
        loss_dict = model(images, targets)
        losses = sum(loss_dict.values())
    loss_value = float(losses.item())
    if not math.isfinite(loss_value):
        raise TrainingError(f"loss is {loss_value}, stopping training: "
                            + ", ".join(f"{k}={float(v):.4g}" for k, v in loss_dict.items()))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(losses).backward()
    if clip_grad_norm > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    return {"loss": loss_value, **{k: float(v.item()) for k, v in loss_dict.items()}}


# ---------------------------------------------------------------- checkpoints (safetensors + json)


def _cpu_tensors(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v.detach().cpu().contiguous() for k, v in state.items()}


def save_checkpoint(run_dir: Path, model, optimizer, scheduler, scaler, step: int, cfg: DetectorConfig) -> Path:
    from safetensors.torch import save_file

    tensors = _cpu_tensors("model.", model.state_dict())
    osd = optimizer.state_dict()
    optim_scalars: dict[str, dict[str, Any]] = {}
    for idx, st in osd["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val):
                tensors[f"optim.{idx}.{name}"] = val.detach().cpu().contiguous()
            else:
                optim_scalars.setdefault(str(idx), {})[name] = val
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    state = {
        "step": step,
        "config": config_to_dict(cfg),
        "optimizer": {"param_groups": osd["param_groups"], "scalars": optim_scalars},
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
    }
    path = Path(run_dir) / CHECKPOINT
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(tensors, str(tmp), metadata={"midg": json.dumps(state)})
    os.replace(tmp, path)  # the safetensors file is the checkpoint; last.json is a readable copy
    atomic_write_json(path.with_suffix(".json"), state)
    return path


def load_checkpoint(run_dir: Path, model, optimizer, scheduler, scaler, device: torch.device) -> int:
    """Restore everything save_checkpoint wrote; returns the step to continue from."""
    from safetensors import safe_open

    path = Path(run_dir) / CHECKPOINT
    try:
        with safe_open(str(path), framework="pt") as f:
            state = json.loads(f.metadata()["midg"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise DatasetError(path, f"unreadable checkpoint ({exc})") from None
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optim_state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            optim_state.setdefault(int(idx), {})[name] = v.to(device)
    for idx, scalars in state["optimizer"]["scalars"].items():
        optim_state.setdefault(int(idx), {}).update(scalars)
    optimizer.load_state_dict({"state": optim_state, "param_groups": state["optimizer"]["param_groups"]})
    scheduler.load_state_dict(state["scheduler"])
    if state["scaler"] and scaler.is_enabled():  # a CPU run has none; a CUDA run resumed on CPU drops it
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(tensors["rng.cpu"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    return int(state["step"])


def save_weights(run_dir: Path, model, spec: DetectorSpec, names: list[str], cfg: DetectorConfig, steps: int,
                 rel: str = WEIGHTS) -> Path:
    from safetensors.torch import save_file

    path = Path(run_dir) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"detector": spec.name, "arch": spec.arch, "names": names, "imgsz": cfg.imgsz, "anchor_scale": cfg.anchor_scale,
            "label_offset": LABEL_OFFSET, "steps": steps, "config": config_to_dict(cfg)}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(_cpu_tensors("", model.state_dict()), str(tmp), metadata={"midg": json.dumps(info)})
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------- the run


class _ResultsCsv:
    """results.csv: one row per `log_every` steps; a resume drops rows past its checkpoint."""

    HEADER = ("step", "lr", "loss", *LOSS_KEYS, "s_per_step")

    def __init__(self, path: Path, start_step: int):
        self.path = path
        rows = []
        if start_step and path.is_file():
            with path.open(newline="", encoding="utf-8") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= start_step]
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, self.HEADER)
            w.writeheader()
            w.writerows(rows)

    def add(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="", encoding="utf-8") as fh:
            csv.DictWriter(fh, self.HEADER).writerow({k: row.get(k, "") for k in self.HEADER})


def train_run(spec: DetectorSpec, datasets: list[Dataset], out: Path, cfg: DetectorConfig, *,
              weights: Path | None = None, resume: bool = False, val=None) -> dict[str, Any]:
    device = torch_device(cfg.device)
    amp = cfg.amp and device.type == "cuda"
    names = list(datasets[0].names)
    samples = collect_samples(datasets)
    if not samples:
        raise DatasetError(datasets[0].root, "no training images")
    model = build_model(spec, len(names), cfg)
    if weights is not None:
        loaded, skipped = load_matching(model, weights)
        console.print(f"loaded {loaded} tensors from {weights} ({skipped} left at their initial values)")
    model.to(device).train()
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    start = 0
    if resume and (out / CHECKPOINT).is_file():
        start = load_checkpoint(out, model, optimizer, scheduler, scaler, device)
        console.print(f"resuming from {out / CHECKPOINT} at step {start}")
    rank = distributed.current()  # torchrun (`midg detector train --nproc N`): one DDP rank of several
    main = rank is None or rank.main
    # DDP broadcasts rank 0's weights and averages gradients; every parameter gets one (no unused ones)
    stepper = torch.nn.parallel.DistributedDataParallel(model) if rank else model
    results = _ResultsCsv(out / "results.csv", start) if main else None

    plan = make_plan(datasets, cfg)
    loader = make_loader(samples, cfg, start, plan, *((rank.rank, rank.world) if rank else (0, 1)))
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[losses]}"), TimeElapsedColumn(), TimeRemainingColumn())
    t_start, t_log, logged = time.time(), time.time(), start
    step_seconds, t_step = [], time.perf_counter()
    with Progress(*columns, console=console, transient=False, disable=not main) as progress:
        task = progress.add_task(f"train {spec.name}", total=cfg.steps, completed=start, losses="")
        for step, (images, targets) in enumerate(loader, start=start):
            logs = train_one_step(stepper, optimizer, scaler, images, targets, device, amp, cfg.clip_grad_norm)
            step_seconds.append(time.perf_counter() - t_step)  # loading included, as for ultralytics
            t_step = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            done = step + 1
            progress.update(task, completed=done, losses=f"loss {logs['loss']:.3f}")
            if not main:  # rank 0 alone writes the run folder
                continue
            if done % cfg.log_every == 0 or done == cfg.steps:
                now = time.time()
                results.add({"step": done, "lr": f"{lr:.6g}", "s_per_step": f"{(now - t_log) / (done - logged):.4f}",
                             **{k: f"{v:.5f}" for k, v in logs.items()}})
                t_log, logged = now, done
            stop = False
            if val is not None and (done % cfg.val_every == 0 or done == cfg.steps):
                snapshot = save_weights(out, model, spec, names, cfg, done, VAL_SNAPSHOT)
                val(done, snapshot, out / BEST_WEIGHTS)
                stop = rank is None and val.should_stop(done)  # budget plateau (torchrun runs keep the budget)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps or stop:
                save_checkpoint(out, model, optimizer, scheduler, scaler, done, cfg)
            if stop:
                break
    seconds = time.time() - t_start
    steps_done = val.stopped_at if val is not None and val.stopped_at else cfg.steps
    if main:
        save_weights(out, model, spec, names, cfg, steps_done)
    return {
        "weights": WEIGHTS,
        "steps_done": steps_done,
        "images_seen": steps_done * cfg.batch,
        "resumed_at_step": start if resume else None,
        "s_per_step": round(statistics.median(step_seconds), 4) if step_seconds else None,
        "train_seconds": round(seconds, 2),
        "amp": amp,
        "torch_threads": torch.get_num_threads(),
        "mixing": plan.describe(),
        "best_weights": BEST_WEIGHTS if val is not None else None,
        "ddp": {"world_size": rank.world, "backend": torch.distributed.get_backend(),
                "images_per_rank_step": cfg.batch // rank.world} if rank else None,
    }


def predict_images(spec: DetectorSpec, run_dir: Path, meta: dict[str, Any], paths: list[Path],
                   cfg: DetectorConfig, chunk: int = 8, progress: bool = True) -> list[list[tuple]]:
    """Per image: (cls, x1, y1, x2, y2, score) in the image's pixels."""
    from safetensors.torch import load_file

    device = torch_device(cfg.device)
    path = Path(run_dir) / meta["weights"]
    if not path.is_file():
        raise DatasetError(path, "weights file missing from the run folder")
    model = build_model(spec, len(meta["names"]), cfg, conf=cfg.conf, max_det=cfg.max_det)
    model.load_state_dict(load_file(str(path)))
    model.to(device).eval()
    out: list[list[tuple]] = []
    starts = range(0, len(paths), chunk)
    with torch.inference_mode(), torch.autocast(device.type, enabled=cfg.amp and device.type == "cuda"):
        for start in (track(starts, f"predict {spec.name}", total=len(starts)) if progress else starts):
            images = [load_tensor(p).to(device) for p in paths[start:start + chunk]]
            for det in model(images):
                boxes = det["boxes"].float().cpu().tolist()
                labels = det["labels"].cpu().tolist()
                scores = det["scores"].float().cpu().tolist()
                out.append([(int(lab) - LABEL_OFFSET, *box, s) for lab, box, s in zip(labels, boxes, scores)])
    return out
