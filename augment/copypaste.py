"""The copy-paste baseline: a real defect of the same class, scaled into the rectangle.

    midg generate --method copypaste --checkpoint runs/library --normals data/real --out data/cp --n-images 500 --seed 0

It uses the same sampler, the same rectangles and the same per-image rng as MIDG (see
`generate.py`), so the two synthetic sets differ only in how the pixels are made.
For a paired source (the library entry has a changed mask from an aligned template) only
the changed pixels travel: no piece of the other board's background comes with them, so
there is no seam. Without a template the whole box crop is pasted, blended into the
normal image by an alpha that ramps up from its border (feathered), which hides the seam.

`blend="poisson"` is the strong non-learned baseline (`midg generate --method poisson`):
the same entry, the same place, blended by OpenCV's Poisson image editing
over the whole rectangle (`poisson_blend`): the real crop's gradients inside, the normal
image's values on its border, so the defect takes on the local brightness; whatever the
crop's own background held travels with it, as in the literature's Poisson copy-paste.
"""

from __future__ import annotations

import cv2
import numpy as np

from .library import DefectLibrary, as_channels
from .placement import dihedral

FEATHER = 0.2  # unpaired pastes: the alpha ramp is this fraction of the shorter side


def feathered_alpha(h: int, w: int, feather: float = FEATHER) -> np.ndarray:
    """HxW float32 alpha: 1 in the middle, ramping linearly to ~0 at the border."""
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = 1
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]  # 1 at the border pixels
    ramp = max(1.0, feather * min(h, w))
    return np.clip(dist / ramp, 0.0, 1.0).astype(np.float32)


def extend_changed(patch: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """The patch with every unchanged pixel replaced by its nearest changed pixel, so that
    resampling it never mixes the source board's background into the defect's border."""
    if changed.all() or not changed.any():
        return patch
    _, labels = cv2.distanceTransformWithLabels((changed == 0).astype(np.uint8), cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(changed)  # row-major, the order of the labels
    return patch[ys[labels - 1], xs[labels - 1]]


def pick_entry(rng: np.random.Generator, library: DefectLibrary, cls: int) -> int:
    candidates = library.indices_of(cls)
    if len(candidates) == 0:
        raise ValueError(f"the defect library has no entry of class index {cls}")
    return int(candidates[int(rng.integers(len(candidates)))])


def paste_defect(image: np.ndarray, rect, library: DefectLibrary, index: int,
                 rng: np.random.Generator, blend: str = "alpha", transform: int | None = None) -> np.ndarray:
    """A copy of `image` with library entry `index` pasted into `rect` (randomly flipped, or
    in the dihedral orientation `transform` that matched placement chose for it).

    Pixels outside `rect` are untouched; with `blend="alpha"` so are the pixels inside
    `rect` that a paired entry's real defect did not change. `blend="poisson"`: see
    `poisson_blend`.
    """
    x1, y1, x2, y2 = rect
    w, h = x2 - x1, y2 - y1
    patch, changed, _ = library.entry(index)
    flips = rng.integers(0, 2, 2)  # drawn always, so the stream does not depend on the entry
    if transform is not None:
        patch, changed = dihedral(patch, transform), dihedral(changed, transform)
    else:
        if flips[0]:
            patch, changed = patch[:, ::-1], changed[:, ::-1]
        if flips[1]:
            patch, changed = patch[::-1], changed[::-1]
    channels = 1 if image.ndim == 2 else 3
    patch = as_channels(np.ascontiguousarray(patch), channels)
    if library.paired[index] and blend != "poisson":  # Poisson needs the defect's own border gradients
        patch = extend_changed(patch, changed)
    patch = cv2.resize(patch, (w, h), interpolation=cv2.INTER_LINEAR)
    if blend == "poisson":
        out = image.copy()
        out[y1:y2, x1:x2] = poisson_blend(image, rect, patch)
        return out
    if library.paired[index]:
        alpha = cv2.resize(np.ascontiguousarray(changed), (w, h), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    else:
        alpha = feathered_alpha(h, w)
    if channels == 3:
        alpha = alpha[..., None]
    region = image[y1:y2, x1:x2].astype(np.float32)
    out = image.copy()
    out[y1:y2, x1:x2] = np.clip(np.rint(region + alpha * (patch.astype(np.float32) - region)), 0, 255).astype(np.uint8)
    return out


def poisson_blend(image: np.ndarray, rect, patch: np.ndarray) -> np.ndarray:
    """The pixels of `rect` after Poisson-blending the rect-sized `patch` into `image`
    (Perez et al. 2003, guided interpolation with the patch's own gradients): inside, the
    patch plus the smoothest correction that meets the image's values on the rectangle's
    outer ring, so the defect keeps its contrast, takes on the local brightness, and
    leaves no seam.

    Solved here (a membrane: Laplace's equation for the correction, conjugate gradients
    on the 5-point stencil, deterministic) rather than by cv2.seamlessClone: with OpenCV
    5.1 that returned the destination unchanged for non-rectangular masks, scrambled
    small rectangles, and wrote into the mask it was given (tests/test_copypaste.py pins
    the behaviour we need)."""
    x1, y1, x2, y2 = rect
    region = image[y1:y2, x1:x2].astype(np.float64)
    src = patch.astype(np.float64)
    if src.ndim == 2 and region.ndim == 3:
        src = np.repeat(src[..., None], region.shape[2], axis=2)
    h, w = region.shape[:2]
    if h < 3 or w < 3:  # no inside to solve for: the ring is all there is
        return image[y1:y2, x1:x2].copy()
    diff = region - src  # the correction's values on the ring
    out = src.copy()
    channels = [slice(None)] if diff.ndim == 2 else [(slice(None), slice(None), c) for c in range(diff.shape[2])]
    for ch in channels:
        out[ch] = src[ch] + membrane(diff[ch])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def membrane(ring: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """The harmonic function equal to `ring` on the outer ring of the 2-D array (its
    inside ignored): conjugate gradients on the interior's 5-point Laplacian."""
    h, w = ring.shape
    b = np.zeros((h - 2, w - 2))
    b[0, :] += ring[0, 1:-1]
    b[-1, :] += ring[-1, 1:-1]
    b[:, 0] += ring[1:-1, 0]
    b[:, -1] += ring[1:-1, -1]

    def apply(x: np.ndarray) -> np.ndarray:
        ax = 4.0 * x
        ax[1:, :] -= x[:-1, :]
        ax[:-1, :] -= x[1:, :]
        ax[:, 1:] -= x[:, :-1]
        ax[:, :-1] -= x[:, 1:]
        return ax

    x = np.zeros_like(b)
    r = b - apply(x)
    d = r.copy()
    rr = float((r * r).sum())
    stop = (tol ** 2) * max(float((b * b).sum()), 1e-12)
    for _ in range(4 * (h + w)):  # CG converges in far fewer for this well-conditioned stencil
        if rr <= stop:
            break
        ad = apply(d)
        alpha = rr / float((d * ad).sum())
        x += alpha * d
        r -= alpha * ad
        rr_new = float((r * r).sum())
        d = r + (rr_new / rr) * d
        rr = rr_new
    out = ring.astype(np.float64).copy()
    out[1:-1, 1:-1] = x
    return out
