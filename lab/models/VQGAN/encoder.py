"""Encoder: image (B, 3, H, W) in [-1, 1] -> continuous latent grid (B, latent_dim, h, w).

One stage per entry of ``cfg.channels``; every stage but the last halves the resolution, so
h = H / 2**(len(channels) - 1) (64 -> 16 with three entries).
"""
from __future__ import annotations

import torch
from torch import nn

from models.config import VQGANConfig

from .modules import Downsample, NonLocalBlock, ResidualBlock, group_norm


class Encoder(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cfg.image_channels, cfg.channels[0], 3, padding=1)]
        resolution, in_ch = cfg.image_size, cfg.channels[0]
        for i, out_ch in enumerate(cfg.channels):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResidualBlock(in_ch, out_ch))
                in_ch = out_ch
                if resolution in cfg.attn_resolutions:
                    layers.append(NonLocalBlock(in_ch))
            if i < len(cfg.channels) - 1:
                layers.append(Downsample(in_ch))
                resolution //= 2
        layers += [
            ResidualBlock(in_ch, in_ch),  # one more block at the latent resolution before projecting
            group_norm(in_ch),
            nn.SiLU(),
            nn.Conv2d(in_ch, cfg.latent_dim, 3, padding=1),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x float (B, C, H, W) in [-1, 1] -> z float (B, latent_dim, h, w)."""
        return self.model(x)
