"""How a painted crop comes back into a photograph (painting._paste, off a two-level surface):
`composite: structure` takes the pixels under the real outline however faint the painted
change, with a smooth outline at native size; `resample: change` keeps the window's own
pixels wherever the painting changed nothing. Built on a constructed texture whose window
(64 px) is larger than the painted crop (32 px), as most BSData windows are."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from midg.augment.crops import change_patch, extract_crop, window_patch
from midg.augment.generate_config import GenerateConfig
from midg.augment.painting import _paste
from midg.augment.planning import Defect, Plan

S, SIDE = 32, 64
WINDOW = (0, 0, SIDE, SIDE)
RECT = (16, 16, 48, 48)


def texture(seed: int = 0) -> np.ndarray:
    """64x64x3 uint8 grain around mid-grey (detail a 2x down-and-up resize blurs away)."""
    rng = np.random.default_rng(seed)
    return np.clip(128 + rng.normal(0, 20, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)


def disk(radius: float) -> np.ndarray:
    """1xSxS float32: a filled disk at the crop's centre, 0.8 on it (a structure with shading)."""
    yy, xx = np.mgrid[:S, :S]
    return (0.8 * ((yy - S / 2 + 0.5) ** 2 + (xx - S / 2 + 0.5) ** 2 <= radius ** 2))[None].astype(np.float32)


def paste(image: np.ndarray, painted: np.ndarray, structure: np.ndarray, **cfg) -> np.ndarray:
    """The image after one defect's painted crop is pasted (the result plan.result holds)."""
    crop = extract_crop(image, WINDOW, S)
    d = Defect(cls="pit", rect=RECT, edges="library", window=WINDOW, crop=crop, structure=structure)
    plan = Plan(k=0, normal=Path("n.png"), normal_rel="n.png", image=image, defects=[d],
                rng=np.random.default_rng(0), result=image.copy())
    _paste(plan, painted, d, GenerateConfig(levels="off", **cfg))
    return plan.result


def darkened(image: np.ndarray, where: np.ndarray, by: float) -> np.ndarray:
    """The image's crop (CxSxS) darkened by `by` grey levels on `where` (SxS bool)."""
    crop = extract_crop(image, WINDOW, S)
    return np.clip(crop - (by / 255.0) * where[None], 0, 1).astype(np.float32)


