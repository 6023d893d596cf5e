"""Decoder: quantised latent grid (B, latent_dim, h, w) -> image (B, 3, H, W), roughly in [-1, 1].

The mirror image of the encoder: stages run from the last entry of ``cfg.channels`` to the first,
and every stage but the last doubles the resolution. The output is not squashed (no tanh), as in
VQGAN; callers clamp to [-1, 1] before turning it into an image.
"""
from __future__ import annotations

import torch
from torch import nn

from models.config import VQGANConfig

from .modules import NonLocalBlock, ResidualBlock, Upsample, group_norm


class Decoder(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        channels = list(reversed(cfg.channels))
        in_ch = channels[0]
        resolution = cfg.latent_size
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.latent_dim, in_ch, 3, padding=1),
            ResidualBlock(in_ch, in_ch),  # mirrors the encoder's extra block at the latent resolution
        ]
        for i, out_ch in enumerate(channels):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResidualBlock(in_ch, out_ch))
                in_ch = out_ch
                if resolution in cfg.attn_resolutions:
                    layers.append(NonLocalBlock(in_ch))
            if i < len(channels) - 1:
                layers.append(Upsample(in_ch, channels[i + 1]))
                in_ch = channels[i + 1]
                resolution *= 2
        layers += [group_norm(in_ch), nn.SiLU(), nn.Conv2d(in_ch, cfg.image_channels, 3, padding=1)]
        self.model = nn.Sequential(*layers)

    @property
    def last_layer(self) -> nn.Conv2d:
        """The output conv; the VQGAN trainer's adaptive GAN weight compares gradients at its weight."""
        return self.model[-1]

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        """z_q float (B, latent_dim, h, w) -> image float (B, C, H, W), approximately in [-1, 1]."""
        return self.model(z_q)
