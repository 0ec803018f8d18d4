"""The copy-paste baseline: a real defect of the same class, scaled into the rectangle.

    midg generate --method copypaste --checkpoint runs/library --normals data/real --out data/cp --n-images 500 --seed 0

It uses the same sampler, the same rectangles and the same per-image rng as MIDG (see
`generate.py`), so the two synthetic sets differ only in how the pixels are made.
For a paired source (the library entry has a changed mask from an aligned template) only
the changed pixels travel: no piece of the other board's background comes with them, so
there is no seam. Without a template the whole box crop is pasted, blended into the
normal image by an alpha that ramps up from its border (feathered), which hides the seam.
"""

from __future__ import annotations

import cv2
import numpy as np

from .library import DefectLibrary, as_channels

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
                 rng: np.random.Generator) -> np.ndarray:
    """A copy of `image` with library entry `index` pasted into `rect` (randomly flipped).

    Pixels outside `rect` are untouched; for paired entries so are the pixels inside
    `rect` that the real defect did not change.
    """
    x1, y1, x2, y2 = rect
    w, h = x2 - x1, y2 - y1
    patch, changed, _ = library.entry(index)
    flips = rng.integers(0, 2, 2)  # drawn always, so the stream does not depend on the entry
    if flips[0]:
        patch, changed = patch[:, ::-1], changed[:, ::-1]
    if flips[1]:
        patch, changed = patch[::-1], changed[::-1]
    channels = 1 if image.ndim == 2 else 3
    patch = as_channels(np.ascontiguousarray(patch), channels)
    if library.paired[index]:
        patch = extend_changed(patch, changed)
    patch = cv2.resize(patch, (w, h), interpolation=cv2.INTER_LINEAR)
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
