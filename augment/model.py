"""MIDGModel: the three generator blocks, their discriminators, losses and optimisers.

One contract for the loop (augment/train.py): `losses = model.step(batch)`. The loop
never looks inside; it only saves `model.train_state()` and exports `model.generator_state()`.

A step, all three blocks jointly from step 1:
    inpainting stream:  inpaint(inp_image, inp_hole) vs inp_target (template crop, or the
                        normal itself for self-supervised random rectangles)
    defect stream:      background = the template crop where the source is paired (the
                                     real surface, as at generation, where the normal
                                     crop itself is painted on); else inpaint(image, hole)
                                     (no grad: a fixed input), a pseudo-normal background
                        edges     = edge(background, hole, class, noise) vs the real
                                    structure (the filled change mask, paired sources)
                        defect    = defect(background, real or generated edges, hole, class)
                                    vs the real defect crop
Downstream blocks see detached inputs (as EdgeConnect's joint mode), so the inpainting
block keeps painting normals and the edge block keeps drawing structure.
Losses: hinge GAN with spectral-norm PatchGANs, feature matching, L1, edge BCE; for the
defect, optionally L1 on pooled images inside the defect's cover and a tone loss (the
luminance quantiles of the cover, not where each tone sits; or apart on the cover's outer
band and its inside), so that a pit's dark core is not averaged away (photographs: the
bsdata profile); a detail loss (fine-structure energy: it painted horizontal stripes,
BENCHMARKS.md) and a texture loss (gradient energy along x and along y, which a stripe
cannot match) for the grain.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from .blocks import PatchDiscriminator, build_generator_nets
from .blocks.layers import composite, gray
from .config import GeneratorConfig
from .outlines import SHADING_FLOOR

BATCH_KEYS = ("image", "hole", "class_ids", "edges", "inp_image", "inp_hole", "inp_target")
# paired sources add their real background (the template crop) and a 0/1 flag per item
BACKGROUND_KEYS = ("background", "paired")


def network_specs(cfg: GeneratorConfig, *, channels: int, num_classes: int) -> dict[str, dict[str, int]]:
    """Keyword arguments of the three generator networks (stored in config.json)."""
    return {
        "inpaint": {"channels": channels, "base": cfg.base_channels, "res_blocks": cfg.res_blocks},
        "edge": {"num_classes": num_classes, "base": cfg.base_channels, "noise_channels": cfg.noise_channels,
                 "res_blocks": cfg.res_blocks},
        "defect": {"channels": channels, "num_classes": num_classes, "base": cfg.base_channels,
                   "res_blocks": cfg.res_blocks,
                   # only when asked: checkpoints from before the option keep their specs byte for byte
                   **({"head": cfg.defect_head, "shading_floor": SHADING_FLOOR} if cfg.defect_head != "rgb" else {})},
    }


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over the pixels where `mask` is set (mask broadcast over channels)."""
    mask = mask.expand_as(values)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


DETAIL_SCALES = (3, 7)  # box sizes of the high-pass in detail_energy: grain, and a pit's rim and core
COVER_GROW = 2  # px the real structure's cover is grown by (a pit's rim sits on its outline)


def detail_energy(images: torch.Tensor, region: torch.Tensor, size: int) -> torch.Tensor:
    """[B, 1]: mean |luminance - its size x size box blur| inside `region`, per image.

    How much fine structure a region holds, wherever it sits: a smooth painted blob scores
    low against a grainy real pit, and unlike pixel L1 a grain that is merely shifted costs
    nothing, so the defect module can paint texture without being pulled to its mean. On
    luminance: per channel, the module painted colour fringes on bright steel instead."""
    grey = images.mean(dim=1, keepdim=True)
    pad = size // 2
    blurred = F.avg_pool2d(F.pad(grey, (pad, pad, pad, pad), mode="reflect"), size, stride=1)
    return ((grey - blurred).abs() * region).sum(dim=(2, 3)) / region.sum(dim=(2, 3)).clamp(min=1.0)


