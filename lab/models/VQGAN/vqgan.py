"""VQGAN tokenizer: encoder -> codebook -> decoder (Esser et al. 2021, "Taming Transformers").

MaskGIT only uses it as a fixed tokenizer: ``encode`` turns an image into a grid of code ids, and
``decode_indices`` turns a (completed) grid of ids back into an image. The adversarial part of the
VQGAN (its PatchGAN discriminator) belongs to the VQGAN trainer, an instructor tool; it is not needed here.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.checkpoint import load_model_weights
from models.config import VQGANConfig

from .codebook import Codebook
from .decoder import Decoder
from .encoder import Encoder


class VQGAN(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.codebook = Codebook(cfg.num_codebook_vectors, cfg.latent_dim, cfg.beta, cfg.l2_normalized_codes)
        self.decoder = Decoder(cfg)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image -> quantised latent grid.

        Inputs: x float (B, 3, H, W) in [-1, 1].
        Returns: z_q float (B, latent_dim, h, w) (straight-through gradient to the encoder);
        indices int64 (B, h, w) in [0, K); q_loss float scalar (codebook + commitment loss).
        """
        return self.codebook(self.encoder(x))

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """z_q float (B, latent_dim, h, w) -> image float (B, 3, H, W), roughly [-1, 1] (clamp before saving)."""
        return self.decoder(z_q)

    def indices_to_latent(self, indices: torch.Tensor) -> torch.Tensor:
        """Code ids int64 (B, h, w) or flattened (B, h*w) -> z_q float (B, latent_dim, h, w).

        Gives exactly the z_q that ``encode`` returns for the same ids.
        """
        h = w = self.cfg.latent_size
        if indices.dim() == 2:
            assert indices.shape[1] == h * w, f"expected {h * w} ids per image, got {tuple(indices.shape)}"
            indices = indices.reshape(-1, h, w)                 # (B, h, w)
        assert indices.shape[1:] == (h, w), f"expected ids of shape (B, {h}, {w}), got {tuple(indices.shape)}"
        return self.codebook.lookup(indices).permute(0, 3, 1, 2)  # (B, h, w, D) -> (B, D, h, w)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code ids (B, h, w) or (B, h*w) int64 -> image float (B, 3, H, W), roughly [-1, 1]."""
        return self.decode(self.indices_to_latent(indices))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x float (B, 3, H, W) in [-1, 1] -> (reconstruction (B, 3, H, W), indices (B, h, w), q_loss)."""
        z_q, indices, q_loss = self.encode(x)
        return self.decode(z_q), indices, q_loss


def load_vqgan(cfg: VQGANConfig, ckpt_path: str | Path, device: str | torch.device = "cpu") -> VQGAN:
    """Build a VQGAN for ``cfg`` and load a kit checkpoint into it; returns it in eval mode on ``device``.

    Raises ``models.checkpoint.CheckpointError`` naming the file when it is missing, unreadable, not a
    VQGAN checkpoint, or trained with a different architecture.
    """
    model = VQGAN(cfg)
    load_model_weights(model, ckpt_path, kind="vqgan", config=cfg)
    return model.to(device).eval()
