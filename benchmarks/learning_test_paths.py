"""The YOLOv8n learning test's recipe under one CPU code path: one JSON line of test mAP.

tests/test_detectors.py::test_yolov8n_learns_demo_boards_and_agrees_with_ultralytics is
deterministic on one machine but not across machines: the kernels torch and oneDNN pick
for the CPU (AVX-512, AVX2, none) sum in other orders, and a from-scratch run amplifies
the last-bit differences. Force a code path with the environment, run the recipe, compare:

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/learning_test_paths.py \\
        --label avx2_z4 --zoom 4 >> results.jsonl
    ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 python benchmarks/learning_test_paths.py --zoom 4 --threads 1

(OMP_WAIT_POLICY=PASSIVE keeps idle OpenMP threads from spinning on a busy machine; it does
not change any figure.) Results of 2026-12-07: benchmarks/results/learning_test_code_paths.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="run")
    ap.add_argument("--steps", type=int, default=240)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--zoom", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from midg.datasets.demo import make_demo_dataset
    from midg.detectors.base import predict, train
    from midg.detectors.config import load_detector_config
    from midg.detectors.evaluate import evaluate_split

    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_demo_dataset(tmp / "demo", args.images, seed=0, size=256, zoom=args.zoom, progress=False).root
        cfg = load_detector_config(ROOT / "params.yaml", "demo", "yolov8n", steps=args.steps, threads=args.threads)
        run = train("yolov8n", [data], tmp / "run", cfg)
        ours = evaluate_split(data, "test", predict(run, data, "test", tmp / "preds.json"))
    env = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS") if k in os.environ}
    print(json.dumps({"label": args.label, "steps": args.steps, "images": args.images, "zoom": args.zoom,
                      "threads": args.threads, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "env": env,
                      "map50": round(ours["map50"], 4), "map50_95": round(ours["map50_95"], 4),
                      "wall_s": round(time.time() - t0)}), flush=True)


if __name__ == "__main__":
    main()
