"""Step 2 of generation, painting: every planned defect made in its rectangle, and nowhere
else. MIDG on batches of context crops (`crops.py`): inpaint -> edges -> paint, the edges
from the edge block, a real defect's structure (`--edges library`, matched placement) or a
user's `--shape`; copy-paste and Poisson copy-paste from the real defect library.
A painted pixel goes back only inside its rectangle, in the surface's own levels where it
has two (`levels.py`)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from midg.datasets.errors import DatasetError
from midg.datasets.images import read_mask

from .boxes import changed_pixels, drop_small_components
from .copypaste import mask_alpha, paste_defect, pick_entry
from .crops import change_patch, context_window, extract_crop, hole_mask, window_patch, window_pixels
from .outlines import SHADING_FLOOR, deform_structure
from .generate_config import STRUCTURE_FILL, GenerateConfig
from .levels import snap_to_levels
from .placement import dihedral
from .planning import Defect, Plan

GENERATOR_FILE = "generator.safetensors"


def load_midg_generator(ckpt_dir: Path, device: str):
    """The trained generator (augment/checkpoint.py); a clear error for library-only folders."""
    if not (ckpt_dir / GENERATOR_FILE).is_file():
        raise DatasetError(ckpt_dir / GENERATOR_FILE, "missing: this folder has no trained generator "
                           "(a library-only folder works with --method copypaste or poisson; train one with `midg generator train`)")
    from .checkpoint import load_generator

    return load_generator(ckpt_dir, device=device)


def read_shape(path: str | Path) -> np.ndarray:
    """A user's shape image as HxW uint8 0/1 (the bright side of its mid-grey)."""
    m = read_mask(path)
    if m.max() == m.min():
        raise DatasetError(path, "shape image is uniform: draw the shape bright on a dark background")
    return (m > (int(m.max()) + int(m.min())) / 2).astype(np.uint8)


# ---------------------------------------------------------------- edge maps


