"""What the real defects look like: sampler statistics and the library of real defects.

    stats = fit_defect_stats(dataset)                 # per class: box sizes, conductor histogram
    write_library(dataset, ckpt_dir, crop_size=64)    # ckpt_dir/library.safetensors + stats.json
    lib = load_library(ckpt_dir); stats = load_stats(ckpt_dir)
    midg generator library data/real --out runs/library    # the same, plus config.json: no GAN needed

One entry per real defect of the train split: its class, its box size, the defect pixels
(the box crop of the defect image), the changed mask and an edge map. For paired sources
(an aligned defect-free template, like DeepPCB) the changed mask is |defect - template| >
threshold inside the box, cleaned by a small morphological opening, and the edge map its
boundary. Mask-annotated sources (no template; an instance mask, a LabelMe polygon or a
mask file beside the image, see `annotated_masks`) keep the defect's own mask (`masked`
1) as the changed mask and as the edge map (filled, as paired edges are: where the
surface changes), so copy-paste moves the defect and not the other surface in its box
and MIDG paints that outline (deformed: `deform_mask`, scale, rotation, elastic warp);
otherwise the mask is the whole box and the edge map is Canny inside it.
Patches are stored padded into fixed-size arrays (S x S, top-left), downscaled to fit
when the box is larger than S, with their stored and original sizes beside them.
Safetensors and JSON only: nothing a user receives is a pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any, Iterator

import cv2
import numpy as np

from midg.datasets.atomic import atomic_write_bytes, atomic_write_json
from midg.datasets.errors import DatasetError
from midg.datasets.images import channels_of, read_image
from midg.datasets.layout import Dataset

from .boxes import THRESHOLD, changed_pixels, drop_small_components
from .masks import FRACTION_BINS, conductor_fraction, conductor_integral, fraction_histogram, to_gray
from .outlines import annotated_masks, fill_outlines, instance_mask, shading_map

LIBRARY_FILE = "library.safetensors"
STATS_FILE = "stats.json"
CHANGE_THRESHOLD = THRESHOLD  # boxes.py owns the one definition of "changed"
MAX_SIZES_PER_CLASS = 5000  # sizes kept per class in stats.json (the first ones, in file order)
SURFACE_IMAGES = 200  # defect images the template-free placement model is fitted on (the first ones)


def as_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """HxW (channels 1) or HxWx3 (channels 3) whatever the image holds."""
    if channels == 1:
        return to_gray(image)
    return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)


def dataset_channels(dataset: Dataset, split: str = "train") -> int:
    entries = dataset.images(split)
    if not entries:
        raise DatasetError(dataset.root / "images" / split, "no images: the library needs real defects")
    return channels_of(read_image(dataset.path(e.file)) for e in entries)


def _int_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1 = int(np.floor(box.x1)), int(np.floor(box.y1))
    x2, y2 = int(np.ceil(box.x2)), int(np.ceil(box.y2))
    x1, y1 = min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)
    return x1, y1, max(min(x2, width), x1 + 1), max(min(y2, height), y1 + 1)


def _scan(dataset: Dataset, split: str) -> Iterator[tuple[Any, np.ndarray, np.ndarray | None]]:
    """(entry, defect image, aligned template or None) for every image of `split` with boxes."""
    for entry in dataset.images(split):
        if not entry.boxes:
            continue
        image = read_image(dataset.path(entry.file))
        template = None
        if entry.template is not None:
            template = read_image(dataset.path(entry.template))
            if template.shape[:2] != image.shape[:2]:
                template = None  # not aligned: treat as unpaired rather than guess
        yield entry, image, template


def fit_defect_stats(dataset: Dataset, split: str = "train") -> dict[str, Any]:
    """Per class: real box sizes [w, h] and the histogram of conductor fractions under them.

    The fraction is measured on the template when the source is paired (what the board
    looked like before the defect, which is what a normal image shows at generation),
    else on the defect image itself. JSON-ready; `masks.sample_rectangles` reads it.
    """
    sizes: dict[str, list[list[int]]] = {n: [] for n in dataset.names}
    fractions: dict[str, list[float]] = {n: [] for n in dataset.names}
    margins: dict[str, list[list[float]]] = {n: [] for n in dataset.names}
    widths, heights, per_image = [], [], []
    surfaces, surface_boxes, any_paired = [], [], False  # for the template-free placement model
    for entry, image, template in _scan(dataset, split):
        per_image.append(len(entry.boxes))
        any_paired |= template is not None
        if not any_paired and len(surfaces) < SURFACE_IMAGES:
            instances = instance_mask(dataset, entry)
            surfaces.append(fill_outlines(image, instances) if instances is not None else image)
            surface_boxes.append([_int_box(b, image.shape[1], image.shape[0]) for b in entry.boxes])
        integral = conductor_integral(template if template is not None else image)
        h, w = image.shape[:2]
        widths.append(w)
        heights.append(h)
        for box in entry.boxes:
            x1, y1, x2, y2 = _int_box(box, w, h)
            name = dataset.names[box.cls]
            if len(sizes[name]) < MAX_SIZES_PER_CLASS:
                sizes[name].append([x2 - x1, y2 - y1])
            fractions[name].append(float(conductor_fraction(integral, x1, y1, x2, y2)))
            if template is not None:
                margin = _box_margin(image[y1:y2, x1:x2], template[y1:y2, x1:x2])
                if margin is not None:
                    margins[name].append(margin)
    if not widths:
        raise DatasetError(dataset.root / "images" / split, "no annotated defects: nothing to learn the sampler from")
    per_class = {}
    for name in dataset.names:
        f = fractions[name]
        per_class[name] = {
            "count": len(f),
            "sizes": sizes[name],
            "conductor_hist": fraction_histogram(f),
            "conductor_mean": float(np.mean(f)) if f else None,
            # how the annotators drew boxes around what changed: median share of the box
            # left empty on each side [left, top, right, bottom]; None for unpaired sources
            "box_margin": [round(float(v), 4) for v in np.median(margins[name], axis=0)] if margins[name] else None,
        }
    out = {
        "format": "midg-defect-stats-1",
        "classes": list(dataset.names),
        "split": split,
        "image_size": [int(median(widths)), int(median(heights))],
        "conductor": "Otsu threshold of the grey image, bright side",
        "fraction_bins": FRACTION_BINS,
        "per_class": per_class,
        # images with 1, 2, 3, ... defects: generation draws its count per image from these
        "defects_per_image": np.bincount(per_image, minlength=2)[1:].tolist(),
    }
    if not any_paired:  # no template anywhere: where defects sit is learned from the surface itself
        from .surface_placement import fit_surface_model

        scale = max(2, int(median(min(x2 - x1, y2 - y1) for bs in surface_boxes for x1, y1, x2, y2 in bs)))
        out["surface"] = fit_surface_model(surfaces, surface_boxes, scale)
    return out


def _box_margin(patch: np.ndarray, background: np.ndarray) -> list[float] | None:
    """Share of a real box left around its changed pixels, per side (paired sources).

    DeepPCB's annotators leave a margin around each defect (the changed pixels fill about a
    third of a box); generated boxes are tight. Learning the margin lets synthetic labels
    follow the real labels' convention, which a detector scored at IoU 0.5 depends on.
    """
    # gray and gray-stored-as-RGB images pair up (DeepPCB mixes them)
    mask = changed_mask(as_channels(patch, 1), as_channels(background, 1))
    if mask.all():
        return None
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    h, w = mask.shape
    return [xs.min() / w, ys.min() / h, (w - 1 - xs.max()) / w, (h - 1 - ys.max()) / h]


# ---------------------------------------------------------------- the library


def changed_mask(patch: np.ndarray, background: np.ndarray | None, threshold: int = CHANGE_THRESHOLD) -> np.ndarray:
    """HxW uint8 0/1: what the defect changed (paired), else the whole box."""
    if background is None:
        return np.ones(patch.shape[:2], np.uint8)
    h, w = patch.shape[:2]
    raw = changed_pixels(background, patch, (0, 0, w, h), threshold)
    cleaned = drop_small_components(raw)  # specks of JPEG noise go; thin real defects stay
    if cleaned.any():
        return cleaned
    return raw if raw.any() else np.ones_like(raw)


def edge_map(patch: np.ndarray, mask: np.ndarray, paired: bool) -> np.ndarray:
    """HxW uint8 0/1, the structure the edge block learns to draw: the filled changed mask
    (paired: where the surface changes, not a 1 px outline that resizing and JPEG noise
    break up), else Canny inside the box."""
    if paired:
        edges = mask.copy()
    else:
        edges = (cv2.Canny(to_gray(patch), 50, 150) > 0).astype(np.uint8) & mask
    if not edges.any():  # flat patch: its outline is the only shape we know
        edges = np.zeros_like(mask)
        edges[0, :] = edges[-1, :] = edges[:, 0] = edges[:, -1] = 1
    return edges


def _fit_into(arr: np.ndarray, size: int, nearest: bool) -> np.ndarray:
    h, w = arr.shape[:2]
    scale = min(1.0, size / max(h, w))
    if scale == 1.0:
        return arr
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return cv2.resize(arr, (nw, nh), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def _filled(image: np.ndarray, own: list) -> np.ndarray | None:
    """The image with its annotated outlines filled (outlines.fill_outlines), None without any."""
    labelled = np.zeros(image.shape[:2], np.int32)
    for k, m in enumerate(own):
        if m is not None and m.shape == labelled.shape:
            labelled[m > 0] = k + 1
    return fill_outlines(image, labelled) if labelled.any() else None


def build_library(dataset: Dataset, crop_size: int = 64, split: str = "train",
                  threshold: int = CHANGE_THRESHOLD) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Arrays for library.safetensors and one JSON record per entry (source file and box)."""
    channels = dataset_channels(dataset, split)
    classes, box_hw, patch_hw, paired_flags, masked_flags = [], [], [], [], []
    patches, masks, edges, shadings, sources = [], [], [], [], []
    for entry, image, template in _scan(dataset, split):
        image = as_channels(image, channels)
        template = as_channels(template, channels) if template is not None else None
        h, w = image.shape[:2]
        own = annotated_masks(dataset, entry) if template is None else [None] * len(entry.boxes)
        filled = _filled(image, own)  # the surface without its outlined defects: what shading is measured from
        for box, annotated in zip(entry.boxes, own):
            x1, y1, x2, y2 = _int_box(box, w, h)
            patch = image[y1:y2, x1:x2]
            cut = annotated[y1:y2, x1:x2] if annotated is not None and annotated.shape == (h, w) else None
            masked = cut is not None and bool(cut.any())
            shading = np.zeros(patch.shape[:2], np.float32)
            if masked:  # unpaired but annotated with its outline: the outline is what changed
                mask = cut.astype(np.uint8)
                edge = mask.copy()  # filled, as paired edges are: where the surface changes
                shading = shading_map(patch, filled[y1:y2, x1:x2], mask)
            else:
                mask = changed_mask(patch, template[y1:y2, x1:x2] if template is not None else None, threshold)
                edge = edge_map(patch, mask, template is not None)  # unpaired: Canny in the whole box
            patch, mask, edge = (_fit_into(patch, crop_size, False), _fit_into(mask, crop_size, True),
                                 _fit_into(edge, crop_size, True))
            shading = _fit_into(shading, crop_size, False) * (mask > 0)
            ph, pw = mask.shape
            p = np.zeros((channels, crop_size, crop_size), np.uint8)
            p[:, :ph, :pw] = patch[None] if patch.ndim == 2 else patch.transpose(2, 0, 1)
            m = np.zeros((1, crop_size, crop_size), np.uint8)
            m[0, :ph, :pw] = mask
            e = np.zeros((1, crop_size, crop_size), np.uint8)
            e[0, :ph, :pw] = edge
            sh = np.zeros((1, crop_size, crop_size), np.uint8)
            sh[0, :ph, :pw] = np.rint(shading * 255)
            classes.append(box.cls)
            box_hw.append([y2 - y1, x2 - x1])
            patch_hw.append([ph, pw])
            paired_flags.append(template is not None)
            masked_flags.append(masked)
            patches.append(p)
            masks.append(m)
            edges.append(e)
            shadings.append(sh)
            sources.append({"image": entry.file, "box": [x1, y1, x2, y2], "class": dataset.names[box.cls]})
    if not classes:
        raise DatasetError(dataset.root / "images" / split, "no annotated defects: the library would be empty")
    arrays = {
        "classes": np.asarray(classes, np.int64),  # index into the class list of stats.json
        "box_hw": np.asarray(box_hw, np.int64),  # real box [h, w] in the source image
        "patch_hw": np.asarray(patch_hw, np.int64),  # stored [h, w] (top-left of the S x S arrays)
        "paired": np.asarray(paired_flags, np.uint8),  # 1: changed mask from an aligned template
        "masked": np.asarray(masked_flags, np.uint8),  # 1: changed holds the defect's annotated mask (no template)
        "patches": np.stack(patches),  # N x C x S x S uint8: the defect image's pixels
        "changed": np.stack(masks),  # N x 1 x S x S 0/1
        "edges": np.stack(edges),  # N x 1 x S x S 0/1
    }
    if any(masked_flags):  # only outlined sources carry shading: other libraries keep their bytes
        arrays["shading"] = np.stack(shadings)  # N x 1 x S x S uint8, 255 x outlines.shading_map (0: not masked)
    return arrays, sources


