"""Training-only parts of the VQGAN, for ``tools/train_vqgan.py`` (instructor side: the lab only uses a trained
VQGAN as a frozen tokenizer, so none of this ships to students).

* ``PatchDiscriminator``: the PatchGAN discriminator (Isola et al. 2017, pix2pix). It scores overlapping patches
  rather than the whole image, so the adversarial loss pushes the decoder towards sharp local texture, which
  pixel losses (L1/L2) alone blur away.
* ``DeadCodeRestarter``: a guard against codebook collapse (most ids never used, so the transformer has few
  tokens to work with). It watches the codebook's training forwards and moves every code that went unused for
  a number of steps onto a random encoder output of the latest batch (measured on this kit's data: with the
  l2-normalised lookup of ``models/VQGAN/codebook.py`` it keeps the shipped codebook in use).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
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


class DeadCodeRestarter:
    """Counts, per code of ``codebook`` (a ``models.VQGAN.Codebook``), the training steps since it was last
    chosen, and keeps the latest batch's latents (as the lookup compares them: float32, unit length when the
    codebook is l2-normalised). Forwards in eval mode are not counted."""

    def __init__(self, codebook: nn.Module):
        self.codebook = codebook
        weight = codebook.embedding.weight
        self.steps_since_used = torch.zeros(weight.shape[0], dtype=torch.long, device=weight.device)
        self.last_latents: torch.Tensor | None = None
        self._hook = codebook.register_forward_hook(self._record)

    @torch.no_grad()
    def _record(self, module, inputs, outputs) -> None:
        if not module.training:
            return
        z, indices = inputs[0], outputs[1]
        B, D, h, w = z.shape
        z_flat = z.float().permute(0, 2, 3, 1).reshape(B * h * w, D)
        if module.l2_normalized:
            z_flat = F.normalize(z_flat, dim=1)
        self.steps_since_used = self.steps_since_used.to(indices.device) + 1
        self.steps_since_used[indices.unique()] = 0
        self.last_latents = z_flat.detach()

    @torch.no_grad()
    def restart(self, min_unused_steps: int) -> int:
        """Re-initialise every code unused for ``min_unused_steps`` training steps; returns how many.

        Each dead code is replaced by a randomly chosen encoder output of the last training batch, so it
        lies where the data is and will be picked again. Call after ``optimizer.step()`` (changing the
        weight before backward would invalidate the autograd graph). ``min_unused_steps=0`` re-initialises
        the whole codebook from data.
        """
        if self.last_latents is None:
            return 0
        dead = (self.steps_since_used >= min_unused_steps).nonzero().squeeze(1)
        if dead.numel() == 0:
            return 0
        pool = self.last_latents
        if dead.numel() <= len(pool):  # distinct encoder outputs where possible
            picks = torch.randperm(len(pool), device=pool.device)[: dead.numel()]
        else:
            picks = torch.randint(len(pool), (dead.numel(),), device=pool.device)
        weight = self.codebook.embedding.weight
        weight[dead] = pool[picks].to(weight.dtype)
        self.steps_since_used[dead] = 0
        return int(dead.numel())

    def remove(self) -> None:
        """Stop watching the codebook."""
        self._hook.remove()
