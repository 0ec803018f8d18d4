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

This file runs the steps in order; each lives in its own file: what is asked
(`generate_config.py`), planning (`planning.py`: canvas, class mix, rectangles), painting
(`painting.py`: MIDG, copy-paste, Poisson), labelling (`labelling.py`: boxes, residue,
redraws) and writing (`writing.py`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from midg.datasets.errors import ConfigError, DatasetError
from midg.datasets.layout import Dataset, DatasetWriter
from midg.datasets.params import fill

from .generate_config import PASTE_METHODS, GenerateConfig
from .labelling import paint_plans, valid_margin
from .library import LIBRARY_FILE, load_library, load_stats
from .painting import copypaste_paint, load_midg_generator, midg_paint, read_shape
from .planning import Canvas, Plan, annotated_canvases, canvas_of, class_weights, list_normals, plan_image, read_layout
from .surface_placement import check_model
from .writing import progress_bar, write_plan

CONFIG_FILE = "config.json"
SOURCE = "midg-generate"
# Images are painted in chunks of up to this many batches of defects: only a chunk's last
# batch is padded, so bigger chunks waste less compute (and hold more crops in memory).
CHUNK_BATCHES = 4


def generate_dataset(checkpoint: str | Path, normals: str | Path, out: str | Path, n_images: int, seed: int,
                     method: str = "midg", classes: Sequence[str] | None = None,
                     defects_per_image: tuple[int, int] | None = None, shape: str | Path | None = None,
                     edges: str | None = None, shard: tuple[int, int] = (0, 1), layout: str | Path | None = None,
                     device: str = "cpu", batch_size: int = 64, progress: bool = True,
                     config: GenerateConfig | None = None) -> Dataset:
    """Write a synthetic dataset (split "train") to `out`; see the module docstring.

    `config` (from params.yaml) supplies the remaining knobs (canvas, class mix, composite,
    thresholds); the explicit arguments win over it. `normals` is a folder of defect-free
    images or a canonical dataset: its normals/ and, for the annotated canvas, its
    annotated training images.
    """
    base = config or GenerateConfig()
    cfg = dataclasses.replace(
        base, n_images=n_images, seed=seed, method=method, classes=list(classes) if classes else None,
        defects_per_image=tuple(defects_per_image) if defects_per_image else None,
        edges="shape" if shape is not None else (edges or base.edges), batch_size=batch_size)
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
    margins = {n: valid_margin(per.get("box_margin")) for n, per in stats["per_class"].items()}
    generator = None
    if cfg.method == "midg":
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ConfigError("device 'cuda' asked for, but torch sees no CUDA device here")
        generator = load_midg_generator(ckpt, device)
        gen_cfg = {**gen_cfg, **getattr(generator, "config", {})}
    has_library = (Path(ckpt) / LIBRARY_FILE).is_file()
    if cfg.edges == "auto":  # resolved once, recorded in meta.json
        cfg = dataclasses.replace(cfg, edges="library" if has_library else "generated")
    wants_library = cfg.method in PASTE_METHODS or cfg.edges == "library" or cfg.placement == "matched"
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

    weights = class_weights(cfg.class_mix, chosen, stats)
    annotated = annotated_canvases(normals, names) if cfg.canvas != "normals" and layout is None else []
    if cfg.canvas == "auto":  # resolved once, recorded in meta.json
        cfg = dataclasses.replace(cfg, canvas="annotated" if annotated else "normals")
    if cfg.canvas in ("annotated", "both") and not annotated:
        raise DatasetError(normals, f"canvas {cfg.canvas} needs a canonical dataset with annotated training images "
                                    "(--normals DATASET)" + (", and a --layout names normals" if layout else ""))
    folder, normal_files = list_normals(normals) if cfg.canvas != "annotated" else (Path(normals), [])
    layout_rects = None
    if layout is not None:
        layout_rects = read_layout(layout, names)
        by_name = {p.name: p for p in normal_files}
        missing = [n for n in layout_rects if n not in by_name]
        if missing:
            raise DatasetError(layout, f"names {missing[:5]} are not images of {folder}")
        normal_files = [by_name[n] for n in sorted(layout_rects)]
    normal_canvases = [Canvas(f, f.relative_to(folder).as_posix(), "normals") for f in normal_files]

    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}
    params.update(classes=chosen, shape=str(shape) if shape is not None else None,
                  layout=str(layout) if layout is not None else None, shard=[i_shard, n_shard], device=device,
                  class_weights=dict(zip(chosen, weights)) if weights is not None else None)
    ks = list(range(i_shard, cfg.n_images, n_shard))
    records: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []  # per output image: its canvas and the real boxes it carried over
    dropped = 0
    writer = DatasetWriter(Path(out), names, source=SOURCE, seed=cfg.seed, params=params)
    with writer, progress_bar(progress, len(ks), f"generate ({cfg.method})") as advance:
        pending: list[Plan] = []
        movable = stats if layout_rects is None else None  # a user's layout keeps its rectangles

        def flush() -> None:
            nonlocal dropped
            if cfg.method == "midg":
                paint_plans(pending, cfg, margins, lambda todo: midg_paint(
                    todo, generator, cfg, class_index, library, shape_mask, device, gen_cfg), movable, library, class_index)
            else:
                blend = "poisson" if cfg.method == "poisson" else "alpha"
                paint_plans(pending, cfg, margins, lambda todo: copypaste_paint(todo, library, class_index, blend),
                            movable, library, class_index)
            for plan in pending:
                dropped += write_plan(writer, plan, cfg, names, records, sources)
                advance()
            pending.clear()

        for k in ks:
            plan = plan_image(k, canvas_of(k, cfg, normal_canvases, annotated), cfg, chosen, stats, channels,
                               layout_rects, library, class_index, weights)
            if pending and sum(len(p.defects) for p in pending) + len(plan.defects) > CHUNK_BATCHES * cfg.batch_size:
                flush()
            pending.append(plan)
        if pending:
            flush()
        writer.update_meta(generate={"checkpoint": str(ckpt), "normals": str(folder), "method": cfg.method,
                                     "canvas": cfg.canvas, "params": params, "dropped": dropped,
                                     "n_defects": len(records)},
                           dropped=dropped, defects=records, canvases=sources)
        return writer.commit()


# ---------------------------------------------------------------- inputs


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
