"""Diversity: how different the defects of one class are from each other.

The mean pairwise Euclidean distance between the features of crops of the same class,
averaged over classes. A generator that collapses onto a few looks scores near 0; one
as varied as the real defects scores about the real value (ratio near 1). Computed in
the reference CNN's standardised feature space (what a detector-like network sees) and
in pixels (root-mean-square difference per pixel, in [0, 1] grey levels).

    d = mean_pairwise_distance(feats, labels, names, seed=0)
    d["mean"], d["per_class"]["spur"]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def _mean_pairwise(x: np.ndarray) -> float:
    sq = (x * x).sum(axis=1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0, None)
    n = len(x)
    return float(np.sqrt(d2)[np.triu_indices(n, k=1)].mean())


def mean_pairwise_distance(feats: np.ndarray, labels: np.ndarray, names: Sequence[str], *, max_per_class: int = 300,
                           seed: int = 0) -> dict[str, Any]:
    """Per class (at least 2 crops; at most `max_per_class` drawn at random) and their mean."""
    rng = np.random.default_rng(seed)
    feats = np.asarray(feats, np.float64).reshape(len(feats), -1)
    per_class: dict[str, Any] = {}
    values = []
    for c, name in enumerate(names):
        idx = np.flatnonzero(labels == c)
        if len(idx) > max_per_class:
            idx = rng.choice(idx, max_per_class, replace=False)
        if len(idx) < 2:
            per_class[name] = {"mean_pairwise": None, "n": int(len(idx))}
            continue
        v = _mean_pairwise(feats[idx])
        per_class[name] = {"mean_pairwise": v, "n": int(len(idx))}
        values.append(v)
    return {"mean": float(np.mean(values)) if values else None, "per_class": per_class}


def pixel_features(crops: np.ndarray) -> np.ndarray:
    """Crops flattened and scaled so Euclidean distance is the per-pixel RMS difference."""
    flat = crops.reshape(len(crops), -1).astype(np.float64)
    return flat / np.sqrt(max(flat.shape[1], 1))
