"""In-domain Frechet distance (FD) and kernel distance (KID) between two sets of features.

The features are the penultimate layer of the CNN trained on real defect crops (the CAS
reference), not Inception's: nothing is downloaded, and the space is one where defect
classes are told apart. Both sets are standardised with the real set's per-feature mean
and spread first, so numbers are in "real standard deviations" and comparable between
runs of the same real data (not between different real datasets or reference CNNs).

FD fits a Gaussian to each set (Heusel et al. 2017); it is biased upwards for small sets,
so compare FDs computed with equal set sizes. KID (Binkowski et al. 2018) is the unbiased
squared MMD with the cubic polynomial kernel, averaged over random subsets; near 0 means
the same distribution and it may go slightly negative by chance.

    fd = frechet_distance(real_feats, synth_feats)
    kid_mean, kid_std = kernel_inception_distance(real_feats, synth_feats, seed=0)
"""

from __future__ import annotations

import numpy as np


def standardize(feats: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`feats` in units of the reference set's per-feature mean and standard deviation."""
    mu = reference.mean(axis=0)
    sd = reference.std(axis=0)
    sd = np.where(sd > 1e-8, sd, 1.0)  # dead features (always 0 after ReLU) stay 0
    return (feats - mu) / sd


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of Gaussians fitted to rows of a, b.

    Tr((S_a S_b)^(1/2)) is computed as Tr((S_a^(1/2) S_b S_a^(1/2))^(1/2)), a symmetric
    positive semi-definite matrix, so plain eigen-decompositions suffice (no scipy).
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FD needs at least 2 samples per set")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _sqrt_psd(s_a)
    w = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    tr_cross = float(np.sqrt(np.clip(w, 0, None)).sum())
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * tr_cross)
    return max(fd, 0.0)


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, *, subset_size: int = 100, n_subsets: int = 50,
                              seed: int = 0) -> tuple[float, float]:
    """Mean and standard deviation of the unbiased MMD^2 over random equal-size subsets.

    Subsets hold at most half the smaller set, so they differ from each other and the
    standard deviation says how much the number moves with the sample (subsets as big as
    a set would all be that set, and report a spread of 0).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if min(len(a), len(b)) < 4:
        raise ValueError("KID needs at least 4 samples per set")
    m = min(subset_size, min(len(a), len(b)) // 2)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
        vals.append(mmd)
    return float(np.mean(vals)), float(np.std(vals))
