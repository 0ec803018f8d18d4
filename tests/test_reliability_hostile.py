"""Hostile input: path traversal, links out of a dataset, decompression bombs on the
generation and training paths, malformed checkpoints, and pickle.

    .venv/bin/python -m pytest tests/test_reliability_hostile.py -x -q

tests/test_bad_input.py already covers COCO `file_name` traversal, YOLO image lists and
split entries leading outside, an image linked in from outside a YOLO folder, and bombs
met by the importers; this file covers the rest. Every case must end in a MidgError that
names the file, never another exception and never a read outside the dataset.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save as np_save
from typer.testing import CliRunner

from _reliability import REPO, make_boards, train_smoke_generator
from data_builders import bomb_png, write_fake_deeppcb, write_image, write_yolo_dataset
from midg.datasets.errors import DatasetError, MidgError
from midg.datasets.layout import load_dataset
from midg.pipelines.cli import app


def refused(fn, *expected: str) -> str:
    with pytest.raises(MidgError) as exc:
        fn()
    msg = str(exc.value)
    for text in expected:
        assert text in msg, msg
    return msg


# ---------------------------------------------------------------- path traversal


@pytest.mark.parametrize("entry", ["..", "../..", "/"])
def test_data_yaml_path_cannot_widen_the_import(tmp_path, entry):
    from midg.datasets.imports import import_yolo

    src = write_yolo_dataset(tmp_path / "ds" / "yolo")
    text = (src / "data.yaml").read_text().replace("path: .", f"path: {entry}")
    (src / "data.yaml").write_text(text)
    refused(lambda: import_yolo(src, tmp_path / "out"), "data.yaml:1:", "leads outside the folder of data.yaml")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where, value", [
    ("pairs", {"images/train/tr0.png": "../../secret.png"}),
    ("pairs", {"images/train/tr0.png": "/etc/passwd"}),
    ("defects", [{"image": "../../secret.png", "rect": [0, 0, 4, 4]}]),
    ("defects", [{"image": "/etc/passwd", "rect": [0, 0, 4, 4]}]),
])
def test_meta_json_paths_leading_outside_are_refused(tiny_canonical, where, value):
    write_image(tiny_canonical.parent / "secret.png", 8, 8)
    meta_path = tiny_canonical / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta[where] = value
    meta_path.write_text(json.dumps(meta))
    refused(lambda: load_dataset(tiny_canonical), str(meta_path), "leads outside the dataset folder")


# ---------------------------------------------------------------- links out of a dataset


@pytest.mark.parametrize("inside, target", [
    ("images/train/tr0.png", "/etc/passwd"),
    ("images/train/tr0.png", "outside.png"),
    ("normals/n0.png", "outside.png"),
    ("labels/train/tr0.txt", "outside.txt"),
    ("annotations/train.json", "outside.json"),
    ("meta.json", "outside.json"),
    ("data.yaml", "outside.yaml"),
    ("images/val", "outside_dir"),
])
def test_load_dataset_refuses_links_leading_outside(tiny_canonical, inside, target):
    """Each file (or folder) is replaced by a link to a same-content copy outside the
    dataset, or to /etc/passwd: only the link's destination is wrong, and that is caught."""
    link = tiny_canonical / inside
    if target == "/etc/passwd":
        dest = Path(target)
    else:
        dest = tiny_canonical.parent / target
        (shutil.copytree if link.is_dir() else shutil.copyfile)(link, dest)
    shutil.rmtree(link) if link.is_dir() else link.unlink()
    link.symlink_to(dest)
    refused(lambda: load_dataset(tiny_canonical), "leads outside the dataset folder")


def test_yolo_import_refuses_a_label_linked_from_outside(tmp_path):
    from midg.datasets.imports import import_yolo

    src = write_yolo_dataset(tmp_path / "yolo")
    lbl = src / "labels" / "train" / "a.txt"
    outside = tmp_path / "elsewhere.txt"
    shutil.copyfile(lbl, outside)
    lbl.unlink()
    lbl.symlink_to(outside)
    refused(lambda: import_yolo(src, tmp_path / "out"), str(lbl), "label leads outside the dataset folder")


