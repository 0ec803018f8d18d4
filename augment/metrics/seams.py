"""Seam score: is the border of a painted rectangle visible?

Mean absolute step across the rectangle's border divided by the mean step across lines
parallel to it 5-8 pixels outside. About 1: no visible border; well above 1: the paste
shows; below 1: a blurred edge. For real defects the rectangle is the box grown by a few
pixels (the reference).

    seam_score(gray, (x1, y1, x2, y2))          # gray: HxW float in [0, 1]
    seam_scores(dataset, defect_rects(dataset)[0])
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from midg.datasets.layout import Dataset

from .fidelity import _ImageCache, _int_rect


# Reference lines sit 5-8 px outside the rectangle (inside the crops' 8 px minimum margin):
# far enough that a soft edge a few pixels wide does not smooth the reference along with
# the border, which hid blurred seams when the lines were 2-4 px out.
SEAM_OFFSETS = (5, 6, 7, 8)


def seam_score(image: np.ndarray, rect: Sequence[int], offsets: Sequence[int] = SEAM_OFFSETS, eps: float = 2 / 255) -> float | None:
    """Mean |step| across the rectangle's border over the mean |step| across the parallel
    lines `offsets` pixels outside it (the surroundings). Lines inside are not used: the
    painted defect may rightly differ from what was there. Only sides with room count.
    Above 1: a visible edge; below 1: a soft (blurred) edge; |log| of it is the distance
    from seamless either way.

    `image`: HxW float in [0, 1]. eps keeps flat surroundings from dividing by zero: a
    border step must be well above noise to score high there. None if no side counts.
    """
    h, w = image.shape
    x1, y1, x2, y2 = (int(v) for v in rect)
    k = max(offsets)
    border, ref = [], []

    def vstep(col: int) -> np.ndarray:  # step between columns col-1 and col, over the rectangle's rows
        return np.abs(image[y1:y2, col] - image[y1:y2, col - 1])

    def hstep(row: int) -> np.ndarray:  # step between rows row-1 and row, over the rectangle's columns
        return np.abs(image[row, x1:x2] - image[row - 1, x1:x2])

    if x2 > x1 and y2 > y1:
        if x1 - k - 1 >= 0:
            border.append(vstep(x1))
            ref += [vstep(x1 - o) for o in offsets]
        if x2 + k < w:
            border.append(vstep(x2))
            ref += [vstep(x2 + o) for o in offsets]
        if y1 - k - 1 >= 0:
            border.append(hstep(y1))
            ref += [hstep(y1 - o) for o in offsets]
        if y2 + k < h:
            border.append(hstep(y2))
            ref += [hstep(y2 + o) for o in offsets]
    if not border:
        return None
    return float((np.concatenate(border).mean() + eps) / (np.concatenate(ref).mean() + eps))


def seam_scores(dataset: Dataset, rects: list[tuple[str, Sequence[float]]], *, max_rects: int = 0, seed: int = 0) -> dict[str, Any]:
    """Seam score summary over (image, rect) pairs of one dataset."""
    if max_rects and len(rects) > max_rects:
        keep = np.sort(np.random.default_rng(seed).choice(len(rects), max_rects, replace=False))
        rects = [rects[i] for i in keep]
    cache = _ImageCache()
    scores = []
    for image_rel, rect in sorted(rects, key=lambda r: r[0]):
        gray = cache.get(dataset.path(image_rel), 1).astype(np.float64) / 255.0
        s = seam_score(gray, _int_rect(rect, gray.shape[1], gray.shape[0]))
        if s is not None:
            scores.append(s)
    if not scores:
        return {"mean": None, "median": None, "share_over_2": None, "log_dev": None, "share_soft": None, "n": 0,
                "offsets": list(SEAM_OFFSETS)}
    # on near-binary images (DeepPCB) most borders cross flat copper or substrate and score
    # exactly 1, so the median stays 1: the mean and the share of clearly visible seams tell
    arr = np.asarray(scores)
    # a blurred seam scores below 1: the mean of |log score| (0 = seamless) and the share
    # under 1/2 catch it, where the mean alone would read a soft edge as "more seamless"
    log = np.abs(np.log(arr))
    return {"mean": float(arr.mean()), "median": float(np.median(arr)), "share_over_2": float((arr > 2).mean()),
            "log_dev": float(log.mean()), "share_soft": float((arr < 0.5).mean()), "n": len(scores),
            "offsets": list(SEAM_OFFSETS)}
