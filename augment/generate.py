"""The generation stage: paint new defects into normal images and label them.

    midg generate --checkpoint runs/gen --normals data/real --out data/synth --n-images 500 --seed 0
    midg generate --method copypaste --checkpoint runs/gen ...            # the baseline (the sampler's places)
    midg generate --method poisson --checkpoint runs/gen ...              # copy-paste, Poisson-blended
    midg generate ... --shape square.png | --edges library                # shape control
    midg generate ... --shard 0/4   (x4, then `midg data merge`)          # = the single run, byte for byte

    ds = generate_dataset("runs/gen", "data/real", "data/synth", n_images=500, seed=0)

Image k (k = 0..n_images-1) is made from normal k mod len(normals) (sorted by name) with
its own rng, np.random.default_rng([seed, k]): first the number of defects and their
rectangles (the sampler, `masks.py`, or matched placement, `placement.py`), then a
torch.Generator seeded from the same rng for the edge noise, then whatever the edge source
or copy-paste draws. Nothing depends on other images, so a shard (k = I mod N) writes
exactly the images of the single run; given one placement, the two methods see the same
rectangles (placement auto matches MIDG's and leaves copy-paste, the baseline, to the sampler).

MIDG on a batch of defect crops (context windows, `crops.py`): inpaint -> edges -> paint.
Each image's edge noise comes from that image's own generator; every network runs on
batches of exactly `batch_size` crops (the last one zero-padded), so a crop's result never
depends on which other crops share its batch (checked byte for byte by the shard tests). The painted crop is
pasted back inside the rectangle only: pixels outside every rectangle stay bit-identical.
With `composite="defect"` (default) only what the painting block added on top of the
inpainted background is blended into the normal image (a feathered mask of |painted -
inpainted|); the rest of the rectangle keeps the real normal pixels, so inpainting
residue does not become a cue a detector could learn, and boxes stay tight.
Labels: `boxes.derive_box` on (normal, generated); generations that changed almost
nothing are dropped (no box) and counted in meta.json["dropped"].
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import cv2
import numpy as np

from midg.datasets.boxes import Box
from midg.datasets.errors import ConfigError, DatasetError
from midg.datasets.images import is_image_file, read_image, read_mask
from midg.datasets.layout import Dataset, DatasetWriter
from midg.datasets.params import fill, section_config

from .boxes import MIN_CHANGED_PX, THRESHOLD, changed_pixels, derive_box, drop_small_components, restore_outside
from .copypaste import paste_defect, pick_entry
from .crops import context_window, extract_crop, hole_mask, window_patch, window_pixels
from .library import LIBRARY_FILE, as_channels, deform_mask, load_library, load_stats
from .masks import sample_rectangles
from .placement import PAD, Placed, dihedral, matched_rectangles
from .surface_placement import check_model, sample_surface_rectangles

CONFIG_FILE = "config.json"
GENERATOR_FILE = "generator.safetensors"
SOURCE = "midg-generate"
# Images are painted in chunks of up to this many batches of defects: only a chunk's last
# batch is padded, so bigger chunks waste less compute (and hold more crops in memory).
CHUNK_BATCHES = 4
PASTE_METHODS = ("copypaste", "poisson")  # methods that paste real defects from the library (no GAN)


@dataclass(frozen=True)
class GenerateConfig:
    n_images: int = 100  # synthetic images to write (all shards together)
    seed: int = 0  # image k uses np.random.default_rng([seed, k])
    method: Literal["midg", "copypaste", "poisson"] = "midg"  # how defect pixels are made (poisson: copy-paste, Poisson-blended)
    classes: list[str] | None = None  # defect classes to draw (None: every class with real examples)
    defects_per_image: tuple[int, int] | None = None  # inclusive range; None: the real images' counts (stats)
    edges: Literal["generated", "library", "shape"] = "generated"  # MIDG edge source (shape: --shape PNG)
    batch_size: int = 64  # crops per forward pass of the inpainting and painting blocks
    composite: Literal["defect", "rectangle"] = "defect"  # take only the pixels the painting changed, or the whole rectangle
    background: Literal["normal", "inpainted"] = "normal"  # paint on the real normal crop, or on the inpainted one (erases)
    levels: Literal["auto", "off"] = "auto"  # auto: on a two-level surface painted pixels take only its levels
    redraws: int = 3  # a defect that changed too little is drawn again this many times before it is left out
    change_threshold: int = THRESHOLD  # grey levels: a pixel counts as changed above this
    min_changed_px: int = MIN_CHANGED_PX  # fewer changed pixels: the defect is dropped (counted)
    # learned: the tight box of what changed, grown by the real boxes' median margin (stats box_margin);
    # rect: the rectangle itself, which the sampler drew from the real boxes' sizes and the defect was
    # painted into as real defects sit in their boxes; tight: what changed, nothing more
    box_style: Literal["learned", "rect", "tight"] = "learned"
    # conductor: the sampler places a rectangle where the class' share of conductor is typical (masks.py);
    # matched: where the normal's traces match the surface a real defect of the class sat on, that
    # defect's real box size and orientation kept (placement.py; its structure or pixels go there);
    # auto: matched for MIDG when its checkpoint has a library with paired (template) entries, else
    # conductor; copy-paste stays the common baseline (conductor) unless matched is asked for
    # surface: where the normal's surface looks like the real defects' surroundings (no template
    # needed: surface_placement.py, the stats' `surface` model); auto picks it for MIDG when the
    # real defects had no templates
    placement: Literal["auto", "conductor", "matched", "surface"] = "auto"
    # MIDG with a given structure (library, shape): a pixel farther than this (px) from it keeps the
    # normal's value, so the change is where the real shape says; None: anywhere in the rectangle.
    # A generated edge map is soft and approximate: there the painting block decides
    structure_margin: int | None = 2

    def __post_init__(self) -> None:
        lo, hi = self.defects_per_image or (1, 1)
        if not 1 <= lo <= hi:
            raise ConfigError(f"defects_per_image must be 1 <= lo <= hi, got {list(self.defects_per_image)}")
        if self.structure_margin is not None and self.structure_margin < 0:
            raise ConfigError(f"structure_margin must be at least 0 (or null: no limit), got {self.structure_margin}")
        if self.redraws < 0:
            raise ConfigError(f"redraws must be at least 0, got {self.redraws}")
        if self.n_images < 1 or self.batch_size < 1:
            raise ConfigError(f"n_images and batch_size must be at least 1, got {self.n_images}, {self.batch_size}")


def generate_config(params: dict[str, Any] | None, profile: str | None, **overrides: Any) -> GenerateConfig:
    """The profile's `generate` section, then `overrides` (CLI flags; None means unset)."""
    return section_config(GenerateConfig, params, profile, "generate", **overrides)


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