@pytest.mark.parametrize("which", ["image", "mask", "normal"])
def test_mask_import_refuses_files_linked_from_outside(tmp_path, which):
    from midg.datasets.folder import import_masks

    images, masks, normals = tmp_path / "images", tmp_path / "masks", tmp_path / "normals"
    write_image(images / "a.png", 20, 20)
    m = np.zeros((20, 20), np.uint8)
    m[2:6, 3:9] = 255
    masks.mkdir()
    Image.fromarray(m).save(masks / "a.png")
    write_image(normals / "n.png", 20, 20)
    folder = {"image": images, "mask": masks, "normal": normals}[which]
    outside = write_image(tmp_path / "secret" / "b.png", 20, 20)
    (folder / "b.png").symlink_to(outside)
    if which == "mask":
        write_image(images / "b.png", 20, 20)
    refused(lambda: import_masks(images, masks, tmp_path / "out", normals=normals), "b.png", "leads outside")


def test_deeppcb_import_refuses_a_linked_image(tmp_path):
    from midg.datasets.deeppcb import import_deeppcb

    src = write_fake_deeppcb(tmp_path / "DeepPCB")
    img = src / "PCBData" / "group00001" / "00001" / "00001001_test.jpg"
    outside = tmp_path / "outside.jpg"
    shutil.copyfile(img, outside)
    img.unlink()
    img.symlink_to(outside)
    refused(lambda: import_deeppcb(src, tmp_path / "out"), str(img), "leads outside the DeepPCB folder")


# ---------------------------------------------------------------- decompression bombs


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    from helpers_generate import make_paired_dataset
    from midg.augment.library import write_library_folder

    root = tmp_path_factory.mktemp("hostile_lib")
    real = load_dataset(make_paired_dataset(root / "real", n_images=6))
    return write_library_folder(real, root / "lib", crop_size=32, min_window=16)


def _generate(library: Path, normals: Path, out: Path, *extra: str):
    return CliRunner().invoke(app, ["generate", "--checkpoint", str(library), "--method", "copypaste", "--normals",
                                    str(normals), "--out", str(out), "--n-images", "4", *extra])


def test_bomb_among_the_normals_of_generate(library, tmp_path):
    from helpers_generate import make_normals

    normals = make_normals(tmp_path / "normals", n=3)
    bomb = bomb_png(normals / "n01.png")
    res = _generate(library, normals, tmp_path / "out")
    assert isinstance(res.exception, MidgError) and str(bomb) in str(res.exception), res.output
    assert "decompression bomb" in str(res.exception) or "over the limit" in str(res.exception)
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["normals"]


def test_bomb_as_the_shape_image(tmp_path):
    from midg.augment.generate import read_shape

    bomb = bomb_png(tmp_path / "shape.png")
    refused(lambda: read_shape(bomb), str(bomb), "pixels")


def test_bomb_in_the_training_set_of_the_generator(tmp_path):
    from midg.augment.train import train_generator

    from _reliability import quiet, smoke_generator_config

    boards = make_boards(tmp_path / "boards", n_images=8)
    bomb = bomb_png(boards / "normals" / "board_00001.png")  # a normal the training crops are cut from
    refused(lambda: train_generator(boards, tmp_path / "ckpt", smoke_generator_config(steps=2), console=quiet()),
            str(bomb), "pixels")


def test_deeply_nested_layout_json(library, tmp_path):
    from helpers_generate import make_normals

    layout = tmp_path / "layout.json"
    layout.write_text("[" * 100_000 + "]" * 100_000)
    res = _generate(library, make_normals(tmp_path / "normals", n=2), tmp_path / "out", "--layout", str(layout))
    assert isinstance(res.exception, MidgError) and str(layout) in str(res.exception), res.output


# ---------------------------------------------------------------- malformed checkpoints


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile_ckpt")
    return train_smoke_generator(make_boards(root / "boards", n_images=8), root / "ckpt", steps=2, sample_every=0,
                                 log_every=1)


