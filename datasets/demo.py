"""Procedural demo boards: flexible-circuit-like images in template/defect pairs, exact boxes.

    midg data demo data/demo --n-images 400 --seed 0              # grayscale, 256 px
    midg data demo data/demo_rgb --n-images 400 --seed 0 --color  # amber polyimide look
    midg data demo data/demo_z2 --n-images 240 --zoom 2           # magnified: defects ~20 px, not ~10

    from midg.datasets.demo import draw_board_pair, make_demo_dataset
    pair = draw_board_pair(np.random.default_rng([0, 7]))         # one pair, in memory
    ds = make_demo_dataset("data/demo", n_images=400, seed=0)     # the canonical dataset

A board (midg.datasets.demo_board) is a display list of copper shapes: pours (large chamfered polygons), bundles of
parallel traces with 45-degree bends, pads and vias. It is drawn twice at SUPERSAMPLE times
the output size and area-averaged to anti-aliased coverage: once as is (the template), once
with defect shapes added (copper added or taken away, DeepPCB's six classes). Both drawings
then go through the very same texture, blur, contrast and sensor-noise fields, so the two
images differ exactly where a defect changed the copper; each box is the tight box (x2/y2
exclusive) of the pixels where the images differ for that defect. Defects keep DEFECT_GAP
pixels apart, so every differing pixel belongs to exactly one box.

Image i is drawn from its own generator, `np.random.default_rng([seed, i])`, so any image can
be redrawn alone and the order of drawing does not matter. Classes are balanced over the
dataset: defect slots are dealt from shuffled blocks of the six classes.
Pure numpy/OpenCV: no torch, no generator or detector code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .boxes import Box
from .demo_board import BLUR_KSIZE, SUPERSAMPLE, Maps, build_board, place_defects
from .errors import ConfigError
from .images import write_png
from .layout import DEFECT_CLASSES, Dataset, DatasetWriter
from .progress import track

GENERATOR_VERSION = 1  # bump when the drawing changes: same seed then gives other images


@dataclass(frozen=True)
class BoardPair:
    template: np.ndarray  # uint8 HxW (or HxWx3 RGB): the defect-free board
    image: np.ndarray  # the same board with defects; differs from template only inside boxes
    boxes: list[Box]  # one per defect, tight around its differing pixels
    defect_masks: list[np.ndarray]  # bool HxW per box: where image and template differ for it

    @property
    def changed_pixels(self) -> list[int]:
        return [int(m.sum()) for m in self.defect_masks]


# ---------------------------------------------------------------- photometry


def _smooth_noise(rng, size: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-ish low-frequency field (uneven plating, lighting)."""
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def _fibres(rng, size: int) -> np.ndarray:
    """Streaky texture of polyimide film: noise smeared along one direction, unit std."""
    length = int(rng.integers(7, 18)) | 1
    kernel = np.zeros((length, length), np.float32)
    a = rng.uniform(0, math.pi)
    c = length // 2
    dx, dy = math.cos(a) * c, math.sin(a) * c
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
    kernel /= kernel.sum()
    f = cv2.filter2D(rng.standard_normal((size, size)).astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT)
    return f / max(float(f.std()), 1e-6)


