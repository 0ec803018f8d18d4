"""Mask inpainting block: fills the hole of a crop from its surroundings, giving the
"inpainted normal" texture the defect module paints on.

EdgeConnect-like encoder-decoder, small: gated convs, two downsamplings, dilated
residual blocks at 1/4 resolution, nearest-upsampling decoder.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import GatedConv, GatedResBlock, GatedUp


class InpaintingNet(nn.Module):
    # in:  crop with the hole zeroed (C) + hole (1)     C = 1 gray or 3 RGB
    # out: C channels in [0, 1] over the whole crop (callers composite it inside the hole)
    def __init__(self, *, channels: int, base: int = 32, res_blocks: int = 4):
        super().__init__()
        b = base
        self.encoder = nn.Sequential(
            GatedConv(channels + 1, b, 5),
            GatedConv(b, 2 * b, 3, stride=2),
            GatedConv(2 * b, 4 * b, 3, stride=2),
        )
        dilations = [(2, 4, 8, 1)[i % 4] for i in range(res_blocks)]
        self.middle = nn.Sequential(*[GatedResBlock(4 * b, d) for d in dilations])
        self.decoder = nn.Sequential(
            GatedUp(4 * b, 2 * b),
            GatedUp(2 * b, b),
            nn.Conv2d(b, channels, 3, padding=1),
        )

    def forward(self, *, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image * (1 - hole), hole], dim=1)
        return torch.sigmoid(self.decoder(self.middle(self.encoder(x))))
