"""The copy-paste baseline: a real defect of the same class, scaled into the rectangle.

    midg generate --method copypaste --checkpoint runs/library --normals data/real --out data/cp --n-images 500 --seed 0

It uses the same sampler, the same rectangles and the same per-image rng as MIDG (see
`generate.py`), so the two synthetic sets differ only in how the pixels are made.
For a paired source (the library entry has a changed mask from an aligned template) only
the changed pixels travel: no piece of the other board's background comes with them, so
there is no seam. A mask-annotated source (the entry keeps the defect's own mask: LabelMe
polygons, instance or beside-the-image masks) pastes only the mask's pixels, with an alpha
that ramps up over a few pixels inside the mask border (`mask_alpha`): the other
photograph's surface in the box never travels. Without either, the whole box crop is
pasted, blended by an alpha that ramps up from its border (feathered), which hides the seam.

`blend="poisson"` is the strong non-learned baseline (`midg generate --method poisson`):
the same entry, the same place, blended by Poisson image editing (`poisson_blend`): the
real crop's gradients inside, the normal image's values on the border, so the defect takes
on the local brightness. The region is the whole rectangle (whatever the crop's own
background held travels with it, as in the literature's Poisson copy-paste), or, for a
mask-annotated entry, the defect's mask grown by MASK_FEATHER_PX (the defect's contrast is
its step from the surface, so that step must lie inside): only those pixels change.
"""

from __future__ import annotations

import cv2
import numpy as np

from .library import DefectLibrary, as_channels
from .placement import dihedral

FEATHER = 0.2  # unpaired pastes: the alpha ramp is this fraction of the shorter side
MASK_FEATHER_PX = 3  # mask-annotated pastes: the alpha ramps up over this many pixels inside the mask


def feathered_alpha(h: int, w: int, feather: float = FEATHER) -> np.ndarray:
    """HxW float32 alpha: 1 in the middle, ramping linearly to ~0 at the border."""
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = 1
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]  # 1 at the border pixels
    ramp = max(1.0, feather * min(h, w))
    return np.clip(dist / ramp, 0.0, 1.0).astype(np.float32)


def mask_alpha(mask: np.ndarray, feather: int = MASK_FEATHER_PX) -> np.ndarray:
    """HxW float32 alpha of a defect mask: 0 outside it, ramping up over `feather` pixels
    from its border to 1 (a mask thinner than that peaks at 1 on its middle line). The
    ramp lies inside the mask, so nothing outside it changes; the rectangle's edge counts
    as outside, so a mask that touches it has no hard edge there either."""
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), np.uint8)
    padded[1:-1, 1:-1] = mask > 0
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]  # 1 on the mask's border pixels
    ramp = max(1.0, min(float(feather), float(dist.max())))
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
    `rect` that a paired entry's real defect did not change, and those outside a
    mask-annotated entry's mask (with Poisson: outside that mask grown by MASK_FEATHER_PX).
    `blend="poisson"`: see `poisson_blend`.
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
    masked = bool(library.masked[index])
    if (masked or library.paired[index]) and blend != "poisson":  # Poisson needs the defect's own border gradients
        patch = extend_changed(patch, changed)  # resampling never mixes the other surface into the defect
    patch = cv2.resize(patch, (w, h), interpolation=cv2.INTER_LINEAR)
    if masked:
        mask = cv2.resize(np.ascontiguousarray(changed, np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
    if blend == "poisson":
        solve_in = None  # the whole rectangle
        if masked:  # the mask grown by the feather: the step from the surface into the defect, its contrast, is inside
            grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MASK_FEATHER_PX + 1, 2 * MASK_FEATHER_PX + 1))
            solve_in = cv2.dilate(mask.astype(np.uint8), grow) > 0
            patch = own_surface_guide(patch, mask, image[y1:y2, x1:x2])
        out = image.copy()
        out[y1:y2, x1:x2] = poisson_blend(image, rect, patch, solve_in)
        return out
    if masked:
        alpha = mask_alpha(mask)
    elif library.paired[index]:
        alpha = cv2.resize(np.ascontiguousarray(changed), (w, h), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    else:
        alpha = feathered_alpha(h, w)
    if channels == 3:
        alpha = alpha[..., None]
    region = image[y1:y2, x1:x2].astype(np.float32)
    out = image.copy()
    out[y1:y2, x1:x2] = np.clip(np.rint(region + alpha * (patch.astype(np.float32) - region)), 0, 255).astype(np.uint8)
    return out


def own_surface_guide(patch: np.ndarray, mask: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The Poisson guide of a mask-annotated defect: its own pixels inside the mask, and
    outside it, and on the rectangle's outer ring, the surface it sat on (OpenCV's Telea
    inpainting of the mask in its own crop). An annotated mask reaches its box's edges,
    so without this the ring, which keeps the destination's values, would meet the
    defect's own pixels there and the solve would spread the surface's level over the
    defect; against its own surface the defect keeps its contrast and only that moves.
    A mask that covers the whole crop leaves no surface to see: the destination's mean
    stands in for it."""
    hole = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
    if hole.all():
        surface = np.empty_like(patch)
        surface[...] = np.rint(region.reshape(-1, *region.shape[2:]).mean(axis=0)).astype(np.uint8)
    else:
        surface = cv2.inpaint(np.ascontiguousarray(patch), hole, 3, cv2.INPAINT_TELEA)
    keep = mask if patch.ndim == 2 else mask[..., None]
    guide = np.where(keep, patch, surface)
    ring = np.ones(mask.shape, bool)
    ring[1:-1, 1:-1] = False
    guide[ring] = surface[ring]
    return guide


def poisson_blend(image: np.ndarray, rect, patch: np.ndarray, region_mask: np.ndarray | None = None) -> np.ndarray:
    """The pixels of `rect` after Poisson-blending the rect-sized `patch` into `image`
    (Perez et al. 2003, guided interpolation with the patch's own gradients): inside, the
    patch plus the smoothest correction that meets the image's values on the region's
    border, so the defect keeps its contrast, takes on the local brightness, and leaves no
    seam. The region is the rectangle less its outer ring, or `region_mask` (rect-sized,
    bool: a defect's own mask) less that ring: every other pixel keeps the image's value.

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
        out[ch] = src[ch] + membrane(diff[ch], region_mask)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def membrane(ring: np.ndarray, region: np.ndarray | None = None, tol: float = 1e-4) -> np.ndarray:
    """The harmonic function equal to `ring` outside the region it solves for: conjugate
    gradients on the 5-point Laplacian. The region is the 2-D array's inside (all but the
    outer ring), or the pixels of `region` (bool, same shape) in that inside; every pixel
    outside it keeps `ring`'s value exactly."""
    h, w = ring.shape
    inside = np.ones((h - 2, w - 2), bool) if region is None else np.asarray(region, bool)[1:-1, 1:-1]
    fixed = ring.astype(np.float64).copy()
    fixed[1:-1, 1:-1][inside] = 0.0  # the known values the solved pixels see as neighbours
    b = (fixed[:-2, 1:-1] + fixed[2:, 1:-1] + fixed[1:-1, :-2] + fixed[1:-1, 2:]) * inside

    def apply(x: np.ndarray) -> np.ndarray:  # x is 0 outside the region: its neighbours there drop out
        ax = 4.0 * x
        ax[1:, :] -= x[:-1, :]
        ax[:-1, :] -= x[1:, :]
        ax[:, 1:] -= x[:, :-1]
        ax[:, :-1] -= x[:, 1:]
        return ax * inside

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
    out[1:-1, 1:-1][inside] = x[inside]
    return out
