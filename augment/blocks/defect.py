"""Defect generation module: an encoder-decoder that fuses texture (the inpainted crop)
and structure (the edge map) through edge attention blocks, and paints the defect.

Two encoders run side by side; at 1/2 and 1/4 resolution an EdgeAttention block lets
the edge features gate and reweight the texture features:

    attention = sigmoid(conv3x3(edge_feat))
    fused     = texture_feat * (1 + attention) + conv1x1(edge_feat)

so texture is amplified where the structure says something happens, and the structure
itself is injected. Callers composite the output inside the hole only.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ClassBias, GatedConv, GatedResBlock, GatedUp


class EdgeAttention(nn.Module):
    """Edge features gate texture features of the same shape [B, ch, h, w]."""

    def __init__(self, channels: int):
        super().__init__()
        self.attend = nn.Conv2d(channels, channels, 3, padding=1)
        self.inject = nn.Conv2d(channels, channels, 1)

    def forward(self, texture: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        attention = torch.sigmoid(self.attend(edge))
        return texture * (1 + attention) + self.inject(edge)


def _edge_conv(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.LeakyReLU(0.2))


class DefectNet(nn.Module):
    # texture in:   inpainted crop (C) + hole (1); class: a learned bias on texture features
    #               at every scale of the encoder
    # structure in: edge map (1) + hole (1)
    # out:          C channels in [0, 1] over the whole crop
    # head "rgb": the decoder paints the C channels itself. head "shading" (a structure that
    # carries a real defect's shading, values in [shading_floor, 1] on its cover): the decoder
    # paints how dark the defect is (a depth over the hole plus a depth per unit of shading
    # level on its cover) and a small colour residual, and the output is the inpainted surface darkened by
    # it: the pattern inside the defect is the real shading's, at full resolution, and what is
    # learned is its depth and tint on a new surface (an RGB decoder of a few channels painted
    # photographed pits as smooth blobs: BENCHMARKS.md, BSData)
    def __init__(self, *, channels: int, num_classes: int, base: int = 32, res_blocks: int = 3, head: str = "rgb",
                 shading_floor: float = 0.55):
        super().__init__()
        if head not in ("rgb", "shading"):
            raise ValueError(f"head must be rgb or shading, got {head!r}")
        self.head, self.shading_floor = head, shading_floor
        b = base
        self.class0 = ClassBias(num_classes, b)
        self.class1 = ClassBias(num_classes, 2 * b)
        self.class2 = ClassBias(num_classes, 4 * b)
        self.tex0 = GatedConv(channels + 1, b, 5)  # S
        self.tex1 = GatedConv(b, 2 * b, 3, stride=2)  # S/2
        self.tex2 = GatedConv(2 * b, 4 * b, 3, stride=2)  # S/4
        self.edge0 = _edge_conv(2, b, 1)
        self.edge1 = _edge_conv(b, 2 * b, 2)
        self.edge2 = _edge_conv(2 * b, 4 * b, 2)
        self.attend1 = EdgeAttention(2 * b)
        self.attend2 = EdgeAttention(4 * b)
        self.middle = nn.Sequential(*[GatedResBlock(4 * b, (2, 4, 1)[i % 3]) for i in range(res_blocks)])
        self.up1 = GatedUp(4 * b, 2 * b)
        self.merge1 = GatedConv(4 * b, 2 * b, 3)  # up1 + fused skip at S/2
        self.up0 = GatedUp(2 * b, b)
        self.merge0 = GatedConv(2 * b, b, 3)  # up0 + texture skip at S
        self.out = nn.Conv2d(b, channels + (2 if head == "shading" else 0), 3, padding=1)
        if head == "shading":  # start shallow (depth ~0.12 over the hole), not half dark
            with torch.no_grad():
                self.out.bias[0] = -2.0

    def forward(self, *, inpainted: torch.Tensor, edges: torch.Tensor, hole: torch.Tensor,
                class_ids: torch.Tensor) -> torch.Tensor:
        t0 = self.class0(self.tex0(torch.cat([inpainted, hole], dim=1)), class_ids)
        e0 = self.edge0(torch.cat([edges, hole], dim=1))
        e1 = self.edge1(e0)
        f1 = self.attend1(self.class1(self.tex1(t0), class_ids), e1)
        f2 = self.attend2(self.class2(self.tex2(f1), class_ids), self.edge2(e1))
        x = self.middle(f2)
        x = self.merge1(torch.cat([self.up1(x), f1], dim=1))
        x = self.merge0(torch.cat([self.up0(x), t0], dim=1))
        y = self.out(x)
        if self.head == "rgb":
            return torch.sigmoid(y)
        cover = (edges > 0.5).to(y.dtype)
        level = ((edges - self.shading_floor) / (1.0 - self.shading_floor)).clamp(0.0, 1.0) * cover
        # the base depth and the tint span the hole, not just the cover: the decoder draws the
        # defect's edge itself (a depth stepping at the outline read far steeper than real pits)
        depth = torch.sigmoid(y[:, :1]) * hole + torch.sigmoid(y[:, 1:2]) * level
        tint = 0.1 * torch.tanh(y[:, 2:]) * hole
        return (inpainted * (1.0 - depth).clamp(0.0, 1.0) + tint).clamp(0.0, 1.0)

