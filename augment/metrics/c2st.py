"""Classifier two-sample test (C2ST): can a small CNN tell real crops from synthetic ones?

Real and synthetic crops are balanced class by class (the same number of each class from
each side, classes present on both sides only), split into a training and a held-out
part, and the CNN learns "real (0) or synthetic (1)". Its held-out accuracy is the metric:
0.5 means indistinguishable to this classifier, 1.0 means every synthetic crop gives
itself away. The 95% interval is Wilson's; `p_value` is the exact one-sided binomial test
of "accuracy > 0.5". An accuracy near 0.5 from a tiny held-out set proves little: read
the interval. (Lopez-Paz & Oquab, "Revisiting Classifier Two-Sample Tests", ICLR 2017.)

    result = classifier_two_sample_test(real_crops, synth_crops, cfg, seed=0)
    result["accuracy"], result["ci95"]

With `held_out_scores=True` the result also says, per held-out crop, its side, its index in
the crop set it came from and the classifier's P(synthetic): which crops give themselves
away (benchmarks/c2st_probe.py --sheet-dir draws them).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .classifier import ClassifierConfig, predict, train_classifier
from .crops import CropSet, stratified_halves

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (sound near 0 and 1, unlike p +- z*se)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def binomial_p_value(successes: int, n: int) -> float:
    """P(X >= successes) for X ~ Binomial(n, 1/2): one-sided, exact (integer arithmetic)."""
    if n <= 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(max(successes, 0), n + 1))
    return tail / 2 ** n


def balanced_indices(real_y: np.ndarray, synth_y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per class present on both sides, the same number of crops from each side."""
    real_idx, synth_idx = [], []
    for c in np.intersect1d(np.unique(real_y), np.unique(synth_y)):
        r, s = np.flatnonzero(real_y == c), np.flatnonzero(synth_y == c)
        n = min(len(r), len(s))
        real_idx.append(np.sort(rng.choice(r, n, replace=False)))
        synth_idx.append(np.sort(rng.choice(s, n, replace=False)))
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)  # noqa: E731
    return cat(real_idx), cat(synth_idx)


def classifier_two_sample_test(real: CropSet, synth: CropSet, cfg: ClassifierConfig = ClassifierConfig(), *,
                               seed: int = 0, test_share: float = 0.5, device: str = "cpu", desc: str = "C2ST",
                               show_progress: bool = True, held_out_scores: bool = False) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    ri, si = balanced_indices(real.y, synth.y, rng)
    n_per_side = len(ri)
    if n_per_side < 4:
        return {"accuracy": None, "ci95": None, "p_value": None, "n_train": 0, "n_test": 0,
                "n_per_side": n_per_side, "note": "fewer than 4 crops per side in shared classes"}
    x = np.concatenate([real.x[ri], synth.x[si]])
    origin = np.concatenate([np.zeros(len(ri), np.int64), np.ones(len(si), np.int64)])
    # stratify the held-out split by (origin, class) so both parts stay balanced
    strata = origin * 1000 + np.concatenate([real.y[ri], synth.y[si]])
    test_idx, train_idx = stratified_halves(strata, rng, first_share=test_share)
    model = train_classifier(x[train_idx], origin[train_idx], 2, cfg, seed=seed, device=device, desc=desc,
                             show_progress=show_progress)
    probs = predict(model, x[test_idx])
    pred = probs.argmax(axis=1)
    correct = int((pred == origin[test_idx]).sum())
    n_test = len(test_idx)
    lo, hi = wilson_interval(correct, n_test)
    extra: dict[str, Any] = {}
    if held_out_scores:
        source_index = np.concatenate([ri, si])[test_idx]
        extra["held_out"] = {"side": ["synthetic" if o else "real" for o in origin[test_idx]],
                             "index": [int(i) for i in source_index],
                             "p_synthetic": [round(float(p), 6) for p in probs[:, 1]]}
    return {
        "accuracy": correct / n_test,
        "ci95": [lo, hi],
        "p_value": binomial_p_value(correct, n_test),
        "n_train": int(len(train_idx)),
        "n_test": int(n_test),
        "n_per_side": int(n_per_side),
        **extra,
    }
