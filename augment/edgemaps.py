"""Real edge maps at crop scale: the edge block's training target and what the defect
module is taught to read. They are made by the very functions that make the defect
library's edges (augment/library.py: changed_mask, edge_map), so edges from the edge
block, from the library (`midg generate --edges library`) and from a user's shape
(`--shape`) all mean the same thing to the defect module:

    paired source (an aligned template, e.g. DeepPCB, demo boards):
        the filled mask of what the defect changed, |defect - template| > threshold
        (boxes.py's definition; specks dropped): where the surface changes
        (threshold: the library's, lowered to half the largest change on faint defects)
    unpaired:   Canny inside the hole (no template: the changed region is unknown)

Why the change mask rather than Canny of the whole defect crop: it is the defect's
shape and nothing else, which is exactly what shape control hands in (a drawn outline, a
library defect's outline); Canny of the crop would also draw every trace edge crossing
the hole, so an outline without those edges would read as "wipe the traces". The
texture (the inpainted crop) already carries the traces.

    edges = defect_edges(crop, hole, template_crop)   # CxSxS [0, 1] crops; 1xSxS hole
                                                      # → 1xSxS float32 {0, 1}, 0 outside the hole
"""

from __future__ import annotations

import numpy as np

from .crops import from_chw

MIN_CHANGE = 8  # grey levels: below this a template difference is noise, never a defect


def hole_bounds(hole: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(hole[0] > 0.5)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def defect_edges(crop: np.ndarray, hole: np.ndarray, template: np.ndarray | None = None) -> np.ndarray:
    """Edge map of the defect in a CxSxS [0, 1] crop, inside its hole (see module doc)."""
    from .library import CHANGE_THRESHOLD, changed_mask, edge_map  # the library owns the definition

    out = np.zeros(hole.shape, np.float32)
    bounds = hole_bounds(hole)
    if bounds is None:
        return out
    x1, y1, x2, y2 = bounds
    patch = from_chw(crop)[y1:y2, x1:x2]
    background = from_chw(template)[y1:y2, x1:x2] if template is not None else None
    threshold = CHANGE_THRESHOLD
    if background is not None:
        # Low-contrast boards (and thin defects after the crop's resize) change by less than
        # the library's fixed threshold; half the largest change still separates the defect
        # from sensor noise, where the fixed one would fall back to the whole box outline.
        max_diff = int(np.abs(patch.astype(np.int16) - background.astype(np.int16)).max())
        threshold = int(min(CHANGE_THRESHOLD, max(MIN_CHANGE, max_diff // 2)))
    mask = changed_mask(patch, background, threshold)
    out[0, y1:y2, x1:x2] = edge_map(patch, mask, template is not None)
    return out * (hole > 0.5)