def _hole_box(hole: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(hole[0] > 0.5)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _outline(mask: np.ndarray) -> np.ndarray:
    inner = cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask & (1 - inner)


def shape_edges(shape: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """1xSxS float32: the shape resized into the hole, filled (the structure the defect
    module reads is where the surface changes; a drawn closed outline is filled too)."""
    x1, y1, x2, y2 = _hole_box(hole)
    mask = cv2.resize(shape, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = mask.astype(np.uint8).copy()
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    out = np.zeros(hole.shape, np.float32)
    out[0, y1:y2, x1:x2] = filled
    return out


def library_edges(rng: np.random.Generator, edges: np.ndarray, hole: np.ndarray,
                  shading: np.ndarray | None = None, fill: tuple[float, float] = STRUCTURE_FILL) -> np.ndarray:
    """1xSxS float32: a real edge map, randomly flipped, rotated by 90° steps and rescaled
    (its sides a share of the hole's drawn from `fill`), at a random place inside the hole. With `shading` (an outline's
    shading map, the same size as `edges`) the map carries it: the shading inside the edge
    map's cover, at least outlines.SHADING_FLOOR (the same draws either way)."""
    flip_h, flip_v, rot = rng.integers(0, 2), rng.integers(0, 2), int(rng.integers(0, 4))
    scale = rng.uniform(*fill)
    ox, oy = rng.random(2)

    def oriented(a: np.ndarray) -> np.ndarray:
        a = a[:, ::-1] if flip_h else a
        a = a[::-1] if flip_v else a
        return np.ascontiguousarray(np.rot90(a, rot))

    e = oriented(edges)
    x1, y1, x2, y2 = _hole_box(hole)
    w, h = max(1, round((x2 - x1) * scale)), max(1, round((y2 - y1) * scale))
    # area resampling keeps thin lines when shrinking; any coverage counts as edge
    e = (cv2.resize(e.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.2).astype(np.float32)
    if shading is not None:
        values = cv2.resize(oriented(shading).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        e = np.where(e > 0, np.maximum(values, SHADING_FLOOR), 0.0).astype(np.float32)
    px, py = x1 + int(ox * (x2 - x1 - w)), y1 + int(oy * (y2 - y1 - h))
    out = np.zeros(hole.shape, np.float32)
    out[0, py:py + h, px:px + w] = e
    return out


def placed_edges(library, index: int, transform: int, box, window, size: int) -> np.ndarray:
    """1xSxS float32: library entry `index`'s structure in orientation `transform`, covering
    `box` exactly (the entry's real box where matched placement put it), in the window
    resized to S (area resampling, any coverage counts, as `library_edges`)."""
    edges = library.entry(index)[2]
    bh, bw = (int(v) for v in library.box_hw[index])
    if edges.shape != (bh, bw):
        edges = cv2.resize(np.ascontiguousarray(edges), (bw, bh), interpolation=cv2.INTER_NEAREST)
    edges = dihedral(edges, transform).astype(np.float32)
    x1, y1, x2, y2 = box
    wx1, wy1, wx2, _ = window
    if edges.shape != (y2 - y1, x2 - x1):
        raise ValueError(f"box {list(box)} is not library entry {index}'s box {[bw, bh]} in orientation {transform}")
    side = wx2 - wx1
    canvas = np.zeros((side, side), np.float32)
    canvas[y1 - wy1:y2 - wy1, x1 - wx1:x2 - wx1] = edges
    if side != size:
        canvas = (cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA) > 0.2).astype(np.float32)
    return canvas[None]


# ---------------------------------------------------------------- MIDG


def _forward_padded(fn, batch_size: int, *tensors):
    """fn(*tensors) in batches of exactly `batch_size` rows (the last one zero-padded):
    every forward has the same shape, so a crop's output never depends on its neighbours."""
    import torch

    n = tensors[0].shape[0]
    outs = []
    for s in range(0, n, batch_size):
        parts = [t[s:s + batch_size] for t in tensors]
        pad = batch_size - parts[0].shape[0]
        if pad:
            parts = [torch.cat([p, p.new_zeros((pad, *p.shape[1:]))]) for p in parts]
        outs.append(fn(*parts)[: batch_size - pad])
    return torch.cat(outs)


def midg_paint(todo: list[tuple[Plan, Defect]], generator, cfg: GenerateConfig, class_index: dict[str, int],
                library, shape: np.ndarray | None, device: str, gen_cfg: dict) -> None:
    """Paint every (plan, defect) of `todo` into plan.result, inside the defect's rectangle only."""
    import torch

    size, context, min_window = int(gen_cfg["crop_size"]), float(gen_cfg.get("context", 2.0)), int(gen_cfg.get("min_window", 32))
    # generators trained before outline shading (no such key) were taught the filled outline
    by_shading = (gen_cfg.get("generator") or {}).get("outline_structure", "filled") == "shading"
    for plan, d in todo:
        # a sampled real defect: the painting sees its own box as the hole, at the scale training
        # showed it (a tight real box); the rectangle's ring around it is the untouched surroundings
        own = d.entry_box if d.entry is None and d.entry_box is not None else d.rect
        d.window = context_window(own, plan.image.shape[:2], context, min_window, native=size)
        if not _contains(d.window, d.rect):  # (a tiny box at the image border)
            own, d.window = d.rect, context_window(d.rect, plan.image.shape[:2], context, min_window, native=size)
        d.crop = extract_crop(plan.image, d.window, size)
        d.hole = hole_mask(own, d.window, size)
        if d.edges == "shape":
            d.edge_map = shape_edges(shape, d.hole)
        elif d.edges == "library" and d.entry is not None:  # matched placement: the entry's own structure, on its place
            d.edge_map = placed_edges(library, d.entry, d.transform, d.entry_box, d.window, size)
        elif d.edges == "library":
            idx = pick_entry(plan.rng, library, class_index[d.cls])
            structure, shading = library.entry(idx)[2], None
            if library.masked[idx]:  # an annotated outline: a new shape from it (with its shading, if painted from it)
                shading = library.shading_of(idx) if by_shading else None
                structure, shading = deform_structure(structure, shading, plan.rng)
            d.edge_map = library_edges(plan.rng, structure, d.hole, shading, tuple(cfg.structure_fill))
    if not todo:
        return
    crops = torch.from_numpy(np.stack([d.crop for _, d in todo])).to(device)
    holes = torch.from_numpy(np.stack([d.hole for _, d in todo])).to(device)
    class_ids = torch.tensor([class_index[d.cls] for _, d in todo], dtype=torch.long, device=device)
    with torch.inference_mode():
        if cfg.background == "inpainted":  # a pseudo-normal (erases what was there), as for unpaired training
            background = _forward_padded(generator.inpaint, cfg.batch_size, crops, holes)
        else:  # the real normal crop: the defect lines up with the real traces
            background = crops
        edges = torch.zeros_like(holes)
        gen_rows = [i for i, (_, d) in enumerate(todo) if d.edges == "generated"]
        for i, (_, d) in enumerate(todo):
            if d.edges != "generated":
                edges[i] = torch.from_numpy(d.edge_map).to(device)
        if gen_rows:
            _generated_edges(generator, background, holes, class_ids, [todo[i][1] for i in gen_rows],
                             gen_rows, edges, cfg.batch_size)
        painted = _forward_padded(lambda a, b, c, e: generator.paint(a, b, c, e), cfg.batch_size,
                                  background, edges, holes, class_ids)
    painted_np = painted.float().cpu().numpy()
    edges_np = edges.float().cpu().numpy()
    for i, (plan, d) in enumerate(todo):
        d.structure = edges_np[i]
        _paste(plan, painted_np[i], d, cfg)


def _contains(window: tuple[int, int, int, int], rect: tuple[int, int, int, int]) -> bool:
    return window[0] <= rect[0] and window[1] <= rect[1] and rect[2] <= window[2] and rect[3] <= window[3]


def _generated_edges(generator, background, holes, class_ids, defects: list[Defect], rows: list[int], edges,
                     batch_size: int) -> None:
    """Edge maps of `rows`, each defect's noise from its own seed (so a crop's edges never
    depend on which image or batch it shares). Generators without a reachable edge network
    (MIDGGenerator.nets / noise_channels) get one draw_edges call per defect."""
    import torch

    nets, noise_channels = getattr(generator, "nets", None), getattr(generator, "noise_channels", None)
    if not isinstance(nets, dict) or "edge" not in nets or noise_channels is None:
        for d, r in zip(defects, rows):
            g = torch.Generator(device="cpu").manual_seed(d.torch_seed)
            edges[r:r + 1] = generator.draw_edges(background[r:r + 1], holes[r:r + 1], class_ids[r:r + 1], generator=g)
        return
    device = background.device
    idx = torch.tensor(rows, dtype=torch.long, device=device)
    noise = torch.cat([torch.randn((1, noise_channels, *holes.shape[-2:]),
                                   generator=torch.Generator(device="cpu").manual_seed(d.torch_seed))
                       for d in defects]).to(device)
    net = nets["edge"]

    def run(inp, hole, cls, z):
        return torch.sigmoid(net(inpainted=inp, hole=hole, class_ids=cls, noise=z)) * hole

    edges[idx] = _forward_padded(run, batch_size, background[idx], holes[idx], class_ids[idx], noise)


def _paste(plan: Plan, painted: np.ndarray, d: Defect, cfg: GenerateConfig) -> None:
    """Write the painted crop into d.rect of plan.result, in place (nothing outside the rectangle).

    Two-level surfaces (plan.levels): the painted pixels are snapped to the surface's own
    levels. Otherwise a pixel takes the painted value where the painting changed it (the
    one definition of "changed", boxes.py), blended in over its last `cfg.edge_feather` px
    (0: a hard mask), and stays the normal's elsewhere.
    """
    wx1, wy1, wx2, wy2 = d.window
    x1, y1, x2, y2 = d.rect
    side = wx2 - wx1
    local = (x1 - wx1, y1 - wy1, x2 - wx1, y2 - wy1)  # the rectangle in window coordinates
    normal_win = window_pixels(plan.image, d.window)
    base = plan.image[y1:y2, x1:x2]
    allowed = _near_structure(d, side, local, cfg.structure_margin)
    if plan.levels is not None:
        snapped = snap_to_levels(normal_win, window_patch(painted, side), local, plan.levels)
        if allowed is not None:
            snapped = np.where(allowed[..., None] if snapped.ndim == 3 else allowed, snapped, base)
        plan.result[y1:y2, x1:x2] = snapped
        return
    painted_win = change_patch(painted, d.crop, normal_win) if cfg.resample == "change" else window_patch(painted, side)
    rect_painted = painted_win[local[1]:local[3], local[0]:local[2]]
    if cfg.composite == "rectangle":
        plan.result[y1:y2, x1:x2] = rect_painted
        return
    if cfg.colour == "surface" and base.ndim == 3:
        rect_painted = surface_colour(base, rect_painted)
    cover = _structure_cover(d, side, local) if cfg.composite == "structure" else None
    if cover is not None:  # the real outline decides what changes, blended in over its last pixels
        alpha = mask_alpha(cover, max(cfg.edge_feather, 1))
        alpha = alpha[..., None] if base.ndim == 3 else alpha
        mixed = base.astype(np.float32) + alpha * (rect_painted.astype(np.float32) - base.astype(np.float32))
        plan.result[y1:y2, x1:x2] = np.clip(np.rint(mixed), 0, 255).astype(base.dtype)
        return
    h, w = base.shape[:2]
    changed = drop_small_components(changed_pixels(base, rect_painted, (0, 0, w, h), cfg.change_threshold)) > 0
    if allowed is not None:
        changed &= allowed
    if cfg.edge_feather > 0:  # blended in over the edge's last pixels, as copy-paste's masks are
        alpha = mask_alpha(changed, cfg.edge_feather)
        alpha = alpha[..., None] if base.ndim == 3 else alpha
        mixed = base.astype(np.float32) + alpha * (rect_painted.astype(np.float32) - base.astype(np.float32))
        plan.result[y1:y2, x1:x2] = np.clip(np.rint(mixed), 0, 255).astype(base.dtype)
        return
    plan.result[y1:y2, x1:x2] = np.where(changed[..., None] if base.ndim == 3 else changed, rect_painted, base)


def surface_colour(base: np.ndarray, painted: np.ndarray) -> np.ndarray:
    """HxWx3 uint8: the painted brightness on the canvas' colour: each canvas pixel scaled by
    the painted luma over its own (Rec. 601 weights), so the hue stays the surface's."""
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    b = base.astype(np.float32)
    ratio = (painted.astype(np.float32) @ weights + 1.0) / (b @ weights + 1.0)
    return np.clip(np.rint(b * ratio[..., None]), 0, 255).astype(base.dtype)


def _structure_cover(d: Defect, side: int, local: tuple[int, int, int, int]) -> np.ndarray | None:
    """HxW uint8 0/1 over the rectangle: the cover of the structure the defect was painted
    from, resized to the window's native size bilinearly before the cut (a smooth outline,
    not the crop's pixel steps). None: a generated structure or an empty map (the painting's
    own change decides, as composite defect)."""
    if d.structure is None or d.edges == "generated":
        return None
    s = (d.structure[0] > 0).astype(np.float32)
    if s.shape[0] < side:  # a 2x bilinear resize cut at 0.5 is the nearest one: blur over a crop pixel first
        s = cv2.GaussianBlur(cv2.resize(s, (side, side), interpolation=cv2.INTER_LINEAR), (0, 0), 0.5 * side / s.shape[0])
    elif s.shape[0] > side:
        s = cv2.resize(s, (side, side), interpolation=cv2.INTER_AREA)
    lx1, ly1, lx2, ly2 = local
    cover = (s[ly1:ly2, lx1:lx2] >= 0.5).astype(np.uint8)
    return cover if cover.any() else None


def _near_structure(d: Defect, side: int, local: tuple[int, int, int, int], margin: int | None) -> np.ndarray | None:
    """HxW bool over the rectangle: within `margin` px of the structure the defect was painted
    from (its edge map, back at the window's native size). None: no limit (margin None, a
    generated structure, an empty map)."""
    if margin is None or d.structure is None or d.edges == "generated":
        return None
    s = d.structure[0]
    if s.shape[0] != side:
        s = cv2.resize(s, (side, side), interpolation=cv2.INTER_LINEAR)
    near = (s > 0.5).astype(np.uint8)
    if not near.any():  # nothing drawn: the painting had no structure to follow
        return None
    if margin > 0:
        near = cv2.dilate(near, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1)))
    lx1, ly1, lx2, ly2 = local
    return near[ly1:ly2, lx1:lx2] > 0


# ---------------------------------------------------------------- copy-paste


def copypaste_paint(todo: list[tuple[Plan, Defect]], library, class_index: dict[str, int], blend: str) -> None:
    for plan, d in todo:
        idx = pick_entry(plan.rng, library, class_index[d.cls])  # drawn always: the stream does not depend on placement
        if d.entry is not None:  # matched placement: the entry whose surface this place fits, in its orientation
            idx = d.entry
        into = d.entry_box if d.entry_box is not None else d.rect  # the defect's box, inside its padded rect
        x1, y1, x2, y2 = into
        plan.result[y1:y2, x1:x2] = paste_defect(plan.image, into, library, idx, plan.rng, blend,
                                                 transform=d.transform if d.entry is not None else None)[y1:y2, x1:x2]
