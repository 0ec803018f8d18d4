"""Networks of the MIDG generator, kept apart from losses, optimisers and loops.

    inpainting.InpaintingNet   fills the hole from its surroundings
    edges.EdgeNet              draws the defect's edge map inside the hole
    defect.DefectNet           paints the defect from texture + edges (edge attention)
    discriminator.PatchDiscriminator   spectral-norm PatchGAN, class projection

`GENERATOR_NETS` maps the names used in checkpoints to their classes; a checkpoint's
config.json stores each network's keyword arguments, so `build(kind, kwargs)` rebuilds it.
"""

from __future__ import annotations

from torch import nn

from .defect import DefectNet
from .discriminator import PatchDiscriminator
from .edges import EdgeNet
from .inpainting import InpaintingNet

GENERATOR_NETS: dict[str, type[nn.Module]] = {"inpaint": InpaintingNet, "edge": EdgeNet, "defect": DefectNet}


def build_generator_nets(specs: dict[str, dict]) -> dict[str, nn.Module]:
    """{"inpaint": kwargs, "edge": kwargs, "defect": kwargs} → the three generator networks."""
    missing = sorted(set(GENERATOR_NETS) - set(specs))
    if missing:
        raise ValueError(f"network specs lack {missing}")
    return {name: GENERATOR_NETS[name](**specs[name]) for name in GENERATOR_NETS}


__all__ = ["DefectNet", "EdgeNet", "InpaintingNet", "PatchDiscriminator", "GENERATOR_NETS", "build_generator_nets"]
