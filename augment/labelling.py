"""Step 3 of generation, labelling: each painted defect's box from what it changed
(`boxes.derive_box`, grown by the real labels' margin), every pixel of its rectangle outside
the box put back, and a defect that changed too little painted again (new noise, a new
library entry, a new place) before it is left out and counted."""

from __future__ import annotations

from .boxes import derive_box, fade_inside, restore_outside
from .generate_config import GenerateConfig
from .planning import Defect, Plan, place


def paint_plans(plans: list[Plan], cfg: GenerateConfig, margins: dict, paint, stats: dict | None = None,
                library=None, class_index: dict[str, int] | None = None) -> None:
    """Paint every defect of `plans`; a defect that changed too little is redrawn (new
    noise, a new library entry and, unless a layout fixed it, a new place for its
    rectangle: the old place may hold nothing to change, such as copper on copper) up to
    cfg.redraws times, and only then left out (counted)."""
    for plan in plans:
        plan.result = plan.image.copy()
    todo = [(plan, d) for plan in plans for d in plan.defects]
    for attempt in range(cfg.redraws + 1):
        if not todo:
            break
        paint(todo)
        again = []
        for plan, d in todo:
            if not _settle(plan, d, cfg, margins) and attempt < cfg.redraws:
                d.torch_seed = int(plan.rng.integers(0, 2**63 - 1))
                if stats is not None:
                    others = [o.rect for o in plan.defects if o is not d] + plan.avoid
                    moved = place(plan.rng, plan.image, cfg, stats, [d.cls], 1, library, class_index, avoid=others)
                    if moved:
                        m = moved[0]
                        d.rect, d.entry, d.entry_box = tuple(int(v) for v in m.rect), m.entry, m.box
                        d.transform, d.mismatch = m.transform, m.mismatch
                again.append((plan, d))
        todo = again


def _settle(plan: Plan, d: Defect, cfg: GenerateConfig, margins: dict) -> bool:
    """Label one painted defect, or undo it: the box from what changed (boxes.derive_box),
    grown by the learned margin; every pixel of the rectangle outside the box goes back to
    the normal's, so nothing visible is ever left unlabelled. False: nothing usable was
    painted (the rectangle is restored, bit for bit)."""
    d.attempts += 1
    tight, d.n_changed = derive_box(plan.image, plan.result, d.rect, cfg.min_changed_px, cfg.change_threshold)
    fade = cfg.box_fade if plan.levels is None else 0
    if not fade or tight is None:
        restore_outside(plan.image, plan.result, d.rect, tight)
    if tight is None:
        return False
    if cfg.box_style == "rect" and d.entry_box is not None:  # the defect's own box (and all that changed)
        (bx1, by1, bx2, by2), (tx1, ty1, tx2, ty2) = d.entry_box, tight
        d.box = (min(bx1, tx1), min(by1, ty1), max(bx2, tx2), max(by2, ty2))
    elif cfg.box_style == "rect":
        d.box = tuple(d.rect)
    else:
        d.box = grow_box(tight, d.rect, margins.get(d.cls)) if cfg.box_style == "learned" else tight
    if fade:  # the halo beyond the tight box kept up to the label box, and faded out inside its edge
        restore_outside(plan.image, plan.result, d.rect, d.box)
        fade_inside(plan.image, plan.result, d.rect, d.box, fade)
    return True


def valid_margin(margin) -> list[float] | None:
    """A stats.json margin is four shares in [0, 0.45]; anything else is ignored."""
    if (isinstance(margin, list) and len(margin) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 0.45 for v in margin)):
        return [float(v) for v in margin]
    return None


def grow_box(box, rect, margin: list[float] | None):
    """A tight box grown so that it leaves the real boxes' median margin on each side
    (`margin`: shares [left, top, right, bottom] of the whole box), kept inside `rect`."""
    if not margin:
        return box
    l, t, r, b = margin
    x1, y1, x2, y2 = box
    if l + r >= 0.9 or t + b >= 0.9:
        return box
    w, h = (x2 - x1) / (1 - l - r), (y2 - y1) / (1 - t - b)
    rx1, ry1, rx2, ry2 = rect
    # whole pixels, as the real labels are: a fraction would not survive YOLO/COCO round trips byte for byte
    return (max(rx1, round(x1 - l * w)), max(ry1, round(y1 - t * h)), min(rx2, round(x2 + r * w)),
            min(ry2, round(y2 + b * h)))