def _edit_json(name: str, **changes):
    def edit(d: Path) -> None:
        doc = json.loads((d / name).read_text())
        doc.update(changes)
        (d / name).write_text(json.dumps(doc))
    return edit


def _write(name: str, data):
    def edit(d: Path) -> None:
        (d / name).write_bytes(data(d / name) if callable(data) else data)
    return edit


def _networks(**block_changes):
    def edit(d: Path) -> None:
        doc = json.loads((d / "config.json").read_text())
        for block, changes in block_changes.items():
            doc["networks"][block].update(changes)
        (d / "config.json").write_text(json.dumps(doc))
    return edit


def _library_meta(meta: str | None, drop: str | None = None):
    def edit(d: Path) -> None:
        arrays = np_load_file(str(d / "library.safetensors"))
        if drop:
            arrays.pop(drop)
        (d / "library.safetensors").write_bytes(np_save(arrays, metadata={"midg": meta} if meta else None))
    return edit


W, L = "generator.safetensors", "library.safetensors"
HEADER = lambda h: struct.pack("<Q", len(h)) + h  # noqa: E731
CHECKPOINT_CASES = {
    "weights truncated": (_write(W, lambda p: p.read_bytes()[: p.stat().st_size // 2]), W),
    "weights random bytes": (_write(W, os.urandom(300)), W),
    "weights empty": (_write(W, b""), W),
    "weights header claims 2**62 bytes": (_write(W, struct.pack("<Q", 2**62) + b"{}"), W),
    "weights header not an object": (_write(W, HEADER(b"[1, 2]")), W),
    "weights offsets past the end": (_write(W, HEADER(b'{"inpaint.x": {"dtype": "F32", "shape": [1000000], '
                                                     b'"data_offsets": [0, 4000000]}}')), W),
    "weights of another shape": (_networks(inpaint={"base": 4}), W),
    "networks asking for 10**5 channels": (_networks(inpaint={"base": 100_000}), "config.json"),
    "networks disagreeing with channels": (_networks(defect={"channels": 3}), "config.json"),
    "networks with a negative size": (_networks(edge={"base": -8}), "config.json"),
    "networks with a string size": (_networks(defect={"res_blocks": "two"}), "config.json"),
    "networks with an unknown argument": (_networks(edge={"colour": True}), "config.json"),
    "networks not a mapping": (_edit_json("config.json", networks=["inpaint"]), "config.json"),
    "config not JSON": (_write("config.json", b"{\"format\": "), "config.json"),
    "config not UTF-8": (_write("config.json", b"\xff\xfe{}"), "config.json"),
    "config nested 100000 deep": (_write("config.json", b"[" * 100_000 + b"]" * 100_000), "config.json"),
    "config a list": (_write("config.json", b"[]"), "config.json"),
    "config of another format": (_edit_json("config.json", format="pickle-1"), "config.json"),
    "classes not a list": (_edit_json("config.json", classes=6), "config.json"),
    "channels a string": (_edit_json("config.json", channels="gray"), "config.json"),
    "crop_size negative": (_edit_json("config.json", crop_size=-32), "config.json"),
    "library truncated": (_write(L, lambda p: p.read_bytes()[:100]), L),
    "library random bytes": (_write(L, os.urandom(64)), L),
    "library without metadata": (_library_meta(None), L),
    "library metadata a list": (_library_meta("[1, 2]"), L),
    "library metadata not JSON": (_library_meta("{classes"), L),
    "library classes a number": (_library_meta('{"classes": 3}'), L),
    "library missing an array": (_library_meta('{"classes": ["open"]}', drop="patches"), L),
    "stats a list": (_write("stats.json", b"[]"), "stats.json"),
    "stats nested deep": (_write("stats.json", b'{"a":' * 50_000 + b"1" + b"}" * 50_000), "stats.json"),
    "stats sizes not pairs": (_edit_json("stats.json", per_class={"open": {"count": 1, "sizes": [[3]]}}), "stats.json"),
    "stats histogram of strings": (_edit_json("stats.json", per_class={"open": {"count": 1, "sizes": [[3, 4]],
                                                                                "conductor_hist": ["x"] * 10}}),
                                   "stats.json"),
    "train state truncated": (_write("train_state/last.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}"),
                              "last.safetensors"),
    "train state json a list": (_write("train_state/last.json", b"[]"), "last.json"),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_malformed_checkpoint_is_a_midg_error_naming_the_file(checkpoint, tmp_path, case):
    from midg.augment.checkpoint import load_checkpoint_config, load_generator, load_train_state
    from midg.augment.generate import read_config
    from midg.augment.library import load_library, load_stats

    edit, culprit = CHECKPOINT_CASES[case]
    bad = tmp_path / "ckpt"
    shutil.copytree(checkpoint, bad)
    edit(bad)
    loaders = {"generator": load_generator, "config": load_checkpoint_config, "library": load_library,
               "stats": load_stats, "train_state": load_train_state, "generate's config": read_config}
    failed = []
    for name, load in loaders.items():
        try:
            load(bad)
        except MidgError as exc:
            assert culprit in str(exc), f"{name}: {exc}"
            failed.append(name)
        # any other exception fails the test here, with its traceback
    assert failed, f"{case}: no loader noticed"


def test_malformed_checkpoint_through_midg_generate(checkpoint, tmp_path):
    bad = tmp_path / "ckpt"
    shutil.copytree(checkpoint, bad)
    _networks(inpaint={"colour": "red"})(bad)  # an argument the block does not take
    res = CliRunner().invoke(app, ["generate", "--checkpoint", str(bad), "--normals", str(checkpoint.parent / "boards"),
                                   "--out", str(tmp_path / "out"), "--n-images", "2"])
    assert isinstance(res.exception, DatasetError) and "config.json: bad 'networks' entry" in str(res.exception)


# ---------------------------------------------------------------- pickle

SOURCE_DIRS = ("augment", "datasets", "detectors", "pipelines", "benchmarks")
PICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword_is(call: ast.Call, name: str, value) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def test_no_source_file_unpickles():
    """torch.load only with weights_only=True; no pickle-family module, np.load(allow_pickle=True),
    read_pickle or torch.jit.load anywhere; ultralytics (whose .pt files are pickles) is
    handed a file path only in detectors/yolo.py."""
    problems, yolo_calls, n_files = [], [], 0
    for folder in SOURCE_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            n_files += 1
            rel = path.relative_to(REPO).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), rel)):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                    for mod in mods:
                        if mod.split(".")[0] in PICKLING_MODULES:
                            problems.append(f"{rel}:{node.lineno}: imports {mod}")
                    if isinstance(node, ast.ImportFrom) and node.module == "torch" and "load" in [a.name for a in node.names]:
                        problems.append(f"{rel}:{node.lineno}: `from torch import load` hides its calls from this scan")
                if not isinstance(node, ast.Call):
                    continue
                name = _dotted(node.func)
                where = f"{rel}:{node.lineno}: {name}"
                if name.endswith("torch.load"):
                    if not _keyword_is(node, "weights_only", True):
                        problems.append(f"{where} without weights_only=True")
                elif name.split(".")[-1] == "load" and name.split(".")[0] in ("np", "numpy"):
                    if _keyword_is(node, "allow_pickle", True):
                        problems.append(f"{where} with allow_pickle=True")
                elif name.endswith("read_pickle") or name.endswith("jit.load"):
                    problems.append(where)
                elif name == "YOLO":
                    yolo_calls.append(rel)
    assert n_files > 40, "the scan found too few source files"
    assert problems == [], "\n".join(problems)
    assert set(yolo_calls) <= {"detectors/yolo.py"}, yolo_calls


def test_the_scan_would_catch_an_unsafe_torch_load(tmp_path):
    tree = ast.parse("import torch\nstate = torch.load('x.pt')\nok = torch.load('y.pt', weights_only=True)\n")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _dotted(n.func) == "torch.load"]
    assert [_keyword_is(c, "weights_only", True) for c in calls] == [False, True]


def test_docs_say_what_user_weights_mean_for_trust():
    text = (REPO / "RELIABILITY.md").read_text(encoding="utf-8")
    assert "--weights" in text and "pickle" in text and "runs code" in text