def test_structure_composite_keeps_a_faint_pit_whole_and_nothing_beyond_its_outline():
    image = texture()
    structure = disk(6)
    hole = np.zeros((S, S), bool)
    hole[8:24, 8:24] = True
    # a faint pit (15 grey levels, under the change threshold of 24) and a fainter shadow over the whole hole
    painted = darkened(image, hole, 6) - (15 / 255.0) * (structure[0] > 0)[None]
    faint_cut = paste(image, painted, structure, composite="defect", resample="change")
    assert np.array_equal(faint_cut, image)  # the threshold drops the whole pit
    kept = paste(image, painted, structure, composite="structure", resample="change")
    moved = np.abs(kept.astype(int) - image.astype(int)).max(axis=2) > 0
    outline = cv2.resize((structure[0] > 0).astype(np.uint8), (SIDE, SIDE), interpolation=cv2.INTER_NEAREST)
    assert moved.any() and not (moved & ~cv2.dilate(outline, np.ones((3, 3), np.uint8)).astype(bool)).any()
    cover = moved  # nothing beyond the outline (give or take its smoothing), not the hole's shadow
    inner = cv2.erode(cover.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    drop = image.astype(int)[inner] - kept.astype(int)[inner]
    assert np.median(drop) >= 19  # the pit's 15 plus the shadow's 6, all of it (rounding aside)
    # the outline at native size is smooth, not the crop's 2x2 pixel blocks
    blocks = cover.reshape(S, 2, S, 2).transpose(0, 2, 1, 3).reshape(S, S, 4)
    assert (blocks.any(axis=2) & ~blocks.all(axis=2)).any()


def test_structure_composite_without_a_given_structure_falls_back_to_the_change():
    image = texture(1)
    pit = disk(6)[0] > 0
    painted = darkened(image, pit, 60)
    generated = paste(image, painted, np.zeros((1, S, S), np.float32), composite="structure")
    by_change = paste(image, painted, np.zeros((1, S, S), np.float32), composite="defect")
    assert np.array_equal(generated, by_change) and not np.array_equal(generated, image)


def test_change_resampling_keeps_the_windows_own_detail():
    image = texture(2)
    pit = disk(5)[0] > 0
    painted = darkened(image, pit, 60)
    native = paste(image, painted, disk(5), composite="rectangle", resample="change")
    blurred = paste(image, painted, disk(5), composite="rectangle", resample="image")
    x1, y1, x2, y2 = RECT
    near = cv2.dilate(cv2.resize(pit.astype(np.uint8), (SIDE, SIDE), interpolation=cv2.INTER_NEAREST),
                      np.ones((5, 5), np.uint8))[y1:y2, x1:x2] > 0
    far = ~near
    assert np.array_equal(native[y1:y2, x1:x2][far], image[y1:y2, x1:x2][far])  # the grain untouched
    assert np.abs(blurred[y1:y2, x1:x2][far].astype(int) - image[y1:y2, x1:x2][far].astype(int)).mean() > 5
    # the pit itself is darkened by what was painted in both
    centre = np.s_[30:34, 30:34]
    assert (image[centre].astype(int) - native[centre].astype(int)).mean() > 40


def test_change_patch_is_the_painted_crop_when_the_window_is_the_crops_size():
    image = texture(3)[:S, :S]
    crop = extract_crop(image, (0, 0, S, S), S)
    painted = np.clip(crop - 0.2 * (disk(5)[0] > 0)[None], 0, 1).astype(np.float32)
    assert np.array_equal(change_patch(painted, crop, image), window_patch(painted, S))


def test_box_fade_keeps_the_halo_inside_the_label_box_and_fades_it_at_its_edge():
    from midg.augment.labelling import _settle

    image = texture(4)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    r = np.hypot(yy - 32, xx - 32)
    drop = np.where(r <= 6, 60, np.where(r <= 12, 12, 0))  # a pit (60 levels) in a faint halo (12) to r = 12
    painted_image = np.clip(image.astype(int) - drop[..., None], 0, 255).astype(np.uint8)

    def settled(fade: int):
        d = Defect(cls="pit", rect=(8, 8, 56, 56), edges="library")
        plan = Plan(k=0, normal=Path("n.png"), normal_rel="n.png", image=image, defects=[d],
                    rng=np.random.default_rng(0), result=painted_image.copy())
        assert _settle(plan, d, GenerateConfig(levels="off", box_fade=fade), {"pit": [0.2, 0.2, 0.2, 0.2]})
        return plan.result, d.box

    cut, cut_box = settled(0)
    faded, box = settled(2)
    assert cut_box == box  # the labels do not move
    bx1, by1, bx2, by2 = box
    moved = np.abs(faded.astype(int) - image.astype(int)).max(axis=2) > 0
    inside = np.zeros(moved.shape, bool)
    inside[by1:by2, bx1:bx2] = True
    assert not (moved & ~inside).any()  # nothing outside the label box
    # the cut keeps only the tight box of the pit (r <= 6: 13 px), the halo beyond it put back
    # along a straight line; the fade keeps the halo up to the label box
    halo = (r > 7) & (r <= 9) & inside
    assert not (np.abs(cut.astype(int) - image.astype(int)).max(axis=2)[halo & (np.abs(yy - 32) > 6) & (np.abs(xx - 32) > 6)] > 0).any()
    assert (np.abs(faded.astype(int) - image.astype(int)).max(axis=2)[halo] >= 11).mean() > 0.9
    # and fades it out over the box's last rows: the border row keeps about a third of the change
    border = np.zeros(moved.shape, bool)
    border[by1:by2, bx1:bx2] = True
    border[by1 + 1:by2 - 1, bx1 + 1:bx2 - 1] = False
    change = np.abs(faded.astype(int) - image.astype(int)).max(axis=2)
    assert change[border & (r <= 12)].max() <= 5
    # the pit's core is whole in both
    assert (change[r <= 5] >= 55).all() and (np.abs(cut.astype(int) - image.astype(int)).max(axis=2)[r <= 5] >= 55).all()