@dataclass
class _Look:
    """Everything both images of a pair share: textures, colours, blur, gain, sensor noise."""

    substrate: np.ndarray  # HxWxC float32
    copper: np.ndarray  # HxWxC float32
    hole: np.ndarray  # C float32 colour seen through drill holes
    sigma: float
    gain: float
    bias: float
    noise: np.ndarray  # HxWxC float32, the one noise field added to both images

    @classmethod
    def draw(cls, rng, size: int, color: bool) -> "_Look":
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        a = rng.uniform(0, 2 * math.pi)
        ramp = (xx * math.cos(a) + yy * math.sin(a) - 0.5) * rng.uniform(6, 28)
        sub_tex = ramp + _smooth_noise(rng, size, 5) * rng.uniform(2, 6) + _fibres(rng, size) * rng.uniform(2.0, 6.0)
        cu_tex = (0.6 * ramp + _smooth_noise(rng, size, 7) * rng.uniform(3, 9)
                  + cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (3, 3), 0.8) * rng.uniform(1, 4))
        if color:  # amber polyimide, golden copper seen through the coverlay
            sub_c = np.array([165, 95, 28], np.float32) * rng.uniform(0.85, 1.1)
            cu_c = np.array([240, 185, 110], np.float32) * rng.uniform(0.92, 1.05)
            hole = np.array([50, 35, 22], np.float32)
        else:
            s = rng.uniform(55, 110)
            sub_c = np.array([s], np.float32)
            cu_c = np.array([min(s + rng.uniform(55, 125), 240)], np.float32)
            hole = np.array([s * 0.4], np.float32)
        tint = lambda c: c / c.mean()  # noqa: E731 - texture darkens all channels alike
        ch = 3 if color else 1
        return cls(
            substrate=sub_c + sub_tex[..., None] * tint(sub_c),
            copper=cu_c + cu_tex[..., None] * tint(cu_c),
            hole=hole,
            sigma=float(rng.uniform(0.45, 1.0)),
            gain=float(rng.uniform(0.75, 1.15)),
            bias=float(rng.uniform(-12, 12)),
            noise=rng.standard_normal((size, size, ch)).astype(np.float32) * np.float32(rng.uniform(1.5, 5.0)),
        )

    def shade(self, cov: np.ndarray, holes: np.ndarray) -> np.ndarray:
        c, h = cov[..., None], holes[..., None]
        img = self.substrate * (1 - c) + self.copper * c
        img = img * (1 - h) + self.hole * h
        img = cv2.GaussianBlur(img, (BLUR_KSIZE, BLUR_KSIZE), self.sigma, borderType=cv2.BORDER_REFLECT)
        if img.ndim == 2:
            img = img[..., None]
        img = (img - 128.0) * self.gain + 128.0 + self.bias + self.noise
        out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        return out[..., 0] if out.shape[2] == 1 else out


# ---------------------------------------------------------------- one pair


