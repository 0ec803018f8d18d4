"""Reading and writing images safely: size limits before decoding, clear errors, PNG out.

Arrays are uint8, HxW for grayscale and HxWx3 (RGB) for colour, as the file holds them.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# A decompression bomb declares a huge size in a tiny file. We refuse anything over this
# many pixels before decoding (env MIDG_MAX_PIXELS overrides; PCB/FPC scans of 8k x 8k
# stay under the default).
DEFAULT_MAX_PIXELS = 80_000_000


def max_pixels() -> int:
    return int(os.environ.get("MIDG_MAX_PIXELS", DEFAULT_MAX_PIXELS))


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


# Folders a dataset search never enters: version control, caches, environments, and the
# model/weight/run folders of training repos (their images are predictions, not data).
SKIPPED_FOLDERS = frozenset({
    "__pycache__", "cache", "caches", "venv", "env", "virtualenv", "site-packages", "node_modules",
    "runs", "wandb", "mlruns", "lightning_logs", "weights", "models", "checkpoints", "saved_model", "pretrained",
})


def is_skipped_folder(path: Path) -> bool:
    """Hidden folders (.git, .venv, .ipynb_checkpoints, .dvc ...), SKIPPED_FOLDERS (any
    case) and Python environments (a pyvenv.cfg inside)."""
    name = path.name
    return name.startswith(".") or name.lower() in SKIPPED_FOLDERS or (path / "pyvenv.cfg").is_file()


def walk_files(root: Path, max_depth: int | None = None) -> list[Path]:
    """Every file under `root` (sorted), not entering skipped folders nor going deeper than
    `max_depth` folders below `root`."""
    out: list[Path] = []
    base = len(root.parts)
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        depth = len(here.parts) - base
        dirs[:] = [d for d in dirs if not is_skipped_folder(here / d) and (max_depth is None or depth < max_depth)]
        out += [here / f for f in files]
    return sorted(out)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the header alone; refuses unreadable files and bombs."""
    path = Path(path)
    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                fmt = im.format
    except FileNotFoundError:
        raise DatasetError(path, "image file does not exist") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DatasetError(path, f"image declares more than {limit} pixels (decompression bomb?)") from None
    except Exception as exc:  # PIL raises many types for bad bytes
        raise DatasetError(path, f"not a readable image ({type(exc).__name__}: {exc})") from None
    if width * height > limit:
        raise DatasetError(path, f"image is {width}x{height}, over the limit of {limit} pixels (MIDG_MAX_PIXELS)")
    if width <= 0 or height <= 0:
        raise DatasetError(path, f"image has no pixels ({width}x{height})")
    _check_end_marker(path, fmt)
    return width, height


# The end markers of the two formats we meet most. A file cut short (an interrupted copy
# or download) lacks them; looking at its tail costs one small read, not a decode, so
# importers of thousands of images can afford it. Some writers append a few bytes after
# the marker, hence a window rather than the last bytes exactly.
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}
_TAIL_WINDOW = 4096


def _check_end_marker(path: Path, fmt: str | None) -> None:
    marker = _END_MARKERS.get(fmt or "")
    if marker is None:
        return  # other formats: read_image (a full decode) finds truncation
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - _TAIL_WINDOW))
            tail = fh.read()
    except OSError as exc:
        raise DatasetError(path, f"cannot read ({exc.strerror or exc})") from None
    if marker in tail:
        return
    # No marker near the end: truncated, or data appended after the image (phones append
    # whole videos to JPEGs). Decoding tells them apart; only such rare files pay for it.
    try:
        with Image.open(path) as im:
            im.load()
    except Exception as exc:
        raise DatasetError(path, f"image data is truncated (no {fmt} end marker; {type(exc).__name__}: {exc})") from None


def read_image(path: str | Path) -> np.ndarray:
    """Decode a whole image; truncated or corrupt files raise DatasetError."""
    path = Path(path)
    image_size(path)  # header checks first: never decode a bomb
    try:
        with Image.open(path) as im:
            im.load()  # raises on truncated data (PIL's LOAD_TRUNCATED_IMAGES is off)
            if im.mode in ("L", "RGB"):
                arr = np.asarray(im)
            elif im.mode in ("1", "P", "I;16", "I", "F", "LA"):
                arr = np.asarray(im.convert("L"))
            else:
                arr = np.asarray(im.convert("RGB"))
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(path, f"image data is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    return np.ascontiguousarray(arr)


def read_mask(path: str | Path) -> np.ndarray:
    """A single-channel mask (binary or indexed values) as HxW uint8."""
    path = Path(path)
    image_size(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "P":
                arr = np.asarray(im)  # palette indices are the class values
            elif im.mode in ("RGB", "RGBA"):
                rgb = np.asarray(im.convert("RGB"))
                if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                    raise DatasetError(path, "colour mask: expected a single-channel binary or indexed mask")
                arr = rgb[..., 0]
            else:
                arr = np.asarray(im.convert("L"))
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(path, f"mask data is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    return np.ascontiguousarray(arr)


def encode_png(image: np.ndarray) -> bytes:
    """Lossless, deterministic PNG bytes (no timestamps, fixed compression)."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 image, got {image.dtype}")
    mode = "L" if image.ndim == 2 else "RGB"
    buf = io.BytesIO()
    Image.fromarray(image, mode=mode).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def write_png(path: str | Path, image: np.ndarray) -> None:
    Path(path).write_bytes(encode_png(image))


def is_color(image: np.ndarray) -> bool:
    """True for HxWx3 images whose channels differ; a gray picture stored as RGB (some
    DeepPCB JPEGs are) is not colour."""
    return image.ndim == 3 and not (np.array_equal(image[..., 0], image[..., 1])
                                    and np.array_equal(image[..., 0], image[..., 2]))


def channels_of(images) -> int:
    """1 when every image is gray (or gray stored as RGB), else 3: one rule for every stage."""
    return 3 if any(is_color(a) for a in images) else 1
