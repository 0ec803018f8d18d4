"""One Faster R-CNN run on several processes (GPUs, or CPU processes with gloo): torchrun
starts N copies of `midg detector train`, each a rank of one DistributedDataParallel model.

    midg detector train --detector faster_rcnn --data data/real --out runs/fr --profile paper --nproc 4

Each optimiser step still takes `batch` images: rank r trains on slots r, r+N, ... of the
step's batch (batch must divide by N), DDP averages the gradients, so the ranks hold one
model. Rank 0 alone writes the run folder (meta, results.csv, checkpoints, weights).
YOLO's several-GPU path is ultralytics' own DDP, not this.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from midg.datasets.errors import ConfigError


@dataclass(frozen=True)
class Rank:
    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def current() -> Rank | None:
    """This process's rank when torchrun started it with more than one process, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return Rank(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def init(rank: Rank, device: str) -> str:
    """Join the process group (nccl on CUDA, gloo on CPU); returns this rank's device."""
    import torch
    import torch.distributed as dist

    cuda = str(device).strip().lower() != "cpu"
    if cuda:
        torch.cuda.set_device(rank.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return f"cuda:{rank.local_rank}" if cuda else "cpu"


def share(value):
    """Rank 0's `value` on every rank (what it decided about the run folder)."""
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def close() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def check_world(batch: int, world: int, family: str) -> None:
    if family != "torchvision":
        raise ConfigError("--nproc runs Faster R-CNN under torchrun; YOLO trains on several GPUs through "
                          "ultralytics' own DDP (detector.device: 0,1,...)")
    if batch % world:
        raise ConfigError(f"--nproc {world}: batch {batch} must divide by the number of processes "
                          "(each takes an equal share of every step's images)")


def torchrun_argv(nproc: int, cli_args: list[str]) -> list[str]:
    """torchrun (as `python -m torch.distributed.run`, this Python) around `midg <cli_args>`, one machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "midg.pipelines.cli", *cli_args]


def without_nproc(argv: list[str]) -> list[str]:
    """The command line less its `--nproc N` / `--nproc=N` (each rank is one process)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out
