"""Both training paths of the generator and the shipped DeepPCB generator.

Paired sources (aligned templates) paint on the real template crop; unpaired ones (no
template) paint on the inpainting block's pseudo-normal. Both train and generate. The
shipped generator (augment/pretrained/deeppcb) generates from a fresh clone with no
training, and fine-tunes onto other classes (`--init deeppcb`).
"""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from helpers_generate import make_normals, make_paired_dataset
from midg.augment.checkpoint import PRETRAINED_DIR, init_generators, load_generator, resolve_checkpoint
from midg.augment.config import generator_config
from midg.augment.generate import generate_dataset
from midg.augment.model import MIDGModel
from midg.augment.train import train_generator
from midg.augment.trainset import build_training_set
from midg.datasets.layout import DatasetWriter, load_dataset
from midg.datasets.params import load_params
from midg.pipelines.cli import app

REPO = Path(__file__).resolve().parents[1]


def _unpaired_copy(paired: Path, out: Path, names=None) -> Path:
    """The same defect images and boxes without templates (the templates become normals)."""
    ds = load_dataset(paired)
    from midg.datasets.images import read_image

    with DatasetWriter(out, names or ds.names, source="test-unpaired", seed=0) as w:
        for e in ds.images("train"):
            w.add_image("train", Path(e.file).stem, array=read_image(ds.path(e.file)), boxes=e.boxes)
        for n in ds.normals:
            w.add_normal(Path(n).stem, array=read_image(ds.path(n)))
    return out


def _smoke(**kw):
    return generator_config(load_params(REPO / "params.yaml"), "smoke", sample_every=0, log_every=2, **kw)


@pytest.mark.parametrize("paired", [True, False])
def test_paired_and_unpaired_sources_train_and_generate(tmp_path, paired):
    real = make_paired_dataset(tmp_path / "paired", n_images=8)
    data = real if paired else _unpaired_copy(real, tmp_path / "unpaired")
    ts = build_training_set(load_dataset(data), _smoke(steps=2))
    assert bool(ts.paired.bool().all()) is paired and bool(ts.paired.bool().any()) is paired
    if paired:  # the defect module's background is the real template crop
        assert ts.background.abs().sum() > 0
    train_generator(data, tmp_path / "ckpt", _smoke(steps=3), profile="smoke", console=Console(file=io.StringIO()))
    make_normals(tmp_path / "normals", n=3)
    for background in ("normal", "inpainted"):
        from midg.augment.generate import GenerateConfig

        ds = generate_dataset(tmp_path / "ckpt", tmp_path / "normals", tmp_path / f"syn_{background}", n_images=3,
                              seed=0, batch_size=4, progress=False,
                              config=GenerateConfig(background=background, composite="rectangle"))
        assert ds.counts()["train"]["images"] == 3


def test_model_paints_on_the_template_for_paired_items():
    cfg = _smoke(steps=1)
    model = MIDGModel(cfg, channels=1, num_classes=6)
    s, b = cfg.crop_size, 2
    g = torch.Generator().manual_seed(0)
    hole = torch.zeros(b, 1, s, s)
    hole[:, :, 8:20, 8:20] = 1
    batch = {"image": torch.rand(b, 1, s, s, generator=g), "hole": hole, "class_ids": torch.tensor([0, 1]),
             "edges": torch.zeros(b, 1, s, s), "background": torch.full((b, 1, s, s), 0.25),
             "paired": torch.tensor([1.0, 0.0]), "inp_image": torch.rand(b, 1, s, s, generator=g), "inp_hole": hole,
             "inp_target": torch.rand(b, 1, s, s, generator=g)}
    out = model.forward_generators(batch)
    inside = out["inpainted"][:, 0, 8:20, 8:20]
    assert torch.all(inside[0] == 0.25)  # paired: the real template, not the inpainter's guess
    assert not torch.all(inside[1] == 0.25)  # unpaired: the inpainted pseudo-normal


# ---------------------------------------------------------------- the shipped generator


def test_shipped_deeppcb_generator_is_small_and_loads_without_pickle_or_network(monkeypatch):
    folder = PRETRAINED_DIR / "deeppcb"
    assert resolve_checkpoint("deeppcb") == folder
    assert sum(p.stat().st_size for p in folder.iterdir()) < 10 * 2**20
    assert not any(p.suffix in (".pt", ".pth", ".pkl", ".ckpt") for p in folder.iterdir())

    def no_network(*a, **k):
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    gen = load_generator("deeppcb")
    assert gen.config["classes"] == ["open", "short", "mousebite", "spur", "copper", "pin-hole"]


def test_generate_with_the_shipped_checkpoint_by_name(tmp_path):
    make_normals(tmp_path / "normals", n=2, size=128)
    res = CliRunner().invoke(app, ["generate", "--checkpoint", "deeppcb", "--normals", str(tmp_path / "normals"),
                                   "--out", str(tmp_path / "syn"), "--n-images", "2", "--seed", "0"])
    assert res.exit_code == 0, res.output
    ds = load_dataset(tmp_path / "syn")
    assert ds.counts()["train"]["images"] == 2 and ds.meta["generate"]["checkpoint"].endswith("deeppcb")


def test_init_deeppcb_keeps_shared_classes_and_adds_new_ones(tmp_path):
    real = make_paired_dataset(tmp_path / "paired", n_images=6)
    names = ["scratch", "copper", "pin-hole"]  # other classes: one new, two shared, another order
    ds = load_dataset(real)
    from midg.datasets.images import read_image
    from midg.datasets.boxes import Box

    old = ds.names
    with DatasetWriter(tmp_path / "mine", names, source="test", seed=0) as w:
        for e in ds.images("train"):
            boxes = [Box(names.index(old[b.cls]), b.x1, b.y1, b.x2, b.y2) for b in e.boxes if old[b.cls] in names]
            t = w.add_normal(Path(e.template).stem, array=read_image(ds.path(e.template)))
            w.add_image("train", Path(e.file).stem, array=read_image(ds.path(e.file)), boxes=boxes, template=t)
    res = CliRunner().invoke(app, ["generator", "train", str(tmp_path / "mine"), "--out", str(tmp_path / "ft"),
                                   "--profile", "smoke", "--steps", "1", "--init", "deeppcb"])
    assert res.exit_code == 0, res.output
    shipped, tuned = load_generator("deeppcb"), load_generator(tmp_path / "ft")
    assert tuned.config["classes"] == names and tuned.config["crop_size"] == shipped.config["crop_size"]
    assert tuned.config["init"]["classes_new"] == ["scratch"]
    # one step moves the weights a little: the shared class rows start from the shipped ones
    key = "class_bias.embed.weight"
    e_old, e_new = shipped.nets["edge"].state_dict()[key], tuned.nets["edge"].state_dict()[key]
    assert torch.allclose(e_new[1], e_old[4], atol=5e-3) and torch.allclose(e_new[2], e_old[5], atol=5e-3)
    assert not torch.allclose(e_new[0], e_old[0], atol=5e-3)


def test_init_refuses_another_channel_count(tmp_path):
    cfg = _smoke(steps=1)
    init = load_generator("deeppcb").config
    import dataclasses

    cfg = dataclasses.replace(cfg, **{k: init["generator"][k] for k in ("crop_size", "base_channels", "res_blocks")})
    model = MIDGModel(cfg, channels=3, num_classes=2)
    from midg.datasets.errors import DatasetError

    with pytest.raises(DatasetError, match="other channels"):
        init_generators(model, "deeppcb", ["copper", "x"])
