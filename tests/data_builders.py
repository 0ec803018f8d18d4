"""Tiny on-disk datasets for tests: every format the importers read, built in a tmp folder.

Images are small seeded noise so files differ; sizes differ per image so a size mix-up
shows. Nothing here reads the real DeepPCB copy.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from midg.datasets.boxes import Box
from midg.datasets.layout import DatasetWriter


def noise(h: int, w: int, seed: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def write_image(path: Path, h: int, w: int, seed: int = 0, channels: int = 1) -> Path:
    """A PNG or JPEG (by suffix) of seeded noise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = noise(h, w, seed, channels)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.fromarray(arr).save(path, format=fmt)
    return path


def bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG whose header declares width x height pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def yolo_line(b: Box, w: int, h: int) -> str:
    return f"{b.cls} {(b.x1 + b.x2) / 2 / w:.6f} {(b.y1 + b.y2) / 2 / h:.6f} {(b.x2 - b.x1) / w:.6f} {(b.y2 - b.y1) / h:.6f}\n"


# Per split: (file name relative to images/<split>, height, width, boxes in pixels).
YOLO_IMAGES = {
    "train": [
        ("a.png", 40, 60, [Box(0, 4, 4, 20, 16), Box(1, 30, 10, 50, 30)]),
        ("b.jpg", 48, 48, [Box(1, 0, 0, 12, 12)]),
        ("sub/c.png", 32, 64, [Box(0, 10, 2, 60, 30)]),
        ("sub/a.png", 32, 32, [Box(1, 8, 8, 24, 24)]),  # same stem as a.png: gets a prefix
        ("bg.png", 32, 32, []),  # a background image: no label file
    ],
    "val": [("v.png", 40, 40, [Box(0, 5, 5, 25, 35)])],
    "test": [("t.png", 36, 44, [Box(1, 1, 1, 43, 35)])],
}
YOLO_NAMES = ["scratch", "dent"]


def write_yolo_dataset(root: Path, names_as: str = "dict", test_as_list: bool = True) -> Path:
    """An ultralytics folder: images/<split>, labels/<split>, data.yaml (`path: .`).
    `names_as`: "list", "dict" (0: a) or "str_dict" ("0": a, as JSON writes it). The test
    split is given as a .txt image list when `test_as_list`."""
    seed = 0
    for split, items in YOLO_IMAGES.items():
        for name, h, w, boxes in items:
            seed += 1
            img = write_image(root / "images" / split / name, h, w, seed=seed)
            if boxes:
                lbl = root / "labels" / split / Path(name).with_suffix(".txt")
                lbl.parent.mkdir(parents=True, exist_ok=True)
                lbl.write_text("".join(yolo_line(b, w, h) for b in boxes))
            assert img.is_file()
    names_yaml = {
        "list": yaml.safe_dump({"names": YOLO_NAMES}),
        "dict": yaml.safe_dump({"names": dict(enumerate(YOLO_NAMES))}),
        "str_dict": f"names: {json.dumps({str(i): n for i, n in enumerate(YOLO_NAMES)})}\n",
    }[names_as]
    test_entry = "test.txt" if test_as_list else "images/test"
    if test_as_list:
        (root / "test.txt").write_text("".join(f"./images/test/{n}\n" for n, *_ in YOLO_IMAGES["test"]))
    (root / "data.yaml").write_text(
        "path: .\n" f"train: images/train\nval: images/val\ntest: {test_entry}\n" + names_yaml)
    return root


def write_coco_dataset(root: Path) -> tuple[Path, Path]:
    """instances.json (category ids 3 and 7, nested file names) and its image folder."""
    images_dir = root / "imgs"
    specs = [("x/1.png", 30, 40, [(3, [2, 2, 10, 8]), (7, [20, 5, 15, 20])]),
             ("y/1.png", 30, 30, [(7, [0, 0, 30, 30])]),
             ("2.jpg", 24, 32, []),
             ("3.png", 20, 20, [(3, [5.5, 5.5, 4, 4])])]
    doc = {"images": [], "annotations": [], "categories": [{"id": 7, "name": "hole"}, {"id": 3, "name": "crack"}]}
    ann_id = 100
    for i, (name, h, w, anns) in enumerate(specs):
        write_image(images_dir / name, h, w, seed=i)
        doc["images"].append({"id": 10 + i, "file_name": name, "width": w, "height": h})
        for cat, bbox in anns:
            doc["annotations"].append({"id": ann_id, "image_id": 10 + i, "category_id": cat, "bbox": bbox,
                                       "area": bbox[2] * bbox[3], "iscrowd": 0})
            ann_id += 1
    ann = root / "instances.json"
    ann.write_text(json.dumps(doc))
    return ann, images_dir


def write_tiny_canonical(out: Path, names=("open", "short"), n_train: int = 6, seed: int = 0) -> Path:
    """A canonical dataset: n_train train (the last one background), 2 val, 2 test, 3 normals,
    train images paired with normals, test images with `templates/test/` files."""
    src = out.parent / f".{out.name}_src"
    with DatasetWriter(out, list(names), source="tiny", seed=seed) as w:
        normals = [w.add_normal(f"n{k}.png", array=noise(32, 32, 500 + k + seed)) for k in range(3)]
        for k in range(n_train):
            boxes = [] if k == n_train - 1 else [Box(k % len(names), 2 + k, 3, 12 + k, 20), Box(0, 20, 20, 30, 31)]
            w.add_image("train", f"tr{k}", array=noise(32, 32, 100 + k + seed), boxes=boxes, template=normals[k % 3])
        for k in range(2):
            w.add_image("val", f"va{k}", array=noise(32, 32, 200 + k + seed), boxes=[Box(1 % len(names), 1, 1, 9, 9)])
            t = write_image(src / f"te{k}_temp.png", 32, 32, seed=400 + k)
            tmpl = w.add_file(f"templates/test/te{k}_temp.png", src=t)
            w.add_image("test", f"te{k}", array=noise(32, 32, 300 + k + seed), boxes=[Box(0, 4, 4, 16, 16)], template=tmpl)
    return out


def jpeg_bytes(h: int = 16, w: int = 16, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(noise(h, w, seed)).save(buf, format="JPEG")
    return buf.getvalue()


def write_fake_deeppcb(root: Path) -> Path:
    """A three-pair DeepPCB look-alike (PCBData/ with both lists): comma-separated and
    space-separated annotations, one without a final newline."""
    pcb = root / "PCBData"
    group = pcb / "group00001"
    (group / "00001").mkdir(parents=True)
    (group / "00001_not").mkdir(parents=True)
    anns = {
        "00001000": "1 1 10 10 1\n5 5 20 30 6\n",
        "00001001": "2,3,12,14,3\n0,0,40,40,2",  # commas, no final newline
        "00001002": "3 3 9 9 4\n10 10 20 20 5",
    }
    for k, (stem, text) in enumerate(anns.items()):
        (group / "00001" / f"{stem}_test.jpg").write_bytes(jpeg_bytes(40, 40, k))
        (group / "00001" / f"{stem}_temp.jpg").write_bytes(jpeg_bytes(40, 40, 10 + k))
        (group / "00001_not" / f"{stem}.txt").write_text(text)
    line = "group00001/00001/{0}.jpg group00001/00001_not/{0}.txt"
    (pcb / "trainval.txt").write_text("\n".join(line.format(s) for s in ("00001000", "00001001")))
    (pcb / "test.txt").write_text(line.format("00001002") + "\n")
    return root
