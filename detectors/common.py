"""What the detector backends share, apart from the dispatcher (base.py) that picks them.

yolo.py and faster_rcnn.py import only this module (and config, view), never base.py:
base.py imports the backends, so a backend importing its dispatcher would be a cycle.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import random
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from rich.console import Console

from midg.datasets.errors import ConfigError, DatasetError, MidgError

RUN_KIND = "midg-detector-run"
console = Console(stderr=True)


class TrainingError(MidgError):
    """Training cannot go on (a non-finite loss, a run folder that cannot be resumed)."""


@dataclass(frozen=True)
class DetectorSpec:
    name: str
    family: Literal["ultralytics", "torchvision"]
    arch: str  # ultralytics model yaml, or torchvision builder name
    note: str



def seed_everything(seed: int) -> None:
    """python, numpy and torch (CPU and every CUDA device) from one seed."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def resolve_device(device: str) -> str:
    """'cpu' or a CUDA index as a string ('0'); 'cuda' means '0'. Fails clearly without CUDA."""
    d = str(device).strip().lower()
    if d == "cpu":
        return "cpu"
    if d == "cuda":
        d = "0"
    if d.startswith("cuda:"):
        d = d[5:]
    if not d.isdigit():
        raise ConfigError(f"device {device!r} is not one of cpu, cuda, cuda:N or N")
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asks for CUDA, but torch sees no CUDA device here; use --device cpu")
    if int(d) >= torch.cuda.device_count():
        raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return d


def cuda_devices(device: str) -> int:
    """How many CUDA devices a detector `device` string names: cpu 0, cuda/0/cuda:1 one, 0,1 two
    (what a scheduler reserves for the run; resolve_train_device checks them)."""
    d = str(device).strip().lower()
    if d == "cpu":
        return 0
    return len([p for p in d.split(",") if p.strip()])


def resolve_train_device(device: str, family: str) -> str:
    """resolve_device's forms, or for YOLO several CUDA indices ('0,1'): ultralytics' own DDP
    trains one model on them. Faster R-CNN's several-GPU path is `--nproc N` (torchrun)."""
    parts = [p.strip().lower().removeprefix("cuda:") for p in str(device).split(",")]
    if len(parts) == 1:
        return resolve_device(device)
    if family != "ultralytics":
        raise ConfigError(f"device {device!r}: Faster R-CNN runs one process per GPU; train with "
                          f"`midg detector train ... --device cuda --nproc {len(parts)}` (torchrun) instead")
    if not all(p.isdigit() for p in parts) or len(set(parts)) != len(parts):
        raise ConfigError(f"device {device!r}: a device list names distinct CUDA indices, as 0,1")
    return ",".join(resolve_device(p) for p in parts)


def first_device(device: str) -> str:
    """The device a single-process step (predict, val) uses when training named several."""
    return str(device).split(",")[0].strip()


