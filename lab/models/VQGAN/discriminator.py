"""PatchGAN discriminator (Isola et al. 2017, pix2pix), used only while training the VQGAN.

It scores overlapping patches rather than the whole image, so the adversarial loss pushes the decoder
towards sharp local texture, which pixel losses (L1/L2) alone blur away.
"""
from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """Image float (B, C, H, W) in [-1, 1] -> real/fake logits (B, 1, h', w'), one per patch.

    ``n_layers`` stride-2 convolutions (width doubling each time, capped at 8x) then two stride-1 ones;
    with a 64x64 input and n_layers=3 the output is 6x6 logits, each seeing a 70x70 receptive field.
    """

    def __init__(self, image_channels: int = 3, base_channels: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(image_channels, base_channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = base_channels
        for i in range(1, n_layers + 1):
            out = base_channels * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            # BatchNorm as in pix2pix: the discriminator always sees full batches of one kind (real or fake)
            layers += [nn.Conv2d(ch, out, 4, stride, 1, bias=False), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)
        for m in self.modules():  # DCGAN initialisation, as in pix2pix / taming-transformers
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
