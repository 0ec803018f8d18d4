"""Measure what a training step of each detector costs here (the table in docs/detectors.md).

    python -m midg.detectors.stepcost --profile demo --steps 12 --out benchmarks/results/detector_step_cost_cpu.json
    python -m midg.detectors.stepcost --profile paper --device cuda --imgsz 640 --out benchmarks/results/detector_step_cost_gpu.json

Each detector trains `--steps` optimiser steps at its profile batch size on demo boards
(`--data` to use another dataset) through the same `train()` as `midg detector train`, then
predicts the test split. Seconds per step are medians (the first step and ultralytics'
set-up excluded); load average and thread counts are recorded, since the machines these
figures come from may be shared.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from midg.datasets.atomic import atomic_write_json

from .base import predict, train, versions
from .config import load_detector_config


def measure(detectors: list[str], data: Path, params: Path, profile: str, steps: int, imgsz: int | None,
            device: str | None, work: Path) -> list[dict]:
    rows = []
    for name in detectors:
        cfg = load_detector_config(params, profile, name, steps=steps, imgsz=imgsz, device=device)
        cfg = dataclasses.replace(cfg, checkpoint_every=max(cfg.checkpoint_every, steps))
        run = work / name
        load0 = os.getloadavg()[0]
        t0 = time.time()
        train(name, [data], run, cfg)
        t1 = time.time()
        predict(run, data, "test", run / "preds.json")
        t2 = time.time()
        meta = json.loads((run / "meta.json").read_text())
        n_test = len(list((data / "images" / "test").iterdir()))
        rows.append({
            "detector": name, "imgsz": cfg.imgsz, "batch": cfg.batch, "steps": steps,
            "s_per_step": meta["s_per_step"], "s_per_image": round(meta["s_per_step"] / cfg.batch, 4),
            "train_wall_s": round(t1 - t0, 1), "predict_s_per_image": round((t2 - t1) / n_test, 4),
            "device": meta["device"], "load_avg_1min_before": round(load0, 2),
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detectors", nargs="+", default=["yolov8n", "yolov5nu", "faster_rcnn_mobilenet", "faster_rcnn"])
    ap.add_argument("--data", type=Path, help="canonical dataset (default: 60 demo boards at --imgsz or 256 px)")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--imgsz", type=int)
    ap.add_argument("--device")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="midg-stepcost-") as tmp:
        work = Path(tmp)
        data = args.data
        if data is None:
            from midg.datasets.demo import make_demo_dataset

            data = work / "demo"
            make_demo_dataset(data, 60, seed=0, size=args.imgsz or 256, progress=False)
        rows = measure(args.detectors, data, args.params, args.profile, args.steps, args.imgsz, args.device, work)
    atomic_write_json(args.out, {
        "what": "seconds per optimiser step (median), detector training from scratch",
        "command": "python -m midg.detectors.stepcost " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": versions(),
        "rows": rows,
    })


if __name__ == "__main__":
    main()
