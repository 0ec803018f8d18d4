"""PatchGAN discriminator with spectral norm, optionally class-conditional by projection
(Miyato & Koyama 2018): logits = conv(h) + <embed(class), h> at every patch.

It returns its intermediate features too, so feature matching in the model is one line:
    sum(l1(f_fake, f_real.detach()) for f_fake, f_real in zip(feats_fake, feats_real))
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    # in:  image channels (in_channels: crop C, or edge 1 + gray 1) + hole (1)
    # out: (patch logits [B, 1, S/2^layers, S/2^layers], [features of every layer])
    def __init__(self, *, in_channels: int, base: int = 32, layers: int = 3, num_classes: int = 0):
        super().__init__()
        convs = []
        ch_in, ch = in_channels + 1, base
        for i in range(layers):
            convs.append(nn.Sequential(spectral_norm(nn.Conv2d(ch_in, ch, 4, 2, 1)), nn.LeakyReLU(0.2)))
            ch_in, ch = ch, min(ch * 2, base * 8)
        self.convs = nn.ModuleList(convs)
        self.head = spectral_norm(nn.Conv2d(ch_in, 1, 3, 1, 1))
        self.project = spectral_norm(nn.Embedding(num_classes, ch_in)) if num_classes else None

    def forward(self, *, image: torch.Tensor, hole: torch.Tensor,
                class_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = torch.cat([image, hole], dim=1)
        feats = []
        for conv in self.convs:
            h = conv(h)
            feats.append(h)
        logits = self.head(h)
        if self.project is not None:
            if class_ids is None:
                raise ValueError("this discriminator is class-conditional: pass class_ids")
            logits = logits + (self.project(class_ids)[:, :, None, None] * h).sum(dim=1, keepdim=True)
        return logits, feats