def parse_range(text: str) -> tuple[int, int] | None:
    """'1-3' -> (1, 3); '2' -> (2, 2); 'auto' -> None (the real images' counts)."""
    if text.strip().lower() == "auto":
        return None
    try:
        parts = [int(v) for v in text.split("-")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not 1 <= parts[0] <= parts[1]:
        raise ConfigError(f"--defects-per-image must look like LO-HI with 1 <= LO <= HI (e.g. 1-3), got {text!r}")
    return parts[0], parts[1]


# ---------------------------------------------------------------- inputs


def list_normals(normals: str | Path) -> tuple[Path, list[Path]]:
    """(folder, sorted image files): a folder of images, or a canonical dataset's normals/."""
    root = Path(normals)
    if (root / "data.yaml").is_file():
        folder = root / "normals"
        if not folder.is_dir():
            raise DatasetError(root, "this dataset has no normals/ folder: pass a folder of defect-free images")
    elif root.is_dir():
        folder = root
    else:
        raise DatasetError(root, "normals folder does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise DatasetError(folder, "no images in the normals folder")
    return folder, files


def read_config(ckpt_dir: Path) -> dict[str, Any]:
    path = ckpt_dir / CONFIG_FILE
    if not ckpt_dir.is_dir():
        raise DatasetError(ckpt_dir, "checkpoint folder does not exist")
    if not path.is_file():
        raise DatasetError(path, "missing: not a MIDG checkpoint (`midg generator train`) or library "
                                 "(`midg generator library`) folder")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DatasetError(path, f"not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(cfg, dict):
        raise DatasetError(path, "top level is not a JSON object")
    for key in ("classes", "channels", "crop_size"):
        if key not in cfg:
            raise DatasetError(path, f"lacks {key!r}")
    classes, size = cfg["classes"], cfg["crop_size"]
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes)):
        raise DatasetError(path, f"'classes' must be a non-empty list of class names, got {classes!r}")
    if cfg["channels"] not in (1, 3) or isinstance(cfg["channels"], bool):
        raise DatasetError(path, f"'channels' must be 1 or 3, got {cfg['channels']!r}")
    if not (isinstance(size, int) and not isinstance(size, bool) and 0 < size <= 4096):
        raise DatasetError(path, f"'crop_size' must be an integer 1..4096, got {size!r}")
    return cfg


def load_midg_generator(ckpt_dir: Path, device: str):
    """The trained generator (augment/checkpoint.py); a clear error for library-only folders."""
    if not (ckpt_dir / GENERATOR_FILE).is_file():
        raise DatasetError(ckpt_dir / GENERATOR_FILE, "missing: this folder has no trained generator "
                           "(a library-only folder works with --method copypaste or poisson; train one with `midg generator train`)")
    from .checkpoint import load_generator

    return load_generator(ckpt_dir, device=device)


def read_layout(path: str | Path, names: Sequence[str]) -> dict[str, list[tuple[str, tuple[int, int, int, int]]]]:
    """{normal file name: [(class, rect), ...]} from a layout JSON, every entry checked."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(path, "layout file does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DatasetError(path, f"not valid JSON ({exc})", line=getattr(exc, "lineno", None)) from None
    if not isinstance(doc, dict) or not doc:
        raise DatasetError(path, 'expected {"normal file name": [{"rect": [x1, y1, x2, y2], "class": name}, ...]}')
    layout = {}
    for fname, items in doc.items():
        if not isinstance(items, list):
            raise DatasetError(path, f"{fname}: expected a list of {{'rect', 'class'}} objects")
        parsed = []
        for j, item in enumerate(items):
            where = f"{fname}[{j}]"
            if not isinstance(item, dict) or set(item) != {"rect", "class"}:
                raise DatasetError(path, f"{where}: expected exactly the keys 'rect' and 'class', got {item!r}")
            cls, rect = item["class"], item["rect"]
            if cls not in names:
                raise DatasetError(path, f"{where}: unknown class {cls!r}; valid: {', '.join(names)}")
            if (not isinstance(rect, list) or len(rect) != 4
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in rect)):
                raise DatasetError(path, f"{where}: rect must be 4 integers [x1, y1, x2, y2], got {rect!r}")
            if rect[2] <= rect[0] or rect[3] <= rect[1] or rect[0] < 0 or rect[1] < 0:
                raise DatasetError(path, f"{where}: rect {rect} has no area or negative corners")
            parsed.append((cls, tuple(rect)))
        layout[fname] = parsed
    return layout


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


def library_edges(rng: np.random.Generator, edges: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """1xSxS float32: a real edge map, randomly flipped, rotated by 90° steps and rescaled
    (60-100 % of the hole), at a random place inside the hole."""
    flip_h, flip_v, rot = rng.integers(0, 2), rng.integers(0, 2), int(rng.integers(0, 4))
    scale = rng.uniform(0.6, 1.0)
    ox, oy = rng.random(2)
    e = edges[:, ::-1] if flip_h else edges
    e = e[::-1] if flip_v else e
    e = np.ascontiguousarray(np.rot90(e, rot))
    x1, y1, x2, y2 = _hole_box(hole)
    w, h = max(1, round((x2 - x1) * scale)), max(1, round((y2 - y1) * scale))
    # area resampling keeps thin lines when shrinking; any coverage counts as edge
    e = (cv2.resize(e.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.2).astype(np.float32)
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


# ---------------------------------------------------------------- one image's plan


@dataclass
class Defect:
    cls: str
    rect: tuple[int, int, int, int]
    edges: str  # generated | library | shape
    torch_seed: int = 0  # this attempt's edge noise (a redraw draws a new one from the image's rng)
    window: tuple[int, int, int, int] | None = None
    crop: np.ndarray | None = None  # CxSxS float32
    hole: np.ndarray | None = None  # 1xSxS float32
    edge_map: np.ndarray | None = None  # 1xSxS, when not generated
    structure: np.ndarray | None = None  # 1xSxS, the edge map the painting used (generated or not)
    box: tuple | None = None  # the label box once it succeeded
    n_changed: int = 0
    attempts: int = 0
    first_rect: tuple[int, int, int, int] | None = None  # the sampler's draw, before any redraw moved it
    entry: int | None = None  # matched placement: the library entry the place fits, in its orientation,
    entry_box: tuple[int, int, int, int] | None = None  # and its real box there (inside rect)
    transform: int = 0
    mismatch: float | None = None

    def __post_init__(self) -> None:
        if self.first_rect is None:
            self.first_rect = self.rect


@dataclass
class Plan:
    k: int
    normal: Path
    normal_rel: str
    image: np.ndarray
    defects: list[Defect]
    rng: np.random.Generator
    levels: "SurfaceLevels | None" = None
    result: np.ndarray | None = None


def _defect_count(rng: np.random.Generator, cfg: GenerateConfig, stats: dict) -> int:
    """Defects on one image: the configured range, or (None) the real images' own counts."""
    if cfg.defects_per_image is not None:
        lo, hi = cfg.defects_per_image
        return int(rng.integers(lo, hi + 1))
    hist = stats.get("defects_per_image")
    if not (isinstance(hist, list) and hist and all(isinstance(v, int) and v >= 0 for v in hist) and sum(hist)):
        return int(rng.integers(1, 4))  # a library from before the statistic: the old 1-3
    p = np.asarray(hist, float)
    return 1 + int(np.searchsorted(np.cumsum(p / p.sum()), rng.random(), side="right").clip(0, len(p) - 1))


def _place(rng: np.random.Generator, image: np.ndarray, cfg: GenerateConfig, stats: dict, classes: Sequence[str],
           n: int, library, class_index: dict[str, int], avoid: Sequence = ()) -> list[Placed]:
    """Where `n` new defects go: matched to real defects' surfaces, or by the sampler."""
    if cfg.placement == "matched":
        # an edge block's map (or a --shape) fills the whole rectangle: it gets the real box itself;
        # with 4 px more it drew into the surroundings (demo boards: CAS 0.60 -> 0.42)
        fills_rect = cfg.method == "midg" and cfg.edges in ("generated", "shape")
        return matched_rectangles(rng, image, stats, classes, n, library, class_index, avoid=avoid,
                                  pad=0 if fills_rect else PAD)
    if cfg.placement == "surface":
        return [Placed(cls, rect) for cls, rect in
                sample_surface_rectangles(rng, image, stats, stats["surface"], classes, n, avoid=avoid)]
    return [Placed(cls, rect) for cls, rect in sample_rectangles(rng, image, stats, classes, n, avoid=avoid)]


def _plan_image(k: int, normal: Path, folder: Path, cfg: GenerateConfig, classes: list[str], stats: dict,
                channels: int, layout: dict | None, library=None, class_index: dict[str, int] | None = None) -> Plan:
    rng = np.random.default_rng([cfg.seed, k])
    image = as_channels(read_image(normal), channels)
    h, w = image.shape[:2]
    if layout is not None:
        rects = list(layout[normal.name])
        for cls, (x1, y1, x2, y2) in rects:
            if x2 > w or y2 > h:
                raise DatasetError(normal, f"layout rect {[x1, y1, x2, y2]} reaches outside the {w}x{h} image")
    else:
        n = _defect_count(rng, cfg, stats)
        rects = _place(rng, image, cfg, stats, classes, n, library, class_index)
    edge_src = "library" if cfg.method in PASTE_METHODS else cfg.edges
    rects = [r if isinstance(r, Placed) else Placed(r[0], r[1]) for r in rects]  # a layout's (class, rect) pairs
    defects = [Defect(r.cls, tuple(int(v) for v in r.rect), edge_src, int(rng.integers(0, 2**63 - 1)),
                      entry=r.entry, entry_box=r.box, transform=r.transform, mismatch=r.mismatch) for r in rects]
    levels = surface_levels(image) if cfg.levels == "auto" else None
    return Plan(k, normal, normal.relative_to(folder).as_posix(), image, defects, rng, levels)


# ---------------------------------------------------------------- the surface's own levels


@dataclass(frozen=True)
class SurfaceLevels:
    """A two-level surface (bare substrate and conductor, as DeepPCB's binarised scans):
    the grey threshold between the levels and each level's typical value."""
    threshold: float
    values: tuple[np.ndarray, np.ndarray]  # [dark, bright] pixel values (C,)


def surface_levels(image: np.ndarray, min_gap: float = 60.0, max_spread: float = 0.08) -> SurfaceLevels | None:
    """The image's two levels when it has just two (Otsu split, both sides tight around
    their median: under `max_spread` of the pixels farther than a quarter of the gap from
    it); None for a textured or many-level surface."""
    g = image if image.ndim == 2 else image.mean(axis=2)
    g8 = np.clip(np.rint(g), 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(g8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = g8 > t
    if bright.all() or not bright.any():
        return None
    lo, hi = float(np.median(g8[~bright])), float(np.median(g8[bright]))
    # Otsu's threshold is any value of the empty gap between two clean levels: use its middle
    t = (lo + hi) / 2
    bright = g8 > t
    gap = hi - lo
    if gap < min_gap:
        return None
    far = np.where(bright, np.abs(g8 - hi), np.abs(g8 - lo)) > gap / 4
    if far.mean() > max_spread:
        return None
    flat = image.reshape(-1, 1 if image.ndim == 2 else image.shape[2])
    values = (np.median(flat[~bright.reshape(-1)], axis=0), np.median(flat[bright.reshape(-1)], axis=0))
    return SurfaceLevels(float(t), (values[0].astype(np.uint8), values[1].astype(np.uint8)))


def snap_to_levels(normal_win: np.ndarray, painted_win: np.ndarray, local: tuple[int, int, int, int],
                   levels: SurfaceLevels) -> np.ndarray:
    """The rectangle (window coordinates `local`) of a two-level surface after painting:
    a pixel the painting moved to the other level takes the value of the nearest normal
    pixel of that level (the surface's own texture), every other pixel stays the normal's."""
    def level(img):
        g = img if img.ndim == 2 else img.mean(axis=2)
        return g > levels.threshold

    lx1, ly1, lx2, ly2 = local
    before, after = level(normal_win), level(painted_win[ly1:ly2, lx1:lx2])
    out = normal_win[ly1:ly2, lx1:lx2].copy()
    flip = before[ly1:ly2, lx1:lx2] != after
    for target in (False, True):
        todo = flip & (after == target)
        if not todo.any():
            continue
        source = before == target
        if source.any():
            # nearest pixel of the target level in the window (labels index its pixels row-major)
            _, labels = cv2.distanceTransformWithLabels((~source).astype(np.uint8), cv2.DIST_L2, 5,
                                                        labelType=cv2.DIST_LABEL_PIXEL)
            ys, xs = np.nonzero(source)
            lab = labels[ly1:ly2, lx1:lx2][todo] - 1
            out[todo] = normal_win[ys[lab], xs[lab]]
        else:
            out[todo] = levels.values[int(target)] if out.ndim == 3 else levels.values[int(target)][0]
    return out


# ---------------------------------------------------------------- the generator passes


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


def _midg_paint(todo: list[tuple[Plan, Defect]], generator, cfg: GenerateConfig, class_index: dict[str, int],
                library, shape: np.ndarray | None, device: str, gen_cfg: dict) -> None:
    """Paint every (plan, defect) of `todo` into plan.result, inside the defect's rectangle only."""
    import torch

    size, context, min_window = int(gen_cfg["crop_size"]), float(gen_cfg.get("context", 2.0)), int(gen_cfg.get("min_window", 32))
    for plan, d in todo:
        d.window = context_window(d.rect, plan.image.shape[:2], context, min_window, native=size)
        d.crop = extract_crop(plan.image, d.window, size)
        d.hole = hole_mask(d.rect, d.window, size)
        if d.edges == "shape":
            d.edge_map = shape_edges(shape, d.hole)
        elif d.edges == "library" and d.entry is not None:  # matched placement: the entry's own structure, on its place
            d.edge_map = placed_edges(library, d.entry, d.transform, d.entry_box, d.window, size)
        elif d.edges == "library":
            idx = pick_entry(plan.rng, library, class_index[d.cls])
            structure = library.entry(idx)[2]
            if library.shaped is not None and library.shaped[idx]:  # an annotated outline: a new shape from it
                structure = deform_mask(structure, plan.rng)
            d.edge_map = library_edges(plan.rng, structure, d.hole)
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
    one definition of "changed", boxes.py) and stays the normal's elsewhere: a hard mask,
    no feathered grey ring.
    """
    wx1, wy1, wx2, wy2 = d.window
    x1, y1, x2, y2 = d.rect
    side = wx2 - wx1
    local = (x1 - wx1, y1 - wy1, x2 - wx1, y2 - wy1)  # the rectangle in window coordinates
    painted_win = window_patch(painted, side)
    normal_win = window_pixels(plan.image, d.window)
    base = plan.image[y1:y2, x1:x2]
    allowed = _near_structure(d, side, local, cfg.structure_margin)
    if plan.levels is not None:
        snapped = snap_to_levels(normal_win, painted_win, local, plan.levels)
        if allowed is not None:
            snapped = np.where(allowed[..., None] if snapped.ndim == 3 else allowed, snapped, base)
        plan.result[y1:y2, x1:x2] = snapped
        return
    rect_painted = painted_win[local[1]:local[3], local[0]:local[2]]
    if cfg.composite == "rectangle":
        plan.result[y1:y2, x1:x2] = rect_painted
        return
    h, w = base.shape[:2]
    changed = drop_small_components(changed_pixels(base, rect_painted, (0, 0, w, h), cfg.change_threshold)) > 0
    if allowed is not None:
        changed &= allowed
    plan.result[y1:y2, x1:x2] = np.where(changed[..., None] if base.ndim == 3 else changed, rect_painted, base)


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


def _copypaste_paint(todo: list[tuple[Plan, Defect]], library, class_index: dict[str, int], blend: str) -> None:
    for plan, d in todo:
        idx = pick_entry(plan.rng, library, class_index[d.cls])  # drawn always: the stream does not depend on placement
        if d.entry is not None:  # matched placement: the entry whose surface this place fits, in its orientation
            idx = d.entry
        into = d.entry_box if d.entry is not None else d.rect  # matched: the real box, inside its padded rect
        x1, y1, x2, y2 = into
        plan.result[y1:y2, x1:x2] = paste_defect(plan.image, into, library, idx, plan.rng, blend,
                                                 transform=d.transform if d.entry is not None else None)[y1:y2, x1:x2]


def _settle(plan: Plan, d: Defect, cfg: GenerateConfig, margins: dict) -> bool:
    """Label one painted defect, or undo it: the box from what changed (boxes.derive_box),
    grown by the learned margin; every pixel of the rectangle outside the box goes back to
    the normal's, so nothing visible is ever left unlabelled. False: nothing usable was
    painted (the rectangle is restored, bit for bit)."""
    d.attempts += 1
    tight, d.n_changed = derive_box(plan.image, plan.result, d.rect, cfg.min_changed_px, cfg.change_threshold)
    restore_outside(plan.image, plan.result, d.rect, tight)
    if tight is None:
        return False
    if cfg.box_style == "rect" and d.entry_box is not None:  # matched: the real box (and all that changed)
        (bx1, by1, bx2, by2), (tx1, ty1, tx2, ty2) = d.entry_box, tight
        d.box = (min(bx1, tx1), min(by1, ty1), max(bx2, tx2), max(by2, ty2))
    elif cfg.box_style == "rect":
        d.box = tuple(d.rect)
    else:
        d.box = grow_box(tight, d.rect, margins.get(d.cls)) if cfg.box_style == "learned" else tight
    return True


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
                    others = [o.rect for o in plan.defects if o is not d]
                    moved = _place(plan.rng, plan.image, cfg, stats, [d.cls], 1, library, class_index, avoid=others)
                    if moved:
                        m = moved[0]
                        d.rect, d.entry, d.entry_box = tuple(int(v) for v in m.rect), m.entry, m.box
                        d.transform, d.mismatch = m.transform, m.mismatch
                again.append((plan, d))
        todo = again


# ---------------------------------------------------------------- the stage


def generate_dataset(checkpoint: str | Path, normals: str | Path, out: str | Path, n_images: int, seed: int,
                     method: str = "midg", classes: Sequence[str] | None = None,
                     defects_per_image: tuple[int, int] | None = None, shape: str | Path | None = None,
                     edges: str = "generated", shard: tuple[int, int] = (0, 1), layout: str | Path | None = None,
                     device: str = "cpu", batch_size: int = 64, progress: bool = True,
                     config: GenerateConfig | None = None) -> Dataset:
    """Write a synthetic dataset (split "train") to `out`; see the module docstring.

    `config` (from params.yaml) supplies the remaining knobs (composite, thresholds);
    the explicit arguments win over it.
    """
    base = config or GenerateConfig()
    cfg = dataclasses.replace(
        base, n_images=n_images, seed=seed, method=method, classes=list(classes) if classes else None,
        defects_per_image=tuple(defects_per_image) if defects_per_image else None, edges="shape" if shape is not None else edges,
        batch_size=batch_size)
    cfg = fill(GenerateConfig, dataclasses.asdict(cfg), "generate")  # re-validates choices and ranges
    i_shard, n_shard = shard
    if not (n_shard >= 1 and 0 <= i_shard < n_shard):
        raise ConfigError(f"shard (I, N) needs 0 <= I < N, got {shard}")
    if cfg.method in PASTE_METHODS and shape is not None:
        raise ConfigError("--shape shapes the MIDG edge map; copy-paste pastes real defects as they are")
    if cfg.edges == "shape" and shape is None:
        raise ConfigError("edges 'shape' needs a shape image (--shape PNG)")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device must be cpu or cuda, got {device!r}")

    from .checkpoint import resolve_checkpoint

    ckpt = resolve_checkpoint(checkpoint)  # a folder, or a shipped generator by name (deeppcb)
    gen_cfg = read_config(ckpt)
    names = list(gen_cfg["classes"])
    stats = load_stats(ckpt)
    margins = {n: _valid_margin(per.get("box_margin")) for n, per in stats["per_class"].items()}
    generator = None
    if cfg.method == "midg":
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ConfigError("device 'cuda' asked for, but torch sees no CUDA device here")
        generator = load_midg_generator(ckpt, device)
        gen_cfg = {**gen_cfg, **getattr(generator, "config", {})}
    wants_library = cfg.method in PASTE_METHODS or cfg.edges == "library" or cfg.placement == "matched"
    has_library = (Path(ckpt) / LIBRARY_FILE).is_file()
    library = load_library(ckpt) if wants_library or (cfg.placement == "auto" and has_library) else None
    if library is not None and library.names != names:
        raise DatasetError(ckpt / LIBRARY_FILE, f"classes {library.names} differ from config.json's {names}")
    if cfg.placement == "auto":  # resolved once, recorded in meta.json
        matched = cfg.method == "midg" and library is not None and bool(np.asarray(library.paired).any())
        surface = cfg.method == "midg" and not matched and check_model(stats.get("surface"))
        cfg = dataclasses.replace(cfg, placement="matched" if matched else "surface" if surface else "conductor")
    if cfg.placement == "surface" and not check_model(stats.get("surface")):
        raise ConfigError("placement 'surface' needs the stats' surface model (fitted for sources without "
                          "templates by `midg generator train` / `midg generator library`)")
    if cfg.classes is None:
        chosen = [n for n in names if stats["per_class"].get(n, {}).get("count", 0) > 0]
    else:
        unknown = [c for c in cfg.classes if c not in names]
        if unknown:
            raise ConfigError(f"unknown class(es) {unknown}; valid: {', '.join(names)}")
        chosen = list(dict.fromkeys(cfg.classes))
    if library is not None and (cfg.method in PASTE_METHODS or cfg.edges == "library"):
        # (matched placement alone does not need every class: one without entries is placed by the sampler)
        empty = [c for c in chosen if len(library.indices_of(names.index(c))) == 0]
        if empty:
            raise ConfigError(f"the defect library has no real example of {empty}: leave them out with --classes")
    if not chosen:
        raise ConfigError("no class to generate: the checkpoint's stats hold no real defect")
    class_index = {n: i for i, n in enumerate(names)}
    channels = int(gen_cfg["channels"])
    shape_mask = read_shape(shape) if shape is not None else None

    folder, normal_files = list_normals(normals)
    layout_rects = None
    if layout is not None:
        layout_rects = read_layout(layout, names)
        by_name = {p.name: p for p in normal_files}
        missing = [n for n in layout_rects if n not in by_name]
        if missing:
            raise DatasetError(layout, f"names {missing[:5]} are not images of {folder}")
        normal_files = [by_name[n] for n in sorted(layout_rects)]

    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}
    params.update(classes=chosen, shape=str(shape) if shape is not None else None,
                  layout=str(layout) if layout is not None else None, shard=[i_shard, n_shard], device=device)
    ks = list(range(i_shard, cfg.n_images, n_shard))
    records: list[dict[str, Any]] = []
    dropped = 0
    writer = DatasetWriter(Path(out), names, source=SOURCE, seed=cfg.seed, params=params)
    with writer, _progress(progress, len(ks), f"generate ({cfg.method})") as advance:
        pending: list[Plan] = []
        movable = stats if layout_rects is None else None  # a user's layout keeps its rectangles

        def flush() -> None:
            nonlocal dropped
            if cfg.method == "midg":
                paint_plans(pending, cfg, margins, lambda todo: _midg_paint(
                    todo, generator, cfg, class_index, library, shape_mask, device, gen_cfg), movable, library, class_index)
            else:
                blend = "poisson" if cfg.method == "poisson" else "alpha"
                paint_plans(pending, cfg, margins, lambda todo: _copypaste_paint(todo, library, class_index, blend),
                            movable, library, class_index)
            for plan in pending:
                dropped += _write(writer, plan, cfg, names, records)
                advance()
            pending.clear()

        for k in ks:
            plan = _plan_image(k, normal_files[k % len(normal_files)], folder, cfg, chosen, stats, channels, layout_rects,
                               library, class_index)
            if pending and sum(len(p.defects) for p in pending) + len(plan.defects) > CHUNK_BATCHES * cfg.batch_size:
                flush()
            pending.append(plan)
        if pending:
            flush()
        writer.update_meta(generate={"checkpoint": str(ckpt), "normals": str(folder), "method": cfg.method,
                                     "params": params, "dropped": dropped, "n_defects": len(records)},
                           dropped=dropped, defects=records)
        return writer.commit()


def _valid_margin(margin) -> list[float] | None:
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


def _write(writer: DatasetWriter, plan: Plan, cfg: GenerateConfig, names: list[str], records: list) -> int:
    boxes, n_dropped = [], 0
    name = f"{cfg.method}_{plan.k:06d}"
    rel = f"images/train/{name}.png"
    for d in plan.defects:
        if d.box is None:
            n_dropped += 1
        else:
            boxes.append(Box(names.index(d.cls), *d.box))
        records.append({"image": rel, "normal": plan.normal_rel, "rect": list(d.rect), "first_rect": list(d.first_rect),
                        "box": list(d.box) if d.box is not None else None, "class": d.cls, "edges": d.edges,
                        "changed_px": d.n_changed, "attempts": d.attempts, "seed": [cfg.seed, plan.k],
                        **({"entry": d.entry, "entry_box": list(d.entry_box), "transform": d.transform,
                            "mismatch": d.mismatch} if d.entry is not None else {})})
    writer.add_image("train", name, array=plan.result, boxes=boxes)
    return n_dropped


class _progress:
    """A rich progress bar over images (or nothing), as a context giving `advance()`."""

    def __init__(self, enabled: bool, total: int, description: str):
        self.enabled, self.total, self.description = enabled, total, description
        self._bar = None

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self._bar.__enter__()
        task = self._bar.add_task(self.description, total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
