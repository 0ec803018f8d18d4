"""`midg detector train|predict` and `midg evaluate` (detectors/, the one COCO evaluator).

    midg detector train --detector yolov8n --data data/real --data data/synth --out runs/y8 --profile demo
    midg detector train --detector faster_rcnn_r18 --data data/real --out runs/fr --profile demo --steps 100
    midg detector train --detector faster_rcnn ... --nproc 4   # one run, 4 processes (GPUs, or gloo on CPU) under torchrun
    midg detector train ... --resume                     # continue an interrupted run in --out
    midg detector train ... --weights my_yolov8n.pt      # start from a local weights file (never downloaded)
    midg detector predict --run runs/y8 --data data/real --split test --out runs/y8/preds_test.json
    midg evaluate --gt data/real --split test --pred runs/y8/preds_test.json --out runs/y8/metrics_test.json

Detectors: yolov8n/s/m/l/x, yolov5nu/su/mu/lu/xu (ultralytics YOLOv5u), faster_rcnn
(R50-FPN), faster_rcnn_r18 (ResNet-18 FPN, strides 4-32: small images on CPU),
faster_rcnn_mobilenet (MobileNetV3-Large-FPN; stride-32 maps only, so large images).
Flags win over the profile's `detector:` section of params.yaml; without --profile the built-in defaults are used
(DetectorConfig in detectors/config.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from midg.datasets.errors import ConfigError

console = Console(stderr=True)
detector_app = typer.Typer(no_args_is_help=True, help="Train detectors offline and predict into COCO results.")


@detector_app.command("train")
def train_command(
    detector: str = typer.Option(..., "--detector", help="yolov8n|yolov5nu|faster_rcnn|faster_rcnn_r18|faster_rcnn_mobilenet (and yolov8s/m/l/x, yolov5su/...)"),
    data: List[Path] = typer.Option(..., "--data", help="canonical dataset; repeat to add train sets (val/test: the first)"),
    out: Path = typer.Option(..., "--out", help="run folder (weights, meta.json, the data view)"),
    profile: Optional[str] = typer.Option(None, "--profile", help="smoke | demo | paper: defaults from params.yaml"),
    params_file: Optional[Path] = typer.Option(None, "--params", help="params file for --profile "
                                                                       "(default: ./params.yaml, else the built-in one)"),
    steps: Optional[int] = typer.Option(None, "--steps", help="budget in optimiser steps of --batch images"),
    imgsz: Optional[int] = typer.Option(None, "--imgsz", help="image size in px (multiple of 32)"),
    batch: Optional[int] = typer.Option(None, "--batch", help="images per optimiser step"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda | 0 | cuda:N; YOLO: 0,1,... trains one "
                                                                "model on several GPUs (ultralytics' DDP)"),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes"),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads (0: every core); 1 when runs share the cores"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="local weights file to start from (.pt, state_dict, .safetensors)"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint"),
    nproc: int = typer.Option(1, "--nproc", help="Faster R-CNN: train one model on N processes (DDP under torchrun; "
                                                 "one GPU each on CUDA, gloo on CPU); batch must divide by N"),
) -> None:
    """Train a detector from scratch (or from --weights) within a budget of optimiser steps."""
    from midg.detectors.base import get_spec, train
    from midg.detectors.config import DetectorConfig, check_detector_name, load_detector_config

    check_detector_name(detector)
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    overrides = dict(steps=steps, imgsz=imgsz, batch=batch, seed=seed, device=device, workers=workers, threads=threads)
    if profile is not None:
        import sys

        from midg.datasets.params import find_params

        params_file = find_params(params_file)
        print(f"params: {params_file.resolve()} (profile {profile})", file=sys.stderr)
        cfg = load_detector_config(params_file, profile, detector, **overrides)
    else:
        import dataclasses

        cfg = dataclasses.replace(DetectorConfig(), **{k: v for k, v in overrides.items() if v is not None})
    if nproc > 1:
        import subprocess
        import sys

        from midg.detectors import distributed

        distributed.check_world(cfg.batch, nproc, get_spec(detector).family)  # before torchrun starts anything
        argv = distributed.torchrun_argv(nproc, distributed.without_nproc(sys.argv[1:]))
        raise typer.Exit(subprocess.call(argv))  # the ranks' own messages are the output
    train(detector, data, out, cfg, weights=weights, resume=resume)


@detector_app.command("predict")
def predict_command(
    run: Path = typer.Option(..., "--run", help="a finished run folder of `midg detector train`"),
    data: Path = typer.Option(..., "--data", help="canonical dataset to predict on"),
    split: str = typer.Option("test", "--split", help="train | val | test"),
    out: Path = typer.Option(..., "--out", help="COCO results JSON (image_id/category_id of the dataset's annotations)"),
    conf: Optional[float] = typer.Option(None, "--conf", help="score threshold (default: the run's, 0.001)"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda | 0 (default: the run's)"),
) -> None:
    """Predict boxes for one split of a dataset into a COCO results file."""
    from midg.detectors.base import predict

    predict(run, data, split, out, conf=conf, device=device)


def evaluate_command(
    gt: Path = typer.Option(..., "--gt", help="canonical dataset holding annotations/{split}.json"),
    split: str = typer.Option("test", "--split", help="train | val | test"),
    pred: Path = typer.Option(..., "--pred", help="COCO results JSON (a list of detections)"),
    out: Optional[Path] = typer.Option(None, "--out", help="metrics JSON (written atomically)"),
) -> None:
    """Score COCO-format predictions against a dataset split with pycocotools (mAP50, mAP50-95, mAP@0.33)."""
    from midg.detectors.evaluate import evaluate_split

    m = evaluate_split(gt, split, pred, out)
    c = m["counts"]
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    console.print(f"mAP50 {fmt(m['map50'])}  mAP50-95 {fmt(m['map50_95'])}  mAP@0.33 {fmt(m['map33'])}  "
                  f"AR@100 {fmt(m['ar100'])}  ({c['images']} images, {c['gt_boxes']} boxes, {c['predictions']} predictions)"
                  + (f" -> {out}" if out else ""), highlight=False)
