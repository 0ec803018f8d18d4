"""Property-based tests of every reader: whatever the bytes, the tool reads them correctly
or raises its own MidgError (naming the file), never another exception.

    .venv/bin/python -m pytest tests/test_properties.py -x -q

Readers: YOLO label text (datasets/yolo.py), COCO instances JSON (datasets/coco.py),
DeepPCB annotation lines and pair lists (datasets/deeppcb.py), mask images and their
connected-component boxes (datasets/images.read_mask, datasets/folder.boxes_from_mask),
params (datasets/params.fill with every config dataclass of the project, load_params).
Inputs mix raw noise with near-valid documents that have one part replaced by anything,
since those reach deepest. Example counts are modest (the file runs in seconds); failures
print the smallest example hypothesis found.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from midg.datasets.boxes import Box
from midg.datasets.errors import MidgError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("properties")


# ---------------------------------------------------------------- building blocks

NUMBER_TEXT = st.one_of(
    st.integers(-3, 12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(0, 1).map(lambda v: f"{v:.6f}"),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "-0", "0x10", "1_0", "", "abc", "½", "٣", "1e-320", "5e-324",
                     "0.5.5", "+1", "--1"]),
)
SEPARATORS = st.sampled_from([" ", "  ", "\t", ",", ", ", "\u00a0", "\u2003"])
NEWLINES = st.sampled_from(["\n", "\r\n", "\r", "\x85", "\u2028", "\x0c"])


def token_lines(tokens, max_fields: int = 7):
    line = st.builds(lambda parts, sep: sep.join(parts), st.lists(tokens, max_size=max_fields), SEPARATORS)
    return st.builds(lambda lines, nl: nl.join(lines), st.lists(line, max_size=6), NEWLINES)


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(10**400), 10**400),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                                st.dictionaries(st.text(max_size=8), kids, max_size=4)),
                           max_leaves=12)


def replace_somewhere(doc, data, value_strategy=JSON_VALUES):
    """`doc` (nested lists/dicts) with one randomly chosen node replaced by a drawn value."""
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + [i])

    walk(doc, [])
    path = data.draw(st.sampled_from(paths[1:]))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = data.draw(value_strategy)
    return doc


def assert_box_inside(b: Box, n_classes: int, width: int, height: int) -> None:
    assert isinstance(b.cls, int) and 0 <= b.cls < n_classes
    assert all(math.isfinite(v) for v in (b.x1, b.y1, b.x2, b.y2))
    assert 0 <= b.x1 < b.x2 <= width and 0 <= b.y1 < b.y2 <= height, b


# ---------------------------------------------------------------- YOLO labels


@SETTINGS
@given(text=st.one_of(st.text(), token_lines(NUMBER_TEXT)), n_classes=st.integers(1, 8),
       width=st.integers(1, 5000), height=st.integers(1, 5000))
def test_yolo_label_text_is_read_or_refused(text, n_classes, width, height):
    from midg.datasets.errors import DatasetError
    from midg.datasets.yolo import parse_label_text

    try:
        boxes = parse_label_text(text, "x/labels/a.txt", n_classes, width, height)
    except DatasetError as exc:
        assert "x/labels/a.txt" in str(exc)
        return
    for b in boxes:
        assert_box_inside(b, n_classes, width, height)


@SETTINGS
@given(data=st.data(), width=st.integers(8, 4000), height=st.integers(8, 4000))
def test_yolo_labels_round_trip(data, width, height):
    """Boxes we write are the boxes we read (to the 6 decimals of the format)."""
    from midg.datasets.yolo import format_label_lines, parse_label_text

    boxes = []
    for _ in range(data.draw(st.integers(0, 5))):
        x1 = data.draw(st.integers(0, width - 1))
        y1 = data.draw(st.integers(0, height - 1))
        x2 = data.draw(st.integers(x1 + 1, width))
        y2 = data.draw(st.integers(y1 + 1, height))
        boxes.append(Box(data.draw(st.integers(0, 5)), x1, y1, x2, y2))
    back = parse_label_text(format_label_lines(boxes, width, height), "a.txt", 6, width, height)
    assert [b.cls for b in back] == [b.cls for b in boxes]
    tol = 1e-6 * max(width, height) * 2
    for a, b in zip(back, boxes):
        assert max(abs(a.x1 - b.x1), abs(a.y1 - b.y1), abs(a.x2 - b.x2), abs(a.y2 - b.y2)) <= tol


# ---------------------------------------------------------------- COCO instances


def valid_coco() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30},
                   {"id": 2, "file_name": "sub/b.png", "width": 20, "height": 20}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [2, 3, 10, 5], "area": 50, "iscrowd": 0},
                        {"id": 2, "image_id": 2, "category_id": 7, "bbox": [0.5, 0, 19.5, 20]}],
        "categories": [{"id": 7, "name": "hole"}, {"id": 3, "name": "crack"}],
    }


def check_coco(path: Path, names=None) -> None:
    from midg.datasets.coco import load_coco
    from midg.datasets.errors import DatasetError

    try:
        cat_names, images = load_coco(path, names)
    except DatasetError as exc:
        assert str(path) in str(exc)
        return
    assert all(isinstance(n, str) for n in cat_names)
    assert len({im.id for im in images}) == len(images)
    for im in images:
        assert isinstance(im.width, int) and not isinstance(im.width, bool) and im.width > 0
        assert isinstance(im.height, int) and not isinstance(im.height, bool) and im.height > 0
        assert not im.file_name.startswith("/") and ".." not in im.file_name.split("/")
        for b in im.boxes:
            assert_box_inside(b, len(cat_names), im.width, im.height)


@SETTINGS
@given(data=st.data())
def test_coco_near_valid_documents(work, data):
    path = work / "near.json"
    doc = replace_somewhere(valid_coco(), data)
    path.write_text(json.dumps(doc, allow_nan=False))
    check_coco(path)


@SETTINGS
@given(raw=st.one_of(st.binary(max_size=300), JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                     st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),
                     st.just(b'{"images": [], "annotations": [], "categories": [{"id": 1e400, "name": "x"}]}')))
def test_coco_arbitrary_bytes(work, raw):
    path = work / "raw.json"
    path.write_bytes(raw)
    check_coco(path)


# ---------------------------------------------------------------- DeepPCB


@SETTINGS
@given(text=st.one_of(st.text(), token_lines(NUMBER_TEXT, max_fields=6)),
       width=st.integers(1, 1000), height=st.integers(1, 1000))
def test_deeppcb_annotation_lines(work, text, width, height):
    from midg.datasets.deeppcb import parse_annotation
    from midg.datasets.errors import DatasetError

    path = work / "ann.txt"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        boxes = parse_annotation(path, width, height)
    except DatasetError as exc:
        assert str(path) in str(exc)
        return
    for b in boxes:
        assert_box_inside(b, 6, width, height)


PATH_TOKENS = st.one_of(st.text(max_size=10), st.sampled_from(["..", "/", "a/../..", "~", "x\\y", "g/1/000.jpg",
                                                               "g/1_not/000.txt", "\x00"]))


@SETTINGS
@given(text=token_lines(PATH_TOKENS, max_fields=3))
def test_deeppcb_pair_lists_stay_inside(work, text):
    from midg.datasets.deeppcb import read_pair_list
    from midg.datasets.errors import DatasetError

    path = work / "PCBData" / "trainval.txt"
    path.parent.mkdir(exist_ok=True)
    try:
        path.write_text(text, encoding="utf-8")
    except UnicodeEncodeError:
        assume(False)
    try:
        pairs = read_pair_list(path)
    except DatasetError as exc:
        assert str(path) in str(exc)
        return
    root = path.parent.resolve()
    for p in pairs:
        for f in (p.test_image, p.template, p.annotation):
            assert Path(f).resolve().is_relative_to(root), f


# ---------------------------------------------------------------- masks


MODES = ["L", "P", "RGB", "RGBA", "LA", "1", "I;16", "I", "F"]


@SETTINGS
@given(data=st.data(), mode=st.sampled_from(MODES), fmt=st.sampled_from(["PNG", "BMP", "TIFF", "GIF"]))
def test_masks_of_any_mode_give_tight_boxes_over_every_marked_pixel(work, data, mode, fmt):
    from midg.datasets.errors import DatasetError
    from midg.datasets.folder import boxes_from_mask
    from midg.datasets.images import read_mask

    h, w = data.draw(st.integers(1, 24)), data.draw(st.integers(1, 24))
    values = data.draw(st.lists(st.sampled_from([0, 0, 0, 1, 2, 255]), min_size=h * w, max_size=h * w))
    arr = np.array(values, np.uint8).reshape(h, w)
    if mode in ("RGB", "RGBA"):
        im = Image.fromarray(np.stack([arr] * (3 if mode == "RGB" else 4), axis=-1), mode)
    elif mode == "LA":
        im = Image.fromarray(np.stack([arr, np.full_like(arr, 255)], axis=-1), "LA")
    elif mode == "P":
        im = Image.fromarray(arr, "L").convert("P")
    else:
        im = Image.fromarray(arr, "L").convert(mode)
    path = work / f"mask.{fmt.lower()}"
    try:
        im.save(path, format=fmt)
    except (OSError, ValueError, KeyError):
        assume(False)  # PIL cannot write this mode in this format
    try:
        mask = read_mask(path)
    except DatasetError as exc:
        assert str(path) in str(exc)
        return
    assert mask.dtype == np.uint8 and mask.shape == (h, w)
    values = sorted(int(v) for v in np.unique(mask) if v)
    boxes, dropped = boxes_from_mask(mask, {v: i for i, v in enumerate(values)}, path)
    assert dropped == 0
    covered = np.zeros_like(mask, bool)
    for b in boxes:
        assert_box_inside(b, max(1, len(values)), w, h)
        x1, y1, x2, y2 = int(b.x1), int(b.y1), int(b.x2), int(b.y2)
        region = mask[y1:y2, x1:x2] == values[b.cls]
        assert region[0].any() and region[-1].any() and region[:, 0].any() and region[:, -1].any()  # tight
        covered[y1:y2, x1:x2] |= region
    assert np.array_equal(covered, mask > 0), "a marked pixel is in no box"
    if len(values) > 1:  # a value without a class is refused, naming the mask
        with pytest.raises(DatasetError, match="has no class"):
            boxes_from_mask(mask, {values[0]: 0}, path)


@SETTINGS
@given(raw=st.one_of(st.binary(max_size=400),
                     st.builds(lambda head, tail: head + tail,
                               st.sampled_from([b"\x89PNG\r\n\x1a\n", b"BM", b"GIF89a", b"II*\x00", b"\xff\xd8\xff"]),
                               st.binary(max_size=300))))
def test_mask_files_of_arbitrary_bytes(work, raw):
    from midg.datasets.errors import DatasetError
    from midg.datasets.images import read_mask

    path = work / "noise.png"
    path.write_bytes(raw)
    try:
        mask = read_mask(path)
    except DatasetError as exc:
        assert str(path) in str(exc)
        return
    assert mask.dtype == np.uint8 and mask.ndim == 2


# ---------------------------------------------------------------- params


def config_classes():
    from midg.augment.config import GeneratorConfig
    from midg.augment.generate import GenerateConfig
    from midg.detectors.config import DetectorConfig
    from midg.pipelines import plan

    classes = [GeneratorConfig, GenerateConfig, DetectorConfig]
    classes += [c for c in vars(plan).values() if dataclasses.is_dataclass(c) and isinstance(c, type)
                and c.__module__ == plan.__name__ and c.__name__ not in ("Plan", "Cell")]
    return classes


CONFIGS = config_classes()


@SETTINGS
@given(data=st.data(), cls=st.sampled_from(CONFIGS))
def test_fill_builds_the_config_or_raises_config_error(data, cls):
    from midg.datasets.errors import ConfigError
    from midg.datasets.params import fill

    names = [f.name for f in dataclasses.fields(cls)]
    keys = st.one_of(st.sampled_from(names), st.text(max_size=6))
    values = data.draw(st.dictionaries(keys, JSON_VALUES, max_size=4))
    try:
        cfg = fill(cls, values, "params")
    except ConfigError:
        return  # (its message names the key; fill's own ones also say where: "params.KEY")
    assert isinstance(cfg, cls)
    for key, value in values.items():  # what was given is what the config holds (lists may become tuples)
        got = getattr(cfg, key)
        assert got == value or list(got) == value or (isinstance(got, float) and got == float(value)), key


@pytest.mark.parametrize("cls_name, values", [
    ("DetectorConfig", {"per_detector": [1]}),  # a list where a mapping belongs
    ("DetectorConfig", {"ultralytics_args": 3}),
    ("GenerateConfig", {"defects_per_image": [1, 2, 3]}),  # three values for a (lo, hi) pair
    ("DetectorConfig", {"lr": 10**400}),  # beyond any float
    ("GeneratorConfig", {"lr": float("nan")}),
])
def test_fill_regressions_found_by_the_property(cls_name, values):
    from midg.datasets.errors import ConfigError
    from midg.datasets.params import fill

    cls = next(c for c in CONFIGS if c.__name__ == cls_name)
    with pytest.raises(ConfigError):
        fill(cls, values, "params")


@SETTINGS
@given(text=st.one_of(st.text(), JSON_VALUES.map(json.dumps),
                      st.builds(lambda v: f"profile: demo\nprofiles:\n  demo: {json.dumps(v)}\n", JSON_VALUES)))
@example(text="a: " + "[" * 3000 + "]" * 3000)  # nesting beyond Python's stack (slow to parse: one example)
def test_load_params_reads_a_mapping_or_raises_its_own_error(work, text):
    from midg.datasets.params import load_params

    path = work / "params.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        doc = load_params(path)
    except MidgError as exc:
        assert str(path) in str(exc)
        return
    assert isinstance(doc, dict) and isinstance(doc["profiles"], dict)


def test_the_config_list_is_not_empty():
    assert len(CONFIGS) >= 4, CONFIGS
