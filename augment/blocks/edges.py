"""Edge generation block: draws the defect's edge map inside the hole from the inpainted
crop, the class and noise (EdgeConnect's edge generator, class-conditional, small).

The edge map is the structure the defect module renders: at generation time it may come
from this block, from a library of real defect edges, or from a user's shape image.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ClassBias, GatedConv, GatedResBlock, GatedUp, gray


class EdgeNet(nn.Module):
    # in:  inpainted crop as gray (1) + hole (1) + noise (noise_channels); class: a learned bias
    #      on the first features
    # out: edge logits (1) over the whole crop; sigmoid and zero outside the hole to use them
    def __init__(self, *, num_classes: int, base: int = 32, noise_channels: int = 4, res_blocks: int = 4):
        super().__init__()
        b = base
        self.noise_channels = noise_channels
        self.stem = GatedConv(2 + noise_channels, b, 5)
        self.class_bias = ClassBias(num_classes, b)
        self.encoder = nn.Sequential(
            GatedConv(b, 2 * b, 3, stride=2),
            GatedConv(2 * b, 4 * b, 3, stride=2),
        )
        dilations = [(2, 4, 2, 1)[i % 4] for i in range(res_blocks)]
        self.middle = nn.Sequential(*[GatedResBlock(4 * b, d) for d in dilations])
        self.decoder = nn.Sequential(
            GatedUp(4 * b, 2 * b),
            GatedUp(2 * b, b),
            nn.Conv2d(b, 1, 3, padding=1),
        )

    def forward(self, *, inpainted: torch.Tensor, hole: torch.Tensor, class_ids: torch.Tensor,
                noise: torch.Tensor) -> torch.Tensor:
        x = self.stem(torch.cat([gray(inpainted), hole, noise], dim=1))
        x = self.class_bias(x, class_ids)
        return self.decoder(self.middle(self.encoder(x)))
