"""MIDG generator networks, model step, train state, checkpoint loading, edge targets, config.

    .venv/bin/python -m pytest tests/test_generator_model.py -x -q

Everything here runs on tiny tensors (crop 16-32 px, a few channels): seconds in all.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from midg.augment.blocks import DefectNet, EdgeNet, InpaintingNet, PatchDiscriminator
from midg.augment.blocks.defect import EdgeAttention
from midg.augment.checkpoint import (load_checkpoint_config, load_generator, save_config,
                                     save_generator_weights)
from midg.augment.config import GeneratorConfig, config_dict, generator_config
from midg.augment.edgemaps import defect_edges
from midg.augment.model import BATCH_KEYS, MIDGModel
from midg.augment.samples import labelled_grid
from midg.datasets.errors import ConfigError, DatasetError
from midg.datasets.params import load_params

REPO = Path(__file__).resolve().parents[1]
TINY = GeneratorConfig(crop_size=16, min_window=8, base_channels=4, disc_channels=4, disc_layers=2, res_blocks=1,
                       noise_channels=2, batch_size=3, seed=0)


def _holes(b: int, s: int) -> torch.Tensor:
    h = torch.zeros(b, 1, s, s)
    h[:, :, s // 4: s // 2 + 2, s // 4 + 1: 3 * s // 4] = 1.0
    return h


def _batch(channels: int, b: int = 3, s: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hole = _holes(b, s)
    return {
        "image": torch.rand(b, channels, s, s, generator=g), "hole": hole,
        "class_ids": torch.tensor([0, 2, 1][:b]), "edges": (torch.rand(b, 1, s, s, generator=g) > 0.8).float() * hole,
        "inp_image": torch.rand(b, channels, s, s, generator=g), "inp_hole": hole.flip(-1),
        "inp_target": torch.rand(b, channels, s, s, generator=g),
    }


@pytest.mark.parametrize("channels", [1, 3])
def test_network_shapes_gray_and_rgb(channels):
    b, s = 2, 32
    x, hole, cls = torch.rand(b, channels, s, s), _holes(b, s), torch.tensor([0, 4])
    inp = InpaintingNet(channels=channels, base=4, res_blocks=2)
    out = inp(image=x, hole=hole)
    assert out.shape == (b, channels, s, s) and 0 <= out.min() and out.max() <= 1
    edge = EdgeNet(num_classes=6, base=4, noise_channels=2, res_blocks=1)
    logits = edge(inpainted=x, hole=hole, class_ids=cls, noise=torch.randn(b, 2, s, s))
    assert logits.shape == (b, 1, s, s)
    defect = DefectNet(channels=channels, num_classes=6, base=4, res_blocks=1)
    y = defect(inpainted=x, edges=torch.sigmoid(logits), hole=hole, class_ids=cls)
    assert y.shape == (b, channels, s, s)
    # the class embedding reaches the output: another class paints something else
    y2 = defect(inpainted=x, edges=torch.sigmoid(logits), hole=hole, class_ids=torch.tensor([1, 1]))
    assert not torch.allclose(y, y2)
    for n_cls, ids in ((0, None), (6, cls)):
        d = PatchDiscriminator(in_channels=channels, base=4, layers=3, num_classes=n_cls)
        patch, feats = d(image=x, hole=hole, class_ids=ids)
        assert patch.shape == (b, 1, s // 8, s // 8)
        assert [f.shape[-1] for f in feats] == [s // 2, s // 4, s // 8]
    with pytest.raises(ValueError, match="class-conditional"):
        PatchDiscriminator(in_channels=channels, num_classes=6)(image=x, hole=hole)


def test_shading_head_darkens_the_surface_along_the_real_shading_and_nowhere_else():
    """head shading: outside the hole the output is the surface itself; on the structure's
    cover a darker shading level paints a darker pixel (the pattern is the structure's), and
    a structure with another pattern inside the same outline moves the output with it."""
    torch.manual_seed(0)
    b, s = 1, 32
    surface, hole, cls = torch.full((b, 3, s, s), 0.7), _holes(b, s), torch.tensor([0])
    cover = torch.zeros(b, 1, s, s)
    cover[..., 10:18, 10:22] = 1.0
    pattern = torch.rand(b, 1, s, s)
    floor = 0.55
    net = DefectNet(channels=3, num_classes=1, base=4, res_blocks=1, head="shading", shading_floor=floor)
    with torch.no_grad():
        net.out.bias[:2] = torch.tensor([-4.0, 1.0])  # a shallow base and a deep shading term: the pattern dominates
        out_a = net(inpainted=surface, edges=cover * (floor + (1 - floor) * pattern), hole=hole, class_ids=cls)
        out_b = net(inpainted=surface, edges=cover * (floor + (1 - floor) * pattern.flip(-1)), hole=hole, class_ids=cls)
    inside, in_hole = cover[0, 0] > 0, hole[0, 0] > 0
    assert torch.equal(out_a[0][:, ~in_hole], surface[0][:, ~in_hole])  # nothing painted off the hole
    dark_a = (surface - out_a).mean(1)[0][inside]
    corr = torch.corrcoef(torch.stack([dark_a, pattern[0, 0][inside]]))[0, 1]
    assert corr > 0.9, corr  # darker where the real shading says darker
    assert not torch.allclose(out_a, out_b)
    with pytest.raises(ValueError, match="head"):
        DefectNet(channels=3, num_classes=1, head="paint")


def test_edge_attention_gates_texture_by_edges():
    att = EdgeAttention(4)
    tex = torch.rand(1, 4, 8, 8)
    fused_a = att(tex, torch.zeros(1, 4, 8, 8))
    fused_b = att(tex, torch.ones(1, 4, 8, 8))
    assert fused_a.shape == tex.shape and not torch.allclose(fused_a, fused_b)


@pytest.mark.parametrize("channels", [1, 3])
def test_step_returns_finite_losses_and_trains_every_block(channels):
    torch.manual_seed(0)
    model = MIDGModel(TINY, channels=channels, num_classes=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = model.step(_batch(channels))
    expected = {"g_total", "d_total", "inpaint_hole_l1", "inpaint_valid_l1", "inpaint_adv", "inpaint_fm", "edge_bce",
                "edge_adv", "edge_fm", "defect_l1", "defect_detail", "defect_tones", "defect_texture", "defect_adv", "defect_fm", "d_inpaint", "d_edge",
                "d_defect"}
    assert set(losses) == expected
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    after = model.state_dict()
    for block in ("inpaint", "edge", "defect", "d_inpaint", "d_edge", "d_defect"):
        changed = [k for k in after if k.startswith(block + ".") and not torch.equal(before[k], after[k])]
        assert changed, f"block {block} did not learn"


def _grainy_pit(seed: int, shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.full((1, 3, 32, 32), 0.6)
    grain = torch.rand((1, 3, 16, 16), generator=g) * 0.4
    image[..., 8:24, 8:24] = 0.2 + torch.roll(grain, shifts=(shift, shift), dims=(2, 3))
    hole = torch.zeros(1, 1, 32, 32)
    hole[..., 8:24, 8:24] = 1
    return image, hole


def test_detail_loss_flags_a_smooth_blob_but_not_a_shifted_grain():
    # the constructed flaw the loss exists for: a pit painted as its mean colour
    from midg.augment.model import defect_l1, detail_loss

    real, hole = _grainy_pit(0)
    shifted, _ = _grainy_pit(0, shift=5)  # the same grain, elsewhere: as real as the real one
    smooth = real.clone()
    smooth[..., 8:24, 8:24] = real[..., 8:24, 8:24].mean(dim=(2, 3), keepdim=True)
    assert detail_loss(smooth, real, hole) > 10 * detail_loss(shifted, real, hole)
    assert detail_loss(real, real, hole) == 0
    # pixel L1 prefers the blob to the real texture shifted: why the bsdata profile pools it
    assert defect_l1(smooth, real, hole, hole, 1) < defect_l1(shifted, real, hole, hole, 1)
    assert defect_l1(shifted, real, hole, hole, 8) < defect_l1(shifted, real, hole, hole, 1) / 3
    mean_shift = real + 0.1 * hole  # a pit painted too bright: pooling still sees it
    assert defect_l1(mean_shift, real, hole, hole, 8) == pytest.approx(0.1, abs=1e-5)


def test_detail_loss_ignores_colour_fringes_and_pooling_stops_at_the_cover():
    from midg.augment.model import defect_l1, detail_loss, structure_cover

    real, _ = _grainy_pit(1)
    hole = torch.zeros(1, 1, 32, 32)
    hole[..., 4:28, 4:28] = 1  # the painted rectangle: the pit and some surroundings
    edges = torch.zeros(1, 1, 32, 32)
    edges[..., 8:24, 8:24] = 0.8  # the pit's structure map
    cover = structure_cover(edges, hole)
    assert cover[..., 6:26, 6:26].all() and cover.sum() == 20 * 20  # grown by 2 px, inside the hole
    # a fringe: red up, blue down, the same luminance: no grain to reward (it was painted on bright steel)
    fringe = real.clone()
    fringe[:, 0, 8:24:2, 8:24] += 0.1
    fringe[:, 2, 8:24:2, 8:24] -= 0.1
    assert detail_loss(fringe, real, cover) < 1e-6
    # grain spilled onto the surroundings inside the hole costs pixel L1 however it is pooled:
    # generation would take the whole rectangle as changed and its border would show
    spill = real.clone()
    spill[..., 4:6, 4:28] += 0.2 * (torch.arange(24) % 2).float()
    assert defect_l1(spill, real, hole, cover, 8) >= defect_l1(spill, real, hole, cover, 1) > 0.004
    grain = real.clone()  # the same checkerboard on the pit itself: pooling lets it be
    grain[..., 8:24, 8:24] += 0.2 * (torch.arange(16) % 2).float() - 0.1  # zero mean: texture, not tone
    assert defect_l1(grain, real, hole, cover, 8) < defect_l1(spill, real, hole, cover, 8) / 3


def test_tone_loss_flags_a_smooth_blob_and_stripes_but_not_a_rearranged_pit():
    from midg.augment.model import detail_loss, tone_loss

    real, hole = _grainy_pit(2)
    real[..., 10:14, 10:14] = 0.02  # a dark core
    real[..., 8, 8:24] = 0.95  # a bright rim
    smooth = real.clone()
    smooth[..., 8:24, 8:24] = real[..., 8:24, 8:24].mean(dim=(2, 3), keepdim=True)
    shuffled = real.clone()  # the same tones, every pixel somewhere else: as real in tone
    flat = shuffled[..., 8:24, 8:24].reshape(1, 3, -1)
    shuffled[..., 8:24, 8:24] = flat[..., torch.randperm(256, generator=torch.Generator().manual_seed(0))].reshape(1, 3, 16, 16)
    stripes = real.clone()  # what the detail loss was satisfied by: periodic stripes of mid tones
    stripes[..., 8:24, 8:24] = 0.3 + 0.15 * (torch.arange(16) % 2).float()
    assert tone_loss(shuffled, real, hole) < 1e-6 and tone_loss(real, real, hole) == 0
    assert tone_loss(smooth, real, hole) > 0.1
    assert tone_loss(stripes, real, hole) > 0.05
    assert detail_loss(stripes, real, hole) < detail_loss(smooth, real, hole) / 2  # the detail loss half forgives them
    tiny = torch.zeros_like(hole)
    tiny[..., 0, 0:3] = 1
    assert tone_loss(smooth, real, tiny) == 0  # under 4 px: nothing to compare


def test_texture_loss_flags_a_horizontal_hatching_that_the_detail_loss_accepts():
    from midg.augment.model import detail_loss, texture_loss

    g = torch.Generator().manual_seed(5)
    hole = torch.zeros(1, 1, 32, 32)
    hole[..., 4:28, 4:28] = 1
    real = (0.5 + 0.08 * torch.randn(1, 1, 32, 32, generator=g)).clamp(0, 1).repeat(1, 3, 1, 1)  # grain: no direction
    rows = torch.arange(32).view(1, 1, 32, 1).float()
    # a hatching of period 2 rows as strong as the grain is along y: the detail energy at 3 px
    # about matches, but every bit of it lies along y and none along x
    hatched = (0.5 + 0.045 * torch.sign(torch.sin(rows * torch.pi / 2 + 0.5))).expand(1, 3, 32, 32)
    shifted = torch.roll(real, shifts=(3, 2), dims=(2, 3))  # the same grain elsewhere: no penalty due
    assert texture_loss(hatched, real, hole) > 5 * texture_loss(shifted, real, hole)
    assert texture_loss(hatched, real, hole) > 2 * detail_loss(hatched, real, hole)
    assert texture_loss(real, real, hole) == 0


def test_banded_tone_loss_flags_a_ring_that_the_whole_cover_accepts():
    from midg.augment.model import banded_tone_loss, tone_loss

    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    r = torch.hypot(yy - 16, xx - 16)
    cover = (r <= 10).float().view(1, 1, 32, 32)
    # the same tones, placed apart: real dark in the core and pale at its outline, fake pale
    # in the core and dark along the outline
    real = torch.where(r <= 6.4, 0.3, 0.6).expand(1, 3, 32, 32) * cover + 0.7 * (1 - cover)
    fake = torch.where(r > 8.2, 0.3, 0.6).expand(1, 3, 32, 32) * cover + 0.7 * (1 - cover)
    whole, banded = tone_loss(fake, real, cover), banded_tone_loss(fake, real, cover, band_px=3)
    assert banded > 0.1 and banded > 3 * whole
    assert banded_tone_loss(fake, real, cover, band_px=0) == whole
    assert banded_tone_loss(real, real, cover, band_px=3) == 0


def test_detail_weight_steers_the_generator_loss():
    from dataclasses import replace

    batch = _batch(3, seed=3)
    totals = []
    for w in (0.0, 50.0):
        torch.manual_seed(0)
        model = MIDGModel(replace(TINY, w_defect_detail=w, w_defect_tones=w / 2, w_defect_texture=w / 4,
                                  tone_band_px=2, defect_l1_pool=4), channels=3, num_classes=3)
        losses = model.step(batch)
        totals.append(float(losses["g_total"]) - w * float(losses["defect_detail"]) - w / 2 * float(losses["defect_tones"])
                      - w / 4 * float(losses["defect_texture"]))
        assert min(float(losses[k]) for k in ("defect_detail", "defect_tones", "defect_texture")) > 0
    assert totals[0] == pytest.approx(totals[1], rel=1e-4)  # the weight adds exactly its term


def test_train_state_round_trip_continues_identically():
    torch.manual_seed(0)
    a = MIDGModel(TINY, channels=1, num_classes=3)
    a.step(_batch(1, seed=1))
    tensors, meta = a.train_state()
    json.dumps(meta)  # metadata is JSON, not pickle
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    torch.manual_seed(123)  # a different init: loading must overwrite all of it
    b = MIDGModel(TINY, channels=1, num_classes=3)
    b.load_train_state(tensors, json.loads(json.dumps(meta)))
    la, lb = a.step(_batch(1, seed=2)), b.step(_batch(1, seed=2))
    assert all(torch.equal(la[k], lb[k]) for k in la)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def _checkpoint(folder: Path, channels: int, fp16: bool = False) -> tuple[Path, MIDGModel]:
    torch.manual_seed(0)
    model = MIDGModel(TINY, channels=channels, num_classes=3)
    model.step(_batch(channels))
    ckpt = folder / f"ckpt{channels}"
    ckpt.mkdir(parents=True)
    save_config(ckpt, {"classes": ["a", "b", "c"], "crop_size": 16, "channels": channels, "context": 2.0,
                       "min_window": 8, "networks": model.specs, "generator": config_dict(TINY)})
    save_generator_weights(ckpt, model.generator_state(torch.float16 if fp16 else torch.float32), step=1)
    return ckpt, model


@pytest.mark.parametrize("channels", [1, 3])
def test_generator_wrapper_keeps_outside_pixels_exactly(tmp_path, channels):
    ckpt, _ = _checkpoint(tmp_path, channels)
    gen = load_generator(ckpt)
    assert gen.config["channels"] == channels and gen.config["classes"] == ["a", "b", "c"]
    assert not any(p.requires_grad for net in gen.nets.values() for p in net.parameters())
    b, s = 3, 16
    crops, holes, cls = torch.rand(b, channels, s, s), _holes(b, s), torch.tensor([0, 1, 2])
    outside = holes == 0
    filled = gen.inpaint(crops, holes)
    assert torch.equal(filled.expand_as(crops)[outside.expand_as(crops)], crops[outside.expand_as(crops)])
    assert not torch.equal(filled, crops)  # inside the hole something was painted
    edges = gen.draw_edges(filled, holes, cls, torch.Generator().manual_seed(5))
    assert edges.shape == (b, 1, s, s) and edges.min() >= 0 and edges.max() <= 1
    assert torch.all(edges[outside] == 0)
    assert torch.equal(edges, gen.draw_edges(filled, holes, cls, torch.Generator().manual_seed(5)))
    assert not torch.equal(edges, gen.draw_edges(filled, holes, cls, torch.Generator().manual_seed(6)))
    painted = gen.paint(filled, edges, holes, cls)
    m = outside.expand_as(crops)
    assert torch.equal(painted[m], filled[m])
    out = gen.generate(crops, holes, cls, torch.Generator().manual_seed(5))
    assert torch.equal(out["defect"], painted)
    with pytest.raises(ValueError, match="class ids"):
        gen.paint(filled, edges, holes, torch.tensor([0, 1, 7]))
    with pytest.raises(ValueError, match="crops must be"):
        gen.inpaint(torch.rand(b, channels + 1, s, s), holes)


def test_fp16_export_loads_as_float32(tmp_path):
    ckpt32, _ = _checkpoint(tmp_path / "a", 1)
    ckpt16, _ = _checkpoint(tmp_path / "b", 1, fp16=True)
    assert (ckpt16 / "generator.safetensors").stat().st_size < 0.6 * (ckpt32 / "generator.safetensors").stat().st_size
    g16, g32 = load_generator(ckpt16), load_generator(ckpt32)
    crops, holes = torch.rand(2, 1, 16, 16), _holes(2, 16)
    a, b = g16.inpaint(crops, holes), g32.inpaint(crops, holes)
    assert a.dtype == torch.float32 and (a - b).abs().max() < 1e-2


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_generator(tmp_path / "nope")
    ckpt, _ = _checkpoint(tmp_path, 1)
    (ckpt / "config.json").write_text('{"format": "midg-generator-1", ', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"config\.json:1: not valid JSON"):
        load_checkpoint_config(ckpt)
    (ckpt / "config.json").write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(DatasetError, match="not a MIDG generator checkpoint"):
        load_checkpoint_config(ckpt)
    ckpt2, _ = _checkpoint(tmp_path / "x", 1)
    cfg = json.loads((ckpt2 / "config.json").read_text())
    cfg["networks"]["inpaint"]["base"] = 8  # weights no longer fit
    (ckpt2 / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DatasetError, match="generator.safetensors: weights of block 'inpaint' do not fit"):
        load_generator(ckpt2)
    (ckpt2 / "generator.safetensors").write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(DatasetError, match="not a readable safetensors file"):
        load_generator(ckpt2)


def test_defect_structure_is_the_filled_change_only_inside_the_hole():
    s = 32
    template = np.full((1, s, s), 0.3, np.float32)
    template[0, :, 20:26] = 0.8  # a trace crossing the crop (and the hole)
    crop = template.copy()
    crop[0, 10:16, 8:14] = 0.8  # the defect: a copper blob
    hole = np.zeros((1, s, s), np.float32)
    hole[0, 6:20, 4:28] = 1
    e = defect_edges(crop, hole, template)
    assert e.shape == (1, s, s) and set(np.unique(e)) <= {0.0, 1.0}
    ys, xs = np.nonzero(e[0])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (10, 15, 8, 13)  # the blob, not the trace
    assert e[0, 12, 10] == 1 and e[0].sum() == 36  # filled: where the surface changes
    # without a template: Canny of the crop inside the hole (the trace edges show up too)
    e2 = defect_edges(crop, hole)
    assert e2[0, hole[0] == 0].sum() == 0 and e2[0, :, 19:27].sum() > 0


def test_config_from_params_and_errors():
    doc = load_params(REPO / "params.yaml")
    for profile in ("smoke", "demo", "paper"):
        cfg = generator_config(doc, profile)
        assert cfg.crop_size % 8 == 0
    assert generator_config(doc, "smoke").crop_size == 32
    assert generator_config(doc, "smoke", steps=3, seed=None).steps == 3
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['stepz'\]; valid: .*'steps'"):
        generator_config(doc, "smoke", stepz=3)
    with pytest.raises(ConfigError, match="not one of"):
        generator_config(doc, "smoke", device="tpu")
    with pytest.raises(ConfigError, match="multiple of 8"):
        GeneratorConfig(crop_size=30)
    with pytest.raises(ConfigError, match="defect_l1_pool=3 must divide crop_size=64"):
        GeneratorConfig(crop_size=64, defect_l1_pool=3)
    with pytest.raises(ConfigError, match="unknown profile"):
        generator_config(doc, "nope")
    assert set(config_dict(TINY)) == set(GeneratorConfig.__dataclass_fields__)
    assert set(BATCH_KEYS) == set(_batch(1))


def test_labelled_grid_places_cells():
    cell = np.full((8, 8), 255, np.uint8)
    grid = labelled_grid([[cell, None], [cell, cell]], ["a", "b"], ["r1", "r2"], cell=16, pad=2)
    assert grid.dtype == np.uint8 and grid.ndim == 3
    assert grid.shape == (20 + 2 * 18 + 2, 92 + 2 * 18 + 2, 3)
