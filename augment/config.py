"""GeneratorConfig: every knob of MIDG generator training, one place, one default each.

Filled from `params.yaml` (`profiles.<profile>.generator`) and then CLI flags:

    cfg = generator_config(load_params("params.yaml"), "demo", steps=500, device="cpu")

An unknown key or a bad choice is a ConfigError that lists the valid ones. The resolved
config is printed at the start of a run, saved as the run's config.json["generator"].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from midg.datasets.errors import ConfigError
from midg.datasets.params import fill, section_config


@dataclass(frozen=True)
class GeneratorConfig:
    # ---- crops (see augment/crops.py)
    crop_size: int = 64  # side of the square crop the networks see, pixels; a multiple of 8
    context: float = 2.0  # crop window = this times the defect rectangle's longer side
    min_window: int = 32  # crop window is at least this many image pixels a side
    # ---- networks
    base_channels: int = 8  # width of the first generator layer (x2, x4 deeper)
    disc_channels: int = 16  # width of the first discriminator layer
    disc_layers: int = 3  # stride-2 layers of each PatchGAN (patch logits at crop / 2^layers)
    res_blocks: int = 2  # dilated residual blocks at 1/4 resolution in each generator block
    noise_channels: int = 4  # noise map channels fed to the edge block
    # ---- optimisation
    steps: int = 1500  # generator steps (one batch each); resume may raise it
    batch_size: int = 8  # defect crops per step (and as many inpainting crops)
    lr: float = 2e-4  # Adam learning rate of the three generator blocks
    lr_disc: float = 2e-4  # Adam learning rate of the three discriminators
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas (GAN-usual beta1 = 0.5)
    teacher_forcing: float = 0.5  # probability that the defect module sees the real edges
    # ---- loss weights
    w_hole: float = 6.0  # inpainting L1 inside the hole (EdgeConnect-like hole weighting)
    w_valid: float = 1.0  # inpainting L1 outside the hole (the raw output, before compositing)
    w_edge_bce: float = 1.0  # edge BCE against the real edge map, inside the hole
    edge_pos_weight: float = 3.0  # BCE weight of edge pixels (edges are sparse)
    w_defect_l1: float = 5.0  # defect module L1 inside the hole
    # on the real defect's cover the defect L1 compares the images average-pooled by this factor
    # (1: pixel by pixel everywhere); >1 leaves grain to the adversarial and detail losses (pixel L1
    # on a random texture paints its mean); the rest of the hole stays pixel by pixel (model.defect_l1)
    defect_l1_pool: int = 1
    w_defect_detail: float = 0.0  # L1 between fake and real fine-structure energy on the defect's cover (model.detail_energy); painted stripes on BSData
    w_defect_tones: float = 0.0  # L1 between fake and real luminance quantiles on the defect's cover (model.tone_loss)
    # >0: the tone loss is taken apart on the cover's outer band this many px wide and on its
    # inside, so where the dark sits (a soft rim, a dark core) is learnt, not only how much
    # (measured only together with the texture loss: BENCHMARKS.md, BSData, 6857175)
    tone_band_px: int = 0
    # L1 between fake and real gradient energy along x and along y on the defect's cover
    # (model.texture_loss); on BSData it traded the detail loss' horizontal hatching for a
    # diagonal one (BENCHMARKS.md), so no profile uses it
    w_defect_texture: float = 0.0
    w_adv: float = 0.1  # adversarial weight of the inpainting and defect blocks
    w_fm: float = 1.0  # feature matching weight of the inpainting and defect blocks (L1 of D features)
    w_edge_adv: float = 0.1  # adversarial weight of the edge block (EdgeConnect: 1, with FM 10 and no BCE)
    w_edge_fm: float = 1.0  # feature matching weight of the edge block
    # ---- data
    self_supervised: int = 256  # random-rectangle inpainting crops cut from normal images
    # what an outlined defect (no template) is painted from: its filled outline, or the outline
    # carrying the defect's shading (outlines.shading_map): BSData, benchmarks/results/generator_bsdata_*
    outline_structure: Literal["filled", "shading"] = "shading"
    # how the defect module paints (blocks/defect.py): rgb, its own colours; shading, the
    # surface darkened by a learned depth along the real shading the structure carries
    # (photographs with outline_structure shading)
    defect_head: Literal["rgb", "shading"] = "rgb"
    # ---- run
    log_every: int = 10  # steps between metrics.csv rows
    sample_every: int = 500  # steps between sample grids in samples/ (0: only at the end)
    save_every: int = 500  # steps between train_state saves (resume points)
    seed: int = 0  # python, numpy and torch seeds, and the data order
    device: Literal["cpu", "cuda", "auto"] = "cpu"  # auto: cuda when available
    threads: int = 0  # torch CPU threads (0: torch's default)
    fp16_export: bool = False  # write generator.safetensors in float16 (half the size)

    def __post_init__(self) -> None:
        if self.crop_size < 16 or self.crop_size % 8:
            raise ConfigError(f"generator.crop_size must be a multiple of 8 and at least 16, got {self.crop_size}")
        if self.crop_size // 2 ** self.disc_layers < 2:
            raise ConfigError(f"generator.disc_layers={self.disc_layers} is too deep for crop_size={self.crop_size}")
        for name in ("steps", "batch_size", "base_channels", "disc_channels", "log_every", "save_every",
                     "defect_l1_pool"):
            if getattr(self, name) < 1:
                raise ConfigError(f"generator.{name} must be at least 1, got {getattr(self, name)}")
        if self.crop_size % self.defect_l1_pool:
            raise ConfigError(f"generator.defect_l1_pool={self.defect_l1_pool} must divide crop_size={self.crop_size}")
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise ConfigError(f"generator.teacher_forcing must be in [0, 1], got {self.teacher_forcing}")
        if self.defect_head not in ("rgb", "shading"):
            raise ConfigError(f"generator.defect_head must be rgb or shading, got {self.defect_head!r}")
        if self.outline_structure not in ("filled", "shading"):
            raise ConfigError(f"generator.outline_structure must be filled or shading, got {self.outline_structure!r}")
        if self.tone_band_px < 0:
            raise ConfigError(f"generator.tone_band_px must be at least 0, got {self.tone_band_px}")
        if self.context < 1.0:
            raise ConfigError(f"generator.context must be at least 1 (the window holds the rectangle), got {self.context}")


def generator_config(params: dict[str, Any] | None, profile: str | None, **overrides: Any) -> GeneratorConfig:
    """The profile's `generator` section, then `overrides` (CLI flags; None means unset)."""
    return section_config(GeneratorConfig, params, profile, "generator", **overrides)


def config_dict(cfg: GeneratorConfig) -> dict[str, Any]:
    """JSON-able dict of the config (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def config_from_dict(values: dict[str, Any]) -> GeneratorConfig:
    return fill(GeneratorConfig, values, "checkpoint config.json generator")