def torch_device(device: str):
    import torch

    d = resolve_device(device)
    return torch.device("cpu") if d == "cpu" else torch.device(f"cuda:{d}")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("midg", "torch", "torchvision", "ultralytics", "pycocotools", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            try:  # ultralytics as installed here: its headless build, another distribution name
                out[pkg] = version(f"{pkg}-opencv-headless")
            except PackageNotFoundError:
                out[pkg] = "not installed"
    return out


def device_name(device: str) -> str:
    import torch

    if "," in str(device):  # YOLO's DDP over several GPUs
        return ", ".join(device_name(d) for d in str(device).split(","))
    d = resolve_device(device)
    if d == "cpu":
        return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"
    return f"cuda:{d} ({torch.cuda.get_device_name(int(d))})"


def read_run_meta(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "meta.json"
    if not path.is_file():
        raise DatasetError(path, "missing: not a detector run folder (train one with `midg detector train`)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("kind") != RUN_KIND:
        raise DatasetError(path, f"not a detector run (kind is not {RUN_KIND!r})")
    return meta


def to_coco_results(entries, detections) -> list[dict[str, Any]]:
    """Per-image detections (cls, x1, y1, x2, y2, score) -> COCO results for those entries' image ids."""
    results = []
    for entry, dets in zip(entries, detections):
        for cls, x1, y1, x2, y2, score in dets:
            results.append({
                "image_id": entry.image_id,
                "category_id": int(cls) + 1,
                "bbox": [round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2), round(float(y2 - y1), 2)],
                "score": round(float(score), 5),
            })
    return results


@dataclass(frozen=True)
class PlateauRule:
    """budget: plateau. Stop once `patience` val evaluations in a row have not raised val mAP50
    above the best so far by `min_delta` points (an evaluation that does raise it becomes the new
    reference), and never before `min_steps` (Keras' EarlyStopping rule, in steps)."""
    patience: int = 3
    min_delta: float = 0.5  # mAP50 points, 0-100
    min_steps: int = 0

    def stale_evaluations(self, curve: Sequence[float]) -> int:
        """How many evaluations, counted back from the last, have not improved on the reference."""
        reference, stale = float("-inf"), 0
        for value in curve:
            if value * 100 > reference + self.min_delta:
                reference, stale = value * 100, 0
            else:
                stale += 1
        return stale

    def reached(self, steps: Sequence[int], curve: Sequence[float]) -> bool:
        """Whether training should stop after the last of these evaluations (val mAP50 in 0..1)."""
        return bool(steps) and steps[-1] >= self.min_steps and self.stale_evaluations(curve) >= self.patience


class ValTracker:
    """budget: convergence (and plateau, which also says when to stop: `should_stop`). Every `val_every` steps a backend writes a weights snapshot and
    calls this: it predicts the real val split with the backend's own predict, scores it
    with our COCO evaluator (detectors/evaluate.py, never ultralytics' mAP), appends a row to
    RUN_DIR/val_curve.csv and keeps the snapshot as `best` when its mAP50 is the highest so
    far (the earlier step wins a tie). A resumed run keeps the rows up to its start step.
    """

    HEADER = ("step", "val_map50", "val_map50_95")

    def __init__(self, run_dir: Path, dataset, predict_fn, start_step: int = 0, plateau: PlateauRule | None = None):
        self.run_dir, self.dataset, self.predict_fn, self.plateau = Path(run_dir), dataset, predict_fn, plateau
        self.stopped_at: int | None = None  # plateau: the step training stopped at, before its last step
        self.entries = dataset.images("val")
        if not self.entries:
            raise DatasetError(dataset.root / "images" / "val", "budget: convergence needs a val split in the real "
                               "(first) dataset, and it has no images")
        self.path = self.run_dir / "val_curve.csv"
        self.rows: list[dict[str, Any]] = []
        if start_step:
            self.reload(up_to=start_step)
        self._write()

    def reload(self, up_to: int | None = None) -> None:
        """The rows in val_curve.csv (another process, a DDP worker, may have scored them)."""
        import csv

        if not self.path.is_file():
            self.rows = []
            return
        with self.path.open(newline="", encoding="utf-8") as fh:
            self.rows = [{"step": int(r["step"]), "val_map50": float(r["val_map50"]),
                          "val_map50_95": float(r["val_map50_95"])} for r in csv.DictReader(fh)
                         if up_to is None or int(r["step"]) <= up_to]

    @property
    def best(self) -> dict[str, Any] | None:
        return max(self.rows, key=lambda r: (r["val_map50"], -r["step"])) if self.rows else None

    def _write(self) -> None:
        import csv

        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, self.HEADER)
            w.writeheader()
            w.writerows(self.rows)
        tmp.replace(self.path)

    def __call__(self, step: int, snapshot: Path, best_path: Path) -> bool:
        """Score `snapshot` at `step`; copy it to `best_path` when it is the best so far. True if it was."""
        import shutil

        from .evaluate import evaluate_coco

        detections = self.predict_fn(Path(snapshot), [self.dataset.path(e.file) for e in self.entries])
        m = evaluate_coco(self.dataset.root / "annotations" / "val.json", to_coco_results(self.entries, detections))
        row = {"step": int(step), "val_map50": round(float(m["map50"] or 0.0), 5),
               "val_map50_95": round(float(m["map50_95"] or 0.0), 5)}
        self.rows = [r for r in self.rows if r["step"] != step] + [row]
        self._write()
        is_best = self.best is row
        if is_best:
            Path(best_path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(snapshot, best_path)
        console.print(f"val @ step {step}: mAP50 {row['val_map50']:.4f}, mAP50-95 {row['val_map50_95']:.4f}"
                      f"{' (best)' if is_best else ''}", highlight=False)
        return is_best

    def should_stop(self, step: int) -> bool:
        """plateau: whether the evaluations so far (up to `step`) say to stop now; records the step."""
        if self.plateau is None:
            return False
        rows = sorted((r for r in self.rows if r["step"] <= step), key=lambda r: r["step"])
        if self.plateau.reached([r["step"] for r in rows], [r["val_map50"] for r in rows]):
            self.stopped_at = step
            console.print(f"val mAP50 on a plateau: no gain of {self.plateau.min_delta} points in "
                          f"{self.plateau.patience} evaluations; stopping at step {step}", highlight=False)
            return True
        return False

    def summary(self) -> dict[str, Any]:
        best = self.best
        rule = dataclasses.asdict(self.plateau) if self.plateau is not None else None
        return {"val_curve": self.rows, "best_step": best["step"] if best else None,
                "plateau_rule": rule, "stopped_at": self.stopped_at,
                "best_val_map50": best["val_map50"] if best else None,
                "best_val_map50_95": best["val_map50_95"] if best else None}


def train_threads(cfg_threads: int) -> int:
    """Torch CPU threads for a run: `threads`, or every core when 0. ultralytics' import sets
    OMP_NUM_THREADS=1 and its select_device calls torch.set_num_threads(its NUM_THREADS)
    for CPU training, so the count is set explicitly (again at the trainer's start)."""
    import os

    import torch

    n = cfg_threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n
