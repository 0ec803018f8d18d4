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


# ---------------------------------------------------------------- YOLO on several GPUs: ultralytics' own DDP


def test_step_sampler_ranks_read_the_one_process_stream():
    from midg.detectors.mixing import MixPlan, StepSampler

    plan = MixPlan.make(list(range(10)), list(range(10, 40)), batch=8, seed=3, real_fraction=0.5)
    whole = list(StepSampler(plan, epoch_steps=5))
    for world in (2, 4):
        ranks = [list(StepSampler(plan, 5, r, world)) for r in range(world)]
        assert all(len(part) == len(whole) // world == len(StepSampler(plan, 5, 0, world)) for part in ranks)
        per = plan.batch // world
        for step in range(5):  # slot j of rank r is slot r + j*world of the step's batch
            batch = whole[step * plan.batch:(step + 1) * plan.batch]
            rebuilt = [ranks[r][step * per + j] for j in range(per) for r in range(world)]
            assert rebuilt == batch
            assert sum(i < 10 for i in batch) == 4  # the real share holds for the step as a whole
    with pytest.raises(ValueError, match="must divide"):
        StepSampler(plan, 5, 0, 3)
    later = StepSampler(plan, 5, 1, 2)
    later.set_epoch(3)  # what ultralytics calls on every DDP rank before an epoch
    assert list(later) == [i for s in range(15, 20) for i in plan.batch_indices(s)[1::2]]


def test_yolo_device_list_names_distinct_cuda_devices(monkeypatch):
    from midg.datasets.errors import ConfigError
    from midg.detectors.common import cuda_devices, device_name, first_device, resolve_train_device

    assert [cuda_devices(d) for d in ("cpu", "cuda", "cuda:1", "0,1", "0, 1, 2")] == [0, 1, 1, 2, 3]  # what Ray reserves

    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_train_device("0,1", "ultralytics")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"gpu{i}")
    assert resolve_train_device("0,1", "ultralytics") == "0,1"
    assert resolve_train_device("cuda:1, cuda:0", "ultralytics") == "1,0"
    assert resolve_train_device("cuda", "ultralytics") == "0" and first_device("1,0") == "1"
    assert device_name("0,1") == "cuda:0 (gpu0), cuda:1 (gpu1)"
    for bad, message in (("0,0", "distinct CUDA indices"), ("0,x", "distinct CUDA indices"),
                         ("0,2", "only 2 CUDA device")):
        with pytest.raises(ConfigError, match=message):
            resolve_train_device(bad, "ultralytics")
    with pytest.raises(ConfigError, match="--nproc 2"):
        resolve_train_device("0,1", "torchvision")


@pytest.mark.slow
def test_yolo_trains_in_ultralytics_ddp_workers_and_the_run_records_their_steps(tmp_path, monkeypatch):
    """ultralytics' several-GPU path pickles the trainer class, the model and the callbacks
    (cloudpickle), starts torch.distributed.run on a generated file and waits. Without GPUs
    it is taken here with one CPU worker: the launching trainer is told it is DDP, the worker
    (a fresh process, RANK=0) rebuilds our MidgTrainer and StepBudget from the pickle, trains,
    scores val and records its steps; the launching process writes the run from that record."""
    import json

    from _detector_data import make_demo_or_toy
    from midg.detectors import yolo
    from midg.detectors.base import predict, train
    from midg.detectors.config import load_detector_config

    data = make_demo_or_toy(tmp_path / "demo", n_images=16, size=64)
    cfg = load_detector_config(Path(__file__).resolve().parents[1] / "params.yaml", "smoke", "yolov8n",
                               steps=4, epoch_steps=2, budget="convergence", val_every=2)
    real_class = yolo._trainer_class

    def launching_class(cfg, view_root):
        class Launching(real_class(cfg, view_root)):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                if "RANK" not in os.environ:  # the launching process: take ultralytics' DDP path
                    self.ddp, self.world_size = True, 1

        return Launching

    monkeypatch.setattr(yolo, "_trainer_class", launching_class)
    assert "RANK" not in os.environ
    run = train("yolov8n", [data], tmp_path / "run", cfg)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "finished" and meta["ddp_world_size"] == 1
    assert meta["steps_done"] == 4 and meta["images_seen"] == 4 * cfg.batch and len(meta["schedule_args"]) == 3
    assert meta["mixing"]["real_images"] > 0
    assert [r["step"] for r in meta["val_curve"]] == [2, 4] and meta["best_step"] in (2, 4)  # scored in the worker
    assert (run / "schedule.csv").read_text().count("\n") == 5  # header + 4 steps, recorded in the worker
    assert (run / meta["weights"]).is_file() and (run / meta["last_weights"]).is_file()
    preds = json.loads(predict(run, data, "test", tmp_path / "preds.json").read_text())
    assert isinstance(preds, list)