def write_library(dataset: Dataset, ckpt_dir: str | Path, crop_size: int = 64, split: str = "train") -> None:
    """Write `library.safetensors` and `stats.json` into `ckpt_dir` (each atomically)."""
    from safetensors.numpy import save

    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    stats = fit_defect_stats(dataset, split)
    arrays, sources = build_library(dataset, crop_size, split)
    # One metadata key: safetensors writes a metadata map in a random key order per
    # process, which would break "same seed, same bytes".
    metadata = {"midg": json.dumps({"format": "midg-defect-library-1", "classes": list(dataset.names),
                                    "crop_size": crop_size, "sources": sources})}
    atomic_write_bytes(ckpt_dir / LIBRARY_FILE, save(arrays, metadata=metadata))
    atomic_write_json(ckpt_dir / STATS_FILE, stats)


@dataclass(frozen=True)
class DefectLibrary:
    names: list[str]
    classes: np.ndarray
    box_hw: np.ndarray
    patch_hw: np.ndarray
    paired: np.ndarray
    patches: np.ndarray
    changed: np.ndarray
    edges: np.ndarray
    masked: np.ndarray  # 1: `changed` is the defect's annotated mask; all 0 in libraries older than it
    shading: np.ndarray | None = None  # N x 1 x S x S uint8 (outlines.shading_map x 255); None: none stored

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return self.patches.shape[1]

    def indices_of(self, cls: int) -> np.ndarray:
        return np.flatnonzero(self.classes == cls)

    def entry(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(patch HxW[xC] uint8, changed mask HxW 0/1, edges HxW 0/1) at stored size."""
        ph, pw = (int(v) for v in self.patch_hw[i])
        p = self.patches[i, :, :ph, :pw]
        p = p[0] if p.shape[0] == 1 else p.transpose(1, 2, 0)
        return np.ascontiguousarray(p), self.changed[i, 0, :ph, :pw], self.edges[i, 0, :ph, :pw]

    def shading_of(self, i: int) -> np.ndarray | None:
        """Entry i's shading (HxW float32 in [0, 1], 0 outside its outline) at stored size, or
        None where the library stores none for it (box-only and template sources)."""
        if self.shading is None or not self.masked[i]:
            return None
        ph, pw = (int(v) for v in self.patch_hw[i])
        return self.shading[i, 0, :ph, :pw].astype(np.float32) / 255.0


def load_library(ckpt_dir: str | Path) -> DefectLibrary:
    from safetensors import safe_open
    from safetensors.numpy import load_file

    path = Path(ckpt_dir) / LIBRARY_FILE
    if not path.is_file():
        raise DatasetError(path, "missing: make one with `midg generator library DATASET --out DIR` "
                                 "or `midg generator train`")
    from safetensors import SafetensorError

    try:
        with safe_open(str(path), framework="np") as fh:
            meta = json.loads((fh.metadata() or {})["midg"])
        arrays = load_file(str(path))
        names = meta["classes"]
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise ValueError(f"'classes' in its metadata must be a list of names, got {names!r}")
        masked = arrays.get("masked", np.zeros(len(arrays["classes"]), np.uint8))  # older libraries: none
        return DefectLibrary(names, *(arrays[k] for k in ("classes", "box_hw", "patch_hw", "paired",
                                                           "patches", "changed", "edges")), masked,
                             arrays.get("shading"))
    except (KeyError, ValueError, TypeError, OSError, SafetensorError, RecursionError) as exc:
        raise DatasetError(path, f"not a MIDG defect library ({type(exc).__name__}: {exc})") from None


def load_stats(ckpt_dir: str | Path) -> dict[str, Any]:
    """stats.json of a checkpoint (or library) folder, checked for the keys the sampler reads."""
    path = Path(ckpt_dir) / STATS_FILE
    if not path.is_file():
        raise DatasetError(path, "missing: the rectangle sampler needs the real defects' stats")
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DatasetError(path, f"not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(stats, dict) or not isinstance(stats.get("per_class"), dict) or "classes" not in stats:
        raise DatasetError(path, "expected 'classes' and 'per_class' (made by fit_defect_stats)")
    for name, per in stats["per_class"].items():  # what the rectangle sampler reads (masks.py)
        if not _class_stats_ok(per):
            raise DatasetError(path, f"per_class[{name!r}] must hold an integer 'count', 'sizes' as [width, height] "
                                     f"pairs of pixels and 'conductor_hist' as {FRACTION_BINS} non-negative numbers")
    return stats


def _class_stats_ok(per: Any) -> bool:
    def positive_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    def weight(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < float("inf")

    if not isinstance(per, dict) or not isinstance(per.get("count", 0), int):
        return False
    sizes, hist = per.get("sizes", []), per.get("conductor_hist")
    if not (isinstance(sizes, list) and all(isinstance(s, list) and len(s) == 2 and all(map(positive_int, s))
                                            for s in sizes)):
        return False
    return hist is None or (isinstance(hist, list) and len(hist) == FRACTION_BINS and all(map(weight, hist))
                            and sum(hist) > 0)


def write_library_folder(dataset: Dataset, out: str | Path, crop_size: int = 64, context: float = 2.0,
                         min_window: int = 32, split: str = "train") -> Path:
    """A checkpoint-like folder without weights (config.json + library + stats), enough for
    `midg generate --method copypaste` and `--edges library`; written aside, moved into place."""
    import platform

    from midg.datasets.atomic import atomic_dir
    from midg.datasets.layout import tool_version

    if crop_size < 8:
        raise ValueError(f"crop_size must be at least 8, got {crop_size}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DatasetError(out, "exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "config.json").is_file():
        raise DatasetError(out, "folder is not empty and holds no config.json: refusing to replace it")
    with atomic_dir(out) as tmp:
        write_library(dataset, tmp, crop_size, split)
        stats = json.loads((tmp / STATS_FILE).read_text(encoding="utf-8"))
        config = {
            "format": "midg-library-1",
            "kind": "library",  # no generator.safetensors: copy-paste and library edges only
            "classes": list(dataset.names),
            "channels": dataset_channels(dataset, split),
            "crop_size": crop_size,
            "context": context,
            "min_window": min_window,
            "sampler_stats": stats,
            "source": {"dataset": str(Path(dataset.root).resolve()), "split": split,
                       "dataset_source": dataset.meta.get("source"), "dataset_seed": dataset.meta.get("seed")},
            "versions": {"midg": tool_version(), "python": platform.python_version(), "numpy": np.__version__,
                         "opencv": cv2.__version__},
        }
        atomic_write_json(tmp / "config.json", config)
    return out
