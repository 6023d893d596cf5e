"""TiTok's vector quantiser over a 1D token sequence (given code): codes, usage, dead-code restart.

The latents are token-major throughout, (B, K, D): token k of image b is ``z[b, k]``. (The official TiTok code
keeps a "legacy" reshape that reads the same memory as (B, D, K) for its old checkpoints, which mixes tokens and
channels; nothing here reshapes across the token and channel axes.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.VQGAN.codebook import CodebookUsage, codebook_usage, quantize_rows


class TokenQuantizer(nn.Module):
    """``codebook_size`` learned code vectors of size ``code_dim``; ``forward`` snaps each latent token to its nearest.

    Buffer ``usage``: float (codebook_size,), how often each code was picked in training mode since the last
    ``restart_dead_codes`` (in the state dict, so a resumed run restarts the same codes).
    """

    def __init__(self, codebook_size: int, code_dim: int, beta: float = 0.25, l2_normalized: bool = True):
        super().__init__()
        self.codebook_size = codebook_size
        self.code_dim = code_dim
        self.beta = beta
        self.l2_normalized = l2_normalized
        self.embedding = nn.Embedding(codebook_size, code_dim)
        nn.init.normal_(self.embedding.weight, std=1.0)
        self.register_buffer("usage", torch.zeros(codebook_size))

    def codes(self) -> torch.Tensor:
        """The code vectors as the lookup sees them: float (codebook_size, code_dim), unit length when normalised."""
        w = self.embedding.weight.float()
        return F.normalize(w, dim=1) if self.l2_normalized else w

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """int64 ids of any shape (...) -> code vectors float (..., code_dim)."""
        return F.embedding(ids, self.codes())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise latent tokens.

        Inputs: z float (B, K, code_dim), the projected encoder outputs of the K latent tokens.
        Returns z_q float (B, K, code_dim), the chosen codes with z's gradient passed straight through (on the
        normalised z when ``l2_normalized``); ids int64 (B, K) in [0, codebook_size); q_loss, a float scalar:
        codebook loss + beta x commitment loss (van den Oord et al., 2017).
        """
        B, K, D = z.shape
        z_q, ids, q_loss = quantize_rows(z.reshape(B * K, D), self.codes, self.beta, self.l2_normalized)  # token-major
        if self.training:
            self.usage += torch.bincount(ids, minlength=self.codebook_size).to(self.usage)
        return z_q.reshape(B, K, D), ids.reshape(B, K), q_loss

    @torch.no_grad()
    def restart_dead_codes(self, z: torch.Tensor) -> int:
        """Move every code unused since the last call (``usage == 0``) onto a random latent of ``z`` (float
        (..., code_dim), detached encoder outputs of the current batch), drawn from the global RNG; reset ``usage``.
        Returns how many codes were restarted. Why: a code no latent ever picks gets no gradient and stays dead."""
        dead = (self.usage == 0).nonzero().flatten()
        self.usage.zero_()
        if dead.numel() == 0:
            return 0
        z_flat = z.detach().float().reshape(-1, self.code_dim)
        picks = torch.randint(z_flat.shape[0], (dead.numel(),)).to(z_flat.device)
        self.embedding.weight[dead.to(self.embedding.weight.device)] = z_flat[picks].to(self.embedding.weight)
        return int(dead.numel())


def usage_stats(ids: torch.Tensor, codebook_size: int) -> CodebookUsage:
    """Distinct codes and perplexity of a batch or a data set of latent ids (any shape, int64)."""
    return codebook_usage(ids, codebook_size)
