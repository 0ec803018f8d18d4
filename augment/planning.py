"""Step 1 of generation, planning: which image each output starts from (a normal, or an
annotated training image whose real labels are kept), how many defects of which classes
(the class mix), and where each goes (the sampler, `masks.py`, or matched placement,
`placement.py`). One Plan per output image, made from that image's own rng alone.

    plan = plan_image(k, canvas_of(k, cfg, normals, annotated), cfg, classes, stats, channels, None, library, ...)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from midg.datasets.boxes import Box
from midg.datasets.errors import ConfigError, DatasetError
from midg.datasets.images import is_image_file, read_image
from midg.datasets.layout import load_dataset

from .generate_config import PASTE_METHODS, GenerateConfig
from .levels import SurfaceLevels, surface_levels
from .library import as_channels
from .masks import grow_rect, sample_rectangles
from .placement import PAD, Placed, matched_rectangles
from .surface_placement import sample_surface_rectangles


# ---------------------------------------------------------------- what each output image starts from


def list_normals(normals: str | Path) -> tuple[Path, list[Path]]:
    """(folder, sorted image files): a folder of images, or a canonical dataset's normals/;
    a dataset without normals gives its background images (imported with --empty-as
    background: the source's defect-free images), and says so on stderr."""
    root = Path(normals)
    if (root / "data.yaml").is_file():
        folder = root / "normals"
        if not folder.is_dir() or not any(is_image_file(p) for p in folder.iterdir()):
            import sys

            background = sorted(load_dataset(root).background_paths())
            if not background:
                raise DatasetError(root, "this dataset has no normals/ and no background images: pass a folder of "
                                         "defect-free images")
            print(f"note: {root} has no normals/: painting on its {len(background)} background image(s) "
                  "(images without boxes) instead", file=sys.stderr)
            return root, background
    elif root.is_dir():
        folder = root
    else:
        raise DatasetError(root, "normals folder does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise DatasetError(folder, "no images in the normals folder")
    return folder, files


@dataclass(frozen=True)
class Canvas:
    """One image new defects can be painted into: a normal, or an annotated training image
    whose real boxes (in the checkpoint's class indices) stay labelled and untouched."""
    path: Path
    rel: str  # as meta.json names the source: relative to the normals folder or the dataset root
    kind: Literal["normals", "annotated"]
    real_boxes: tuple[Box, ...] = ()


def annotated_canvases(root: str | Path, names: Sequence[str]) -> list[Canvas]:
    """The annotated training images of a canonical dataset (never val or test: those score the
    detector), with their boxes mapped to the checkpoint's classes `names`; [] for a plain folder."""
    root = Path(root)
    if not (root / "data.yaml").is_file():
        return []
    ds = load_dataset(root)
    unknown = sorted({ds.names[b.cls] for e in ds.images("train") for b in e.boxes} - set(names))
    if unknown:
        raise DatasetError(root, f"its classes {unknown} are not the checkpoint's ({', '.join(names)}): the real "
                                 "labels of an annotated canvas could not be carried over")
    index = {n: i for i, n in enumerate(names)}
    return [Canvas(ds.path(e.file), e.file, "annotated",
                   tuple(dataclasses.replace(b, cls=index[ds.names[b.cls]]) for b in e.boxes))
            for e in sorted(ds.images("train"), key=lambda e: e.file) if e.boxes]


def canvas_of(k: int, cfg: GenerateConfig, normals: Sequence[Canvas], annotated: Sequence[Canvas]) -> Canvas:
    """Image k's canvas. canvas both: image k is annotated when floor((k + 1) * share) steps up
    (a fixed interleave, the same in every shard); each kind is walked in order, cycling."""
    if cfg.canvas == "annotated":
        return annotated[k % len(annotated)]
    if cfg.canvas == "normals":
        return normals[k % len(normals)]
    before = int(np.floor(k * cfg.canvas_share + 1e-9))
    if int(np.floor((k + 1) * cfg.canvas_share + 1e-9)) > before:
        return annotated[before % len(annotated)]
    return normals[(k - before) % len(normals)]


def grown(box: Box, margin: int, width: int, height: int) -> tuple[int, int, int, int]:
    """A real box grown by `margin` px (whole pixels, inside the image): where no new rectangle may reach."""
    return (max(0, int(np.floor(box.x1)) - margin), max(0, int(np.floor(box.y1)) - margin),
            min(width, int(np.ceil(box.x2)) + margin), min(height, int(np.ceil(box.y2)) + margin))


# ---------------------------------------------------------------- what to paint, and where


def class_weights(class_mix: str, classes: Sequence[str], stats: dict) -> list[float] | None:
    """The generation's class mix over `classes`: real (the real boxes' counts), uniform (None:
    one uniform draw, as before the mix existed), or a YAML/JSON file of class -> weight."""
    if class_mix == "uniform":
        return None
    if class_mix == "real":
        weights = [float(stats["per_class"].get(c, {}).get("count", 0)) for c in classes]
        where: Any = "the checkpoint's stats"
        unseen = [c for c, w in zip(classes, weights) if w == 0]
        if unseen:  # asked for by --classes, yet the real mix would never draw them
            raise ConfigError(f"class mix real: {unseen} have no real example, so they would never be drawn; "
                              "use --class-mix uniform or a file of weights, or leave them out of --classes")
    else:
        import yaml

        path = Path(class_mix)
        if not path.is_file():
            raise ConfigError(f"--class-mix must be real, uniform or a YAML/JSON file of class weights; "
                              f"{class_mix!r} is neither")
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise DatasetError(path, f"not valid YAML/JSON: {exc}") from None
        if not isinstance(doc, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                                                for v in doc.values()):
            raise DatasetError(path, "a class mix is a mapping of class name -> weight >= 0")
        unknown = sorted(set(doc) - set(classes))
        if unknown:
            raise DatasetError(path, f"classes {unknown} are not generated here; valid: {', '.join(classes)}")
        weights, where = [float(doc.get(c, 0.0)) for c in classes], path
    if not sum(weights) > 0:
        raise ConfigError(f"class mix {class_mix!r}: every weight is 0 ({where})")
    return weights


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
    entry_box: tuple[int, int, int, int] | None = None  # the box the defect goes in, inside rect (matched: the entry's real box)
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
    canvas: str = "normals"  # normals | annotated
    real_boxes: tuple[Box, ...] = ()  # an annotated canvas' own labels, carried over as they are
    avoid: list = dataclasses.field(default_factory=list)  # the real boxes grown by real_box_margin


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


def place(rng: np.random.Generator, image: np.ndarray, cfg: GenerateConfig, stats: dict, classes: Sequence[str],
           n: int, library, class_index: dict[str, int], avoid: Sequence = (),
           weights: Sequence[float] | None = None) -> list[Placed]:
    """Where `n` new defects go: matched to real defects' surfaces, or by the sampler."""
    # an edge block's map (or a --shape) fills the whole rectangle: it gets the real box itself;
    # with 4 px more it drew into the surroundings (demo boards: CAS 0.60 -> 0.42)
    fills_rect = cfg.method == "midg" and cfg.edges in ("generated", "shape")
    if cfg.placement == "matched":
        return matched_rectangles(rng, image, stats, classes, n, library, class_index, avoid=avoid,
                                  pad=0 if fills_rect else PAD, class_weights=weights)
    # A real defect (pasted, or its outline painted) goes into a box of the drawn size, PAD px
    # inside its rectangle, as with matched placement: the ring stays untouched surface, as
    # around the seam score's real reference. Before, a structure scaled to the whole
    # rectangle was cut by its border (BSData at 294082a: 13 % of MIDG's seams over 2).
    pad = 0 if fills_rect else PAD
    if cfg.placement == "surface":  # no template: where the surface looks like the real defects' surroundings
        drawn = sample_surface_rectangles(rng, image, stats, stats["surface"], classes, n, avoid=avoid,
                                          class_weights=weights, pad=pad)
    else:
        drawn = sample_rectangles(rng, image, stats, classes, n, avoid=avoid, class_weights=weights, pad=pad)
    h, w = image.shape[:2]
    return [Placed(cls, grow_rect(box, pad, w, h), box=box if pad else None) for cls, box in drawn]


def plan_image(k: int, canvas: Canvas, cfg: GenerateConfig, classes: list[str], stats: dict,
                channels: int, layout: dict | None, library=None, class_index: dict[str, int] | None = None,
                weights: Sequence[float] | None = None) -> Plan:
    rng = np.random.default_rng([cfg.seed, k])
    normal = canvas.path
    image = as_channels(read_image(normal), channels)
    h, w = image.shape[:2]
    avoid = [grown(b, cfg.real_box_margin, w, h) for b in canvas.real_boxes]
    if layout is not None:
        rects = list(layout[normal.name])
        for cls, (x1, y1, x2, y2) in rects:
            if x2 > w or y2 > h:
                raise DatasetError(normal, f"layout rect {[x1, y1, x2, y2]} reaches outside the {w}x{h} image")
    else:
        n = _defect_count(rng, cfg, stats)
        rects = place(rng, image, cfg, stats, classes, n, library, class_index, avoid=avoid, weights=weights)
    edge_src = "library" if cfg.method in PASTE_METHODS else cfg.edges
    rects = [r if isinstance(r, Placed) else Placed(r[0], r[1]) for r in rects]  # a layout's (class, rect) pairs
    defects = [Defect(r.cls, tuple(int(v) for v in r.rect), edge_src, int(rng.integers(0, 2**63 - 1)),
                      entry=r.entry, entry_box=r.box, transform=r.transform, mismatch=r.mismatch) for r in rects]
    levels = surface_levels(image) if cfg.levels == "auto" else None
    return Plan(k, normal, canvas.rel, image, defects, rng, levels, canvas=canvas.kind, real_boxes=canvas.real_boxes,
                avoid=avoid)