def detail_loss(fake: torch.Tensor, real: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """L1 between fake and real detail_energy at every DETAIL_SCALES size."""
    return sum(F.l1_loss(detail_energy(fake, region, s), detail_energy(real, region, s)) for s in DETAIL_SCALES) / len(DETAIL_SCALES)


TEXTURE_OFFSETS = (1, 2)  # px between the pixels differenced by texture_energy: the grain, a pit's specks


def texture_energy(images: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """[B, 2 * len(TEXTURE_OFFSETS)]: mean |luminance difference| between pixels `d` apart
    along x, then along y, inside `region` (both pixels in it), per image and offset.

    A grain has about as much along x as along y; a horizontal hatching has it all along y.
    Matching both (unlike detail_energy, which any pattern of the right strength matches)
    leaves the defect module no stripe to hide its grain in."""
    grey = images.mean(dim=1, keepdim=True)
    out = []
    for d in TEXTURE_OFFSETS:
        for diff, both in (((grey[..., :, d:] - grey[..., :, :-d]).abs(), region[..., :, d:] * region[..., :, :-d]),
                           ((grey[..., d:, :] - grey[..., :-d, :]).abs(), region[..., d:, :] * region[..., :-d, :])):
            out.append((diff * both).sum(dim=(2, 3)) / both.sum(dim=(2, 3)).clamp(min=1.0))
    return torch.cat(out, dim=1)


def texture_loss(fake: torch.Tensor, real: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """L1 between fake and real texture_energy."""
    return F.l1_loss(texture_energy(fake, region), texture_energy(real, region))


TONE_QUANTILES = (0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 0.95)  # of a defect's luminance: dark core to bright rim


def tone_loss(fake: torch.Tensor, real: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean |quantile difference| of luminance inside `region`, per image (TONE_QUANTILES):
    the spread of tones a real pit has (a dark core, bright specular rims) without saying
    where each sits. A smooth blob has a narrow spread and pays; unlike detail_loss, which
    painted periodic stripes to reach its energy, no pattern is rewarded for its own sake:
    only the right amount of dark and bright. Regions under 4 px are skipped."""
    levels = torch.tensor(TONE_QUANTILES, device=fake.device, dtype=fake.dtype)
    grey_f, grey_r = fake.mean(dim=1), real.mean(dim=1)
    inside = region[:, 0] > 0.5
    terms = [(torch.quantile(grey_f[b][inside[b]], levels) - torch.quantile(grey_r[b][inside[b]], levels)).abs().mean()
             for b in range(fake.shape[0]) if int(inside[b].sum()) >= 4]
    return torch.stack(terms).mean() if terms else fake.sum() * 0.0


def banded_tone_loss(fake: torch.Tensor, real: torch.Tensor, region: torch.Tensor, band_px: int) -> torch.Tensor:
    """tone_loss on `region`'s outer band `band_px` wide and on what lies inside it, averaged
    (band_px 0: on the whole region). A real pit fades out toward its loose outline; a module
    that paints its dark along the outline keeps the whole-cover quantiles and pays here."""
    if band_px <= 0:
        return tone_loss(fake, real, region)
    k = 2 * band_px + 1
    inner = 1.0 - F.max_pool2d(1.0 - region, k, stride=1, padding=band_px)
    return (tone_loss(fake, real, region - inner) + tone_loss(fake, real, inner)) / 2


def structure_cover(edges: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Where the real defect is: its structure map's support grown by COVER_GROW px, in the hole."""
    k = 2 * COVER_GROW + 1
    return F.max_pool2d((edges > 0).float(), k, stride=1, padding=COVER_GROW) * hole


def defect_l1(fake: torch.Tensor, real: torch.Tensor, hole: torch.Tensor, cover: torch.Tensor, pool: int) -> torch.Tensor:
    """L1 of the defect module inside the hole. pool = 1: pixel by pixel. pool > 1: on the
    defect's cover the images average-pooled by `pool` (each pooled pixel weighted by the
    share of the cover it holds: shading and colour, not the places of the grain), and pixel
    by pixel on the rest of the hole, the real surroundings, which must come back exactly
    (else generation takes the whole rectangle as changed and its border shows)."""
    if pool <= 1:
        return masked_mean((fake - real).abs(), hole)
    pooled = [F.avg_pool2d(t, pool) for t in (fake, real, cover)]
    return masked_mean((pooled[0] - pooled[1]).abs(), pooled[2]) + masked_mean((fake - real).abs(), hole * (1.0 - cover))


def hinge_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def feature_matching(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    return sum(F.l1_loss(f, r.detach()) for f, r in zip(fake_feats, real_feats))


class MIDGModel(nn.Module):
    def __init__(self, cfg: GeneratorConfig, *, channels: int, num_classes: int, device: str | torch.device = "cpu"):
        super().__init__()
        self.cfg = cfg
        self.channels = channels
        self.num_classes = num_classes
        self.specs = network_specs(cfg, channels=channels, num_classes=num_classes)
        nets = build_generator_nets(self.specs)
        self.inpaint, self.edge, self.defect = nets["inpaint"], nets["edge"], nets["defect"]
        disc = dict(base=cfg.disc_channels, layers=cfg.disc_layers)
        self.d_inpaint = PatchDiscriminator(in_channels=channels, **disc)  # class-free: normals have no class
        self.d_edge = PatchDiscriminator(in_channels=2, num_classes=num_classes, **disc)  # edges + gray crop
        self.d_defect = PatchDiscriminator(in_channels=channels, num_classes=num_classes, **disc)
        self.device = torch.device(device)
        self.to(self.device)
        self.opt_g = torch.optim.Adam(self.generator_parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        self.opt_d = torch.optim.Adam(self.discriminator_parameters(), lr=cfg.lr_disc, betas=tuple(cfg.betas))
        # Noise and teacher-forcing coins come from the model's own generator (on the CPU,
        # so a seed gives the same draws on any device); its state is part of train_state.
        self.rng = torch.Generator().manual_seed(cfg.seed + 1)
        self.autocast = self.device.type == "cuda"  # bf16 mixed precision on CUDA only

    # ------------------------------------------------------------------ parameters

    def generators(self) -> dict[str, nn.Module]:
        return {"inpaint": self.inpaint, "edge": self.edge, "defect": self.defect}

    def discriminators(self) -> dict[str, nn.Module]:
        return {"inpaint": self.d_inpaint, "edge": self.d_edge, "defect": self.d_defect}

    def generator_parameters(self) -> list[nn.Parameter]:
        return [p for net in self.generators().values() for p in net.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [p for net in self.discriminators().values() for p in net.parameters()]

    # ------------------------------------------------------------------ forward

    def forward_generators(self, batch: dict[str, torch.Tensor], rng: torch.Generator | None = None,
                           teacher_forcing: float | None = None) -> dict[str, torch.Tensor]:
        """Every generator output of one batch (used by `step` and by the sample grids).

        Noise and coins come from `rng` (default: the model's own training generator), so a
        preview grid drawn with its own generator leaves the training sequence untouched.
        """
        rng = self.rng if rng is None else rng
        p_teacher = self.cfg.teacher_forcing if teacher_forcing is None else teacher_forcing
        image, hole, cls = batch["image"], batch["hole"], batch["class_ids"]
        b, _, h, w = image.shape
        out: dict[str, torch.Tensor] = {}
        raw = self.inpaint(image=batch["inp_image"], hole=batch["inp_hole"])
        out["inp_raw"] = raw
        out["inp_comp"] = composite(raw, batch["inp_image"], batch["inp_hole"])
        with torch.no_grad():
            inpainted = composite(self.inpaint(image=image, hole=hole), image, hole)
        if "background" in batch:
            # paired sources paint on the real template (never the inpainter's guess)
            real_bg = batch["paired"].view(-1, 1, 1, 1) > 0.5
            inpainted = torch.where(real_bg, composite(batch["background"], image, hole), inpainted)
        out["inpainted"] = inpainted
        noise = torch.randn((b, self.cfg.noise_channels, h, w), generator=rng).to(self.device)
        logits = self.edge(inpainted=inpainted, hole=hole, class_ids=cls, noise=noise)
        out["edge_logits"] = logits
        out["edges"] = torch.sigmoid(logits) * hole
        coin = torch.rand((b, 1, 1, 1), generator=rng).to(self.device)
        edges_in = torch.where(coin < p_teacher, batch["edges"], out["edges"].detach())
        out["edges_in"] = edges_in
        painted = self.defect(inpainted=inpainted, edges=edges_in, hole=hole, class_ids=cls)
        out["defect"] = composite(painted, inpainted, hole)
        return out

    # ------------------------------------------------------------------ one step

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One optimisation step of the discriminators, then the generators.

        Returns detached 0-d loss tensors (no device sync here; the loop reads them when it logs).
        """
        cfg = self.cfg
        batch = {k: batch[k].to(self.device, non_blocking=True) for k in (*BATCH_KEYS, *BACKGROUND_KEYS) if k in batch}
        hole, cls, image = batch["hole"], batch["class_ids"], batch["image"]
        inp_hole = batch["inp_hole"]
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.forward_generators(batch)
            edge_ctx = gray(out["inpainted"])
            real_edge_pair = torch.cat([batch["edges"], edge_ctx], dim=1)
            fake_edge_pair = torch.cat([out["edges"], edge_ctx], dim=1)

            # ---- discriminators (fakes detached)
            for d in self.discriminators().values():
                d.requires_grad_(True)
            real_i, real_feats_i = self.d_inpaint(image=batch["inp_target"], hole=inp_hole)
            fake_i, _ = self.d_inpaint(image=out["inp_comp"].detach(), hole=inp_hole)
            real_e, real_feats_e = self.d_edge(image=real_edge_pair, hole=hole, class_ids=cls)
            fake_e, _ = self.d_edge(image=fake_edge_pair.detach(), hole=hole, class_ids=cls)
            real_d, real_feats_d = self.d_defect(image=image, hole=hole, class_ids=cls)
            fake_d, _ = self.d_defect(image=out["defect"].detach(), hole=hole, class_ids=cls)
            d_losses = {"d_inpaint": hinge_d(real_i, fake_i), "d_edge": hinge_d(real_e, fake_e),
                        "d_defect": hinge_d(real_d, fake_d)}
        d_total = sum(d_losses.values())
        self.opt_d.zero_grad(set_to_none=True)
        d_total.backward()
        self.opt_d.step()

        # ---- generators (discriminators frozen and re-run on the fakes after their update;
        # feature matching uses the real features of the pass above, as pix2pixHD does)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            for d in self.discriminators().values():
                d.requires_grad_(False)
            gen_i, feats_i = self.d_inpaint(image=out["inp_comp"], hole=inp_hole)
            gen_e, feats_e = self.d_edge(image=fake_edge_pair, hole=hole, class_ids=cls)
            gen_d, feats_d = self.d_defect(image=out["defect"], hole=hole, class_ids=cls)

            diff_i = (out["inp_raw"].float() - batch["inp_target"]).abs()
            cover = structure_cover(batch["edges"], hole)
            target_edges = batch["edges"]
            edge_weight = hole * (1.0 + (cfg.edge_pos_weight - 1.0) * target_edges)
            bce = F.binary_cross_entropy_with_logits(out["edge_logits"].float(), target_edges, reduction="none")
            g_losses = {
                "inpaint_hole_l1": masked_mean(diff_i, inp_hole),
                "inpaint_valid_l1": masked_mean(diff_i, 1.0 - inp_hole),
                "inpaint_adv": -gen_i.float().mean(),
                "inpaint_fm": feature_matching(feats_i, real_feats_i),
                "edge_bce": (bce * edge_weight).sum() / edge_weight.sum().clamp(min=1.0),
                "edge_adv": -gen_e.float().mean(),
                "edge_fm": feature_matching(feats_e, real_feats_e),
                "defect_l1": defect_l1(out["defect"].float(), image, hole, cover, cfg.defect_l1_pool),
                "defect_detail": detail_loss(out["defect"].float(), image, cover),
                "defect_tones": banded_tone_loss(out["defect"].float(), image, cover, cfg.tone_band_px),
                "defect_texture": texture_loss(out["defect"].float(), image, cover),
                "defect_adv": -gen_d.float().mean(),
                "defect_fm": feature_matching(feats_d, real_feats_d),
            }
        weights = {
            "inpaint_hole_l1": cfg.w_hole, "inpaint_valid_l1": cfg.w_valid,
            "edge_bce": cfg.w_edge_bce, "defect_l1": cfg.w_defect_l1, "defect_detail": cfg.w_defect_detail,
            "defect_tones": cfg.w_defect_tones, "defect_texture": cfg.w_defect_texture,
            "inpaint_adv": cfg.w_adv, "edge_adv": cfg.w_edge_adv, "defect_adv": cfg.w_adv,
            "inpaint_fm": cfg.w_fm, "edge_fm": cfg.w_edge_fm, "defect_fm": cfg.w_fm,
        }
        g_total = sum(weights[k] * v for k, v in g_losses.items())
        self.opt_g.zero_grad(set_to_none=True)
        g_total.backward()
        self.opt_g.step()

        losses = {"g_total": g_total, "d_total": d_total, **g_losses, **d_losses}
        return {k: v.detach().float() for k, v in losses.items()}

    # ------------------------------------------------------------------ state

    def generator_state(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """Inference weights of the three generator blocks: {"inpaint.<param>": tensor, ...}."""
        return {f"{name}.{k}": v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
                for name, net in self.generators().items() for k, v in net.state_dict().items()}

    def train_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything a resume needs, as flat tensors (safetensors) plus JSON-able metadata."""
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        meta: dict[str, Any] = {}
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            sd = opt.state_dict()
            for idx, state in sd["state"].items():
                for key, val in state.items():
                    # cloned: Adam keeps `step` tensors as given, so an alias would be shared
                    # between this model and whatever loads the state
                    tensors[f"{name}.state.{idx}.{key}"] = torch.as_tensor(val).detach().cpu().clone()
            meta[name] = {"param_groups": [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
                                           for g in sd["param_groups"]]}
        tensors["rng.model"] = self.rng.get_state()
        return tensors, meta

    def load_train_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        self.load_state_dict(model_sd, strict=True)
        for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            prefix = f"{name}.state."
            state: dict[int, dict[str, torch.Tensor]] = {}
            for key, val in tensors.items():
                if key.startswith(prefix):
                    idx, field = key[len(prefix):].split(".", 1)
                    state.setdefault(int(idx), {})[field] = val.clone()
            groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta[name]["param_groups"]]
            opt.load_state_dict({"state": state, "param_groups": groups})
        self.rng.set_state(tensors["rng.model"])