def _coverage(mask_ss: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(mask_ss, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def draw_board_pair(rng: np.random.Generator, size: int = 256, color: bool = False,
                    n_defects: tuple[int, int] = (1, 4), classes: Sequence[int] | None = None,
                    zoom: float = 1.0) -> BoardPair:
    """One defect-free template and the same board with 1-4 defects (`n_defects`, inclusive).

    `zoom` magnifies the design (see demo_board.build_board): 2 doubles traces and defects.

    `classes` fixes the defect classes (indices into DEFECT_CLASSES) instead of drawing them;
    make_demo_dataset uses it to balance classes over a dataset.
    """
    if size < 32:
        raise ConfigError(f"demo board size must be at least 32 px, got {size}")
    if classes is None:
        lo, hi = n_defects
        if not 1 <= lo <= hi:
            raise ConfigError(f"n_defects must be (lo, hi) with 1 <= lo <= hi, got {n_defects}")
        classes = [int(c) for c in rng.integers(0, len(DEFECT_CLASSES), int(rng.integers(lo, hi + 1)))]
    if not 0.25 <= zoom <= 8:
        raise ConfigError(f"demo board zoom must be 0.25..8, got {zoom}")
    bad = [c for c in classes if not 0 <= int(c) < len(DEFECT_CLASSES)]
    if bad or not classes:
        raise ConfigError(f"defect classes must be 1 or more of 0..{len(DEFECT_CLASSES) - 1}, got {list(classes)}")
    for _ in range(50):  # a board with no room for a class is redrawn (same rng: still deterministic)
        board = build_board(rng, size, zoom)
        copper_ss, holes_ss = board.render(SUPERSAMPLE)
        cov_t = _coverage(copper_ss, size)
        found = place_defects(rng, board, copper_ss, Maps.of(cov_t), classes)
        if found is None:
            continue
        defect_ss, placed = found
        holes = _coverage(holes_ss, size)
        look = _Look.draw(rng, size, color)
        template = look.shade(cov_t, holes)
        image = look.shade(_coverage(defect_ss, size), holes)
        diff = template != image
        if diff.ndim == 3:
            diff = diff.any(axis=2)
        boxes, masks, covered = [], [], np.zeros_like(diff)
        for cls, (x1, y1, x2, y2) in placed:
            m = np.zeros_like(diff)
            m[y1:y2, x1:x2] = diff[y1:y2, x1:x2]
            covered[y1:y2, x1:x2] = True
            ys, xs = np.nonzero(m)
            if not ys.size:
                break  # a defect lost in rounding: redraw
            boxes.append(Box(cls, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
            masks.append(m)
        else:
            if (diff & ~covered).any():  # the blur bound is wrong: a bug, never data
                raise AssertionError("template and defect image differ outside every defect region")
            return BoardPair(template, image, boxes, masks)
    raise RuntimeError(f"could not fit defects {list(classes)} on 50 boards of {size} px")


# ---------------------------------------------------------------- the dataset

_CLASS_STREAM = 1 << 32  # rng streams beside the per-image ones (image indices stay below)
_SPLIT_STREAM = (1 << 32) + 1


def _n_defects(seed: int, i: int, n_defects: tuple[int, int]) -> tuple[np.random.Generator, int]:
    rng = np.random.default_rng([seed, i])
    return rng, int(rng.integers(n_defects[0], n_defects[1] + 1))


def class_schedule(seed: int, start: int, count: int) -> list[int]:
    """Classes of defect slots start..start+count-1: each block of six is a shuffle of all six."""
    k = len(DEFECT_CLASSES)
    out = []
    for slot in range(start, start + count):
        block = np.random.default_rng([seed, _CLASS_STREAM, slot // k]).permutation(k)
        out.append(int(block[slot % k]))
    return out


def split_of(n_images: int, seed: int, val_frac: float, test_frac: float) -> list[str]:
    """The split of each image: a seeded permutation, test first, then val, the rest train."""
    n_test, n_val = round(n_images * test_frac), round(n_images * val_frac)
    order = np.random.default_rng([seed, _SPLIT_STREAM]).permutation(n_images)
    splits = ["train"] * n_images
    for rank, i in enumerate(order):
        splits[int(i)] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return splits


def make_demo_dataset(out: str | Path, n_images: int, seed: int, size: int = 256, color: bool = False,
                      val_frac: float = 0.15, test_frac: float = 0.25, progress: bool = True,
                      n_defects: tuple[int, int] = (1, 4), zoom: float = 1.0) -> Dataset:
    """Write `n_images` board pairs as a canonical dataset at `out` (replaced atomically).

    Defect images go to images/{split}/board_{i:05d}.png with their template in normals/ (test
    boards: in templates/test/, never a normal; extra defect-free boards keep >= N normals);
    meta.json's `truth` lists, per image, each defect's class, box and changed-pixel count.
    """
    if n_images < 1:
        raise ConfigError(f"--n-images must be at least 1, got {n_images}")
    if seed < 0:
        raise ConfigError(f"--seed must be 0 or more, got {seed}")
    if not 32 <= size <= 4096:
        raise ConfigError(f"--size must be 32..4096 px, got {size}")
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise ConfigError(f"--val-frac {val_frac} and --test-frac {test_frac} must be >= 0 and leave some train images")
    if not 1 <= n_defects[0] <= n_defects[1]:
        raise ConfigError(f"n_defects must be (lo, hi) with 1 <= lo <= hi, got {n_defects}")
    if not 0.25 <= zoom <= 8:
        raise ConfigError(f"--zoom must be 0.25..8, got {zoom}")
    splits = split_of(n_images, seed, val_frac, test_frac)
    params = {"n_images": n_images, "size": size, "color": color, "val_frac": val_frac, "test_frac": test_frac,
              "n_defects": list(n_defects), "generator_version": GENERATOR_VERSION}
    if zoom != 1.0:  # only then: zoom 1 keeps the meta.json (and its bytes) of before zoom existed
        params["zoom"] = zoom
    truth = []
    slot = 0
    with DatasetWriter(Path(out), list(DEFECT_CLASSES), source="demo", seed=seed, params=params) as writer:
        for i in track(range(n_images), "drawing demo boards") if progress else range(n_images):
            rng, n = _n_defects(seed, i, n_defects)
            classes = class_schedule(seed, slot, n)
            slot += n
            pair = draw_board_pair(rng, size, color, classes=classes, zoom=zoom)
            name = f"board_{i:05d}"
            if splits[i] == "test":
                # a test board's template is not a normal: no test pixel may reach training
                template = f"templates/test/{name}.png"
                (writer.tmp / "templates" / "test").mkdir(parents=True, exist_ok=True)
                write_png(writer.tmp / template, pair.template)
            else:
                template = writer.add_normal(name, array=pair.template)
            rel = writer.add_image(splits[i], name, array=pair.image, boxes=pair.boxes, template=template)
            truth.append({"image": rel, "template": template, "defects": [
                {"class": DEFECT_CLASSES[b.cls], "box": [int(b.x1), int(b.y1), int(b.x2), int(b.y2)], "changed_pixels": c}
                for b, c in zip(pair.boxes, pair.changed_pixels)]})
        # extra defect-free boards, drawn after all pairs, keep at least n_images normals
        n_test = sum(1 for sp in splits if sp == "test")
        for j in range(n_images, n_images + n_test):
            rng, _ = _n_defects(seed, j, n_defects)
            writer.add_normal(f"board_{j:05d}", array=draw_board_pair(rng, size, color, classes=[0], zoom=zoom).template)
        writer.update_meta(truth=truth)
        return writer.commit()
