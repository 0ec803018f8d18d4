"""Scale-out: Faster R-CNN under DistributedDataParallel (what `torchrun` runs on N GPUs),
checked here with 2 CPU processes and the gloo backend.

    .venv/bin/python -m pytest tests/test_scaleout.py -x -q

Each rank builds the model with detectors/faster_rcnn.py's own `build_model`, wraps it in
DDP and takes steps with its `train_one_step` on its own images; DDP averages the gradients,
so after every step both ranks hold the same weights, which differ from the start.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flat(model) -> "torch.Tensor":
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file
    from torch.nn.parallel import DistributedDataParallel

    from midg.detectors.base import get_spec
    from midg.detectors.config import DetectorConfig
    from midg.detectors.faster_rcnn import build_model, make_optimizer, train_one_step

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        torch.manual_seed(rank)  # different starts on purpose: DDP broadcasts rank 0's weights
        cfg = DetectorConfig(imgsz=64, batch=1, roi_batch=32, proposals=50, anchor_scale=0.25, steps=2,
                             warmup_steps=0, lr=0.01)
        model = build_model(get_spec("faster_rcnn_mobilenet"), 2, cfg).train()
        start = _flat(model).clone()
        ddp = DistributedDataParallel(model)  # broadcasts rank 0's weights; every parameter gets a gradient
        optimizer = make_optimizer(ddp, cfg)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        g = torch.Generator().manual_seed(100 + rank)  # each rank its own shard of the data
        losses = []
        for step in range(cfg.steps):
            images = [torch.rand(3, 64, 64, generator=g)]
            x, y = 8 + 6 * rank + step, 10 + 4 * rank
            targets = [{"boxes": torch.tensor([[x, y, x + 20.0, y + 16.0]]), "labels": torch.tensor([1 + rank])}]
            losses.append(train_one_step(ddp, optimizer, scaler, images, targets, torch.device("cpu"), False,
                                         cfg.clip_grad_norm)["loss"])
        save_file({"start": start, "end": _flat(model).contiguous(), "losses": torch.tensor(losses)},
                  str(Path(out) / f"rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_faster_rcnn_ddp_two_cpu_processes_stay_in_step(tmp_path):
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert not torch.equal(r0["start"], r1["start"])  # the ranks built different weights ...
    assert torch.equal(r0["end"], r1["end"])  # ... DDP made them one model, stepped together
    assert not torch.allclose(r0["end"], r0["start"])  # and the steps moved it
    assert not torch.allclose(r0["losses"], r1["losses"])  # on different images per rank
    assert torch.isfinite(r0["losses"]).all()


# ---------------------------------------------------------------- the command: `midg detector train --nproc N`


@pytest.mark.slow
def test_detector_train_nproc_runs_one_faster_rcnn_on_two_gloo_processes(tmp_path):
    import json
    import subprocess

    from safetensors.torch import load_file

    import _pipeline_repo as repo
    from _detector_data import make_toy_dataset

    data = make_toy_dataset(tmp_path / "toy", n_train=8, n_val=2, n_test=2, size=64)
    base = [str(repo.BIN / "midg"), "detector", "train", "--detector", "faster_rcnn_mobilenet", "--data", str(data),
            "--profile", "smoke", "--params", str(repo.ROOT / "params.yaml"), "--imgsz", "64", "--steps", "2"]
    r = subprocess.run(base + ["--out", str(tmp_path / "run"), "--batch", "2", "--nproc", "2"], env=repo.env(tmp_path),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["status"] == "finished" and meta["steps_done"] == 2 and meta["images_seen"] == 4
    assert meta["ddp"] == {"world_size": 2, "backend": "gloo", "images_per_rank_step": 1}
    assert "on 2 processes (DDP)" in " ".join((r.stdout + r.stderr).split())
    rows = (tmp_path / "run" / "results.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2"]  # rank 0 alone wrote its rows, once
    weights = load_file(str(tmp_path / "run" / meta["weights"]))
    assert weights and not any(k.startswith("module.") for k in weights)  # the model, not its DDP wrapper
    p = subprocess.run([str(repo.BIN / "midg"), "detector", "predict", "--run", str(tmp_path / "run"), "--data",
                        str(data), "--out", str(tmp_path / "preds.json")], env=repo.env(tmp_path), capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0 and isinstance(json.loads((tmp_path / "preds.json").read_text()), list), p.stderr[-2000:]

    for extra, message in ((["--detector", "yolov8n", "--batch", "2"], "YOLO trains on several GPUs through"),
                           (["--batch", "3"], "batch 3 must divide by the number of processes")):
        bad = subprocess.run(base + ["--out", str(tmp_path / "bad"), "--nproc", "2", *extra], env=repo.env(tmp_path),
                             capture_output=True, text=True, timeout=300)
        assert bad.returncode == 2 and message in " ".join(bad.stderr.split()), bad.stderr[-2000:]
        assert not (tmp_path / "bad").exists()
