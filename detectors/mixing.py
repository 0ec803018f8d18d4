"""Which training images make up step s's batch: a fixed share of real ones, seeded.

Real and synthetic sets differ in size (DeepPCB: 100 real train images beside 300 or 3000
synthetic ones). Pooling them lets the sizes set the mix (S=300: 75 % of every batch
synthetic), so two conditions would differ in how much real data they see, not only in
what is added. A `MixPlan` fixes it: every batch holds `real_per_batch = round(real_fraction
* batch)` real images and the rest synthetic, whatever S is.

Each pool is read as an endless stream: pass e over a pool visits it in a permutation
seeded by (seed, e, pool), so every image is seen once per pass, and step s reads stream
positions s*k .. s*k+k-1 of the pool it draws k images from. The batch of a step is
therefore a pure function of (seed, step): a resumed run reads what the uninterrupted one
would have, and one sampler serves ultralytics (`StepSampler`) and Faster R-CNN alike.

With no synthetic images (one --data folder) or `real_fraction: null` there is one pool,
all images, in the order torchvision's loop used before (permutation seeded by (seed, e)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch


@dataclass(frozen=True)
class MixPlan:
    real: tuple[int, ...]  # indices (into the trainer's dataset) of the real training images
    synth: tuple[int, ...]  # ... and of the synthetic ones
    batch: int
    seed: int
    real_per_batch: int | None  # None: one pool of all images (no mixing)

    @staticmethod
    def make(real: list[int], synth: list[int], batch: int, seed: int, real_fraction: float | None) -> "MixPlan":
        k = None
        if synth and real_fraction is not None:
            k = round(real_fraction * batch)
            if k and not real:
                raise ValueError("real_fraction > 0 but there are no real training images")
        return MixPlan(tuple(real), tuple(synth), batch, seed, k)

    @property
    def mixed(self) -> bool:
        return self.real_per_batch is not None

    def describe(self) -> dict:
        return {"real_images": len(self.real), "synthetic_images": len(self.synth),
                "real_per_batch": self.real_per_batch if self.mixed else None,
                "real_share": (self.real_per_batch / self.batch) if self.mixed else
                (len(self.real) / max(len(self.real) + len(self.synth), 1))}

    def _take(self, pool: tuple[int, ...], tag: tuple[int, ...], start: int, n: int) -> list[int]:
        out, cache = [], {}
        for p in range(start, start + n):
            e, j = divmod(p, len(pool))
            if e not in cache:
                cache[e] = np.random.default_rng([self.seed, e, *tag]).permutation(len(pool))
            out.append(pool[int(cache[e][j])])
        return out

    def batch_indices(self, step: int) -> list[int]:
        if not self.mixed:
            pool = self.real + self.synth
            return self._take(pool, (), step * self.batch, self.batch)
        k = self.real_per_batch
        return (self._take(self.real, (1,), step * k, k)
                + self._take(self.synth, (2,), step * (self.batch - k), self.batch - k))


class StepSampler(torch.utils.data.Sampler):
    """Image indices for one "epoch" of `epoch_steps` steps per iteration, epoch after epoch.

    ultralytics' InfiniteDataLoader iterates its sampler once per epoch; `epoch` counts
    those passes (set it to the trainer's start epoch on resume), so epoch e reads steps
    e*epoch_steps .. (e+1)*epoch_steps-1 of the plan, in batches of `plan.batch`.
    Under DDP (ultralytics' several-GPU training) rank r of `world` reads slots r, r+world,
    ... of each step's batch: together the ranks read the one-process stream.
    """

    def __init__(self, plan: MixPlan, epoch_steps: int, rank: int = 0, world: int = 1):
        if plan.batch % world or not 0 <= rank < world:
            raise ValueError(f"rank {rank} of {world}: the batch of {plan.batch} must divide by the number of ranks")
        self.plan, self.epoch_steps, self.epoch = plan, epoch_steps, 0
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return self.epoch_steps * (self.plan.batch // self.world)

    def set_epoch(self, epoch: int) -> None:
        """ultralytics calls this on every DDP rank before each epoch's pass."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        e, self.epoch = self.epoch, self.epoch + 1
        for s in range(e * self.epoch_steps, (e + 1) * self.epoch_steps):
            yield from self.plan.batch_indices(s)[self.rank::self.world]
