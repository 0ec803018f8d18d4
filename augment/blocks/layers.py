"""Small layers the MIDG generator blocks share: gated convolutions, dilated residual
blocks, the class bias and the hole composite.

Gated convolutions (DeepFill v2) learn a soft per-pixel validity gate, which suits
inputs with a hole: features from the zeroed hole region are gated down rather than
treated as real content.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class GatedConv(nn.Module):
    """conv → (features, gate); out = act(features) * sigmoid(gate)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, activation: bool = True):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride, padding, dilation)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat, gate = self.conv(x).chunk(2, dim=1)
        if self.activation:
            feat = F.elu(feat)
        return feat * torch.sigmoid(gate)


class GatedResBlock(nn.Module):
    """x + gconv1(gconv_dilated(x)): a wide receptive field at the bottleneck without
    more downsampling (EdgeConnect uses dilated residual blocks the same way)."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.body = nn.Sequential(GatedConv(channels, channels, 3, dilation=dilation),
                                  GatedConv(channels, channels, 3, activation=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GatedUp(nn.Module):
    """Nearest ×2 upsampling then a gated conv (no transposed conv: no checkerboards)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = GatedConv(in_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ClassBias(nn.Module):
    """Class ids [B] → a learned per-channel bias [B, ch, 1, 1] added to a feature map, so
    one network serves every defect class. (The same as concatenating a constant class map
    to the input, away from the borders, without widening the full-resolution input conv.)"""

    def __init__(self, num_classes: int, channels: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, channels)
        nn.init.normal_(self.embed.weight, std=0.1)

    def forward(self, features: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        return features + self.embed(class_ids)[:, :, None, None].to(features.dtype)


def composite(inside: torch.Tensor, outside: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """`inside` where the hole is set, `outside` (bit for bit) everywhere else."""
    return torch.where(hole > 0.5, inside, outside)


def gray(image: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] → [B, 1, H, W] (channel mean: the edge block works on structure alone)."""
    return image if image.shape[1] == 1 else image.mean(dim=1, keepdim=True)
