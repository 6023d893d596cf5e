"""Building blocks shared by the encoder and the decoder (taming-transformers' VQGAN style).

Every block keeps the spatial size except ``Downsample`` (H, W -> H/2, W/2) and ``Upsample``
(H, W -> 2H, 2W). Normalisation is GroupNorm followed by SiLU ("swish"), as in the VQGAN paper
(Esser et al. 2021): GroupNorm does not depend on the batch size, so batches of 1 behave like batches of 64.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups; fewer when ``channels`` is small (tiny test configs)."""
    return nn.GroupNorm(num_groups=math.gcd(32, channels), num_channels=channels, eps=1e-6)


class ResidualBlock(nn.Module):
    """Two (GroupNorm -> SiLU -> 3x3 conv) layers plus a skip connection.

    Inputs: x float (B, in_channels, H, W). Output: float (B, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.block = nn.Sequential(
            group_norm(in_channels),
            nn.SiLU(),
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            group_norm(out_channels),
            nn.SiLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        # a 1x1 conv matches the channel count when it changes, so that the skip can be added
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.block(x)


class Downsample(nn.Module):
    """Strided 3x3 conv: (B, C, H, W) -> (B, C, H/2, W/2). Learned, unlike pooling."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 conv: (B, C_in, H, W) -> (B, C_out, 2H, 2W).

    Nearest + conv avoids the checkerboard artefacts of transposed convolutions. Changing the channel
    count here (to the next, smaller resolution's width) keeps the costly full-resolution conv narrow.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class NonLocalBlock(nn.Module):
    """Single-head self-attention over all H*W positions, with a skip connection.

    Gives the convolutional network a global view at one resolution (VQGAN uses it at 16x16).
    Inputs: x float (B, C, H, W). Output: float (B, C, H, W).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(2, 3).unbind(1)  # each (B, HW, C)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C), softmax(q k^T / sqrt(C)) v
        return x + self.proj(out.transpose(1, 2).reshape(B, C, H, W))
