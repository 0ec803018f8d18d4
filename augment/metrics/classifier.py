"""The small CNN every learned metric uses, and its flat training loop.

CAS trains it on crops of one set and tests on real crops; C2ST trains it to tell real
from synthetic; FD, KID and diversity read the penultimate features of the one trained on
real crops (the "reference"). No weights come from the internet: the feature space is
learned in-domain, on the real defects themselves.

    model = train_classifier(x, y, n_classes=6, cfg=ClassifierConfig(), seed=0, desc="reference")
    probs = predict(model, x_test)          # (N, K)
    feats = embed(model, x_test)            # (N, 4 * width)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn


@dataclass(frozen=True)
class ClassifierConfig:
    width: int = 16  # channels of the first block; features are 4 * width wide
    epochs: int = 10  # passes over the training crops ...
    min_steps: int = 200  # ... but at least this many optimiser steps (small sets need more passes)
    batch_size: int = 64
    lr: float = 3e-3  # AdamW, cosine decay to zero
    weight_decay: float = 1e-4
    augment: bool = True  # random flips and 90-degree turns: a defect has no preferred orientation


class TinyCNN(nn.Module):
    """Four conv blocks, global average pooling, one linear layer.

    in: crop (C, S, S) in [0, 1]; features: (4 * width,) after pooling; out: logits (K,).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, width: int = 16):
        super().__init__()

        def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            return layers + [nn.MaxPool2d(2)] if pool else layers

        # pooling right after the first conv keeps full-resolution work (the CPU cost) small
        self.features = nn.Sequential(
            *block(in_channels, width, pool=True),  # S/2
            *block(width, 2 * width, pool=True),  # S/4
            *block(2 * width, 4 * width, pool=True),  # S/8
            *block(4 * width, 4 * width, pool=False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * width, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x - 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def progress_wanted(show_progress: bool) -> bool:
    """Bars only on a terminal: piped into a log (DVC, CI) they would print blank lines."""
    return show_progress and Console().is_terminal


def random_dihedral(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each crop turned by a random multiple of 90 degrees and maybe mirrored."""
    turns = torch.randint(0, 4, (x.shape[0],), generator=gen)
    flips = torch.randint(0, 2, (x.shape[0],), generator=gen).bool()
    out = x.clone()
    for k in range(4):
        sel = turns == k
        if sel.any():
            out[sel] = torch.rot90(x[sel], k, dims=(2, 3))
    out[flips] = torch.flip(out[flips], dims=(3,))
    return out


def train_classifier(x: np.ndarray, y: np.ndarray, n_classes: int, cfg: ClassifierConfig = ClassifierConfig(), *,
                     seed: int = 0, device: str = "cpu", desc: str = "classifier", show_progress: bool = True) -> TinyCNN:
    """Train a TinyCNN on crops `x` (N, C, S, S) with labels `y` (N,); returns it in eval mode.

    Deterministic for a given seed, device and torch thread count: the weights are
    initialised under the seed, and batches and augmentations come from a seeded generator.
    """
    if len(x) == 0:
        raise ValueError(f"{desc}: no training crops")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyCNN(in_channels=x.shape[1], n_classes=n_classes, width=cfg.width)
    model.to(device).train()
    gen = torch.Generator().manual_seed(seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    steps_per_epoch = math.ceil(len(xt) / cfg.batch_size)
    epochs = max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch))
    total = epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.3f}"),
               TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=not progress_wanted(show_progress)) as progress:
        task = progress.add_task(desc, total=total, loss=float("nan"))
        for _ in range(epochs):
            order = torch.randperm(len(xt), generator=gen)
            for i in range(steps_per_epoch):
                idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                if len(idx) < 2 and len(xt) >= 2:
                    continue  # BatchNorm cannot train on a batch of one
                xb = random_dihedral(xt[idx], gen) if cfg.augment else xt[idx]
                loss = F.cross_entropy(model(xb.to(device)), yt[idx].to(device))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{desc}: non-finite loss {loss.item()}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                progress.update(task, advance=1, loss=loss.item())
    return model.eval()


@torch.no_grad()
def _batched(fn, model: TinyCNN, x: np.ndarray, batch: int = 512) -> np.ndarray:
    device = next(model.parameters()).device
    out = [fn(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32)).to(device)).float().cpu().numpy()
           for i in range(0, len(x), batch)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def predict(model: TinyCNN, x: np.ndarray) -> np.ndarray:
    """Class probabilities (N, K)."""
    model.eval()
    return _batched(lambda t: torch.softmax(model(t), dim=1), model, x)


def embed(model: TinyCNN, x: np.ndarray) -> np.ndarray:
    """Penultimate features (N, 4 * width), float64 for the covariance maths downstream."""
    model.eval()
    return _batched(model.embed, model, x).astype(np.float64)
