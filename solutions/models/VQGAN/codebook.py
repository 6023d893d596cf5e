"""Vector quantisation: snap every latent vector to its nearest codebook entry.

The codebook turns the encoder's continuous grid into discrete ids, the "tokens" the transformer models.
Guard against codebook collapse (most ids never used, so the transformer has few tokens to work with):
``l2_normalized=True`` compares unit vectors (cosine similarity, as in ViT-VQGAN, Yu et al. 2022), so codes
cannot drift far away from the encoder outputs and die. (The VQGAN trainer also restarts codes that go
unused; that is training machinery and lives with the trainer, not in the lab.)
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class CodebookUsage(NamedTuple):
    distinct: int       # how many different ids occur
    perplexity: float   # exp(entropy of the id histogram): K when all ids are equally frequent, 1 when one id


def codebook_usage(indices: torch.Tensor, num_codes: int) -> CodebookUsage:
    """Usage statistics of a batch (or a whole data set) of code ids, any shape, int64 in [0, num_codes)."""
    counts = torch.bincount(indices.reshape(-1).cpu(), minlength=num_codes).double()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return CodebookUsage(int((counts > 0).sum()), float(entropy.exp()))


def quantize_rows(z_flat: torch.Tensor, codes, beta: float, l2_normalized: bool):
    """The nearest-code step both quantisers share (the VQGAN's grid and TiTok's 1D tokens).

    Inputs: z_flat float (N, D), one latent per row; ``codes``, a callable giving the code vectors float (K, D) as
    the lookup sees them (called inside, so they are read in float32).
    Returns z_q_flat float (N, D), exactly the chosen codes with z's gradient passed straight through (on the
    normalised z when ``l2_normalized``); ids int64 (N,); q_loss, a float scalar: codebook loss plus ``beta`` x
    commitment loss (van den Oord et al. 2017).
    """
    # distances and losses in float32 even under bf16 autocast: argmin ties and tiny losses matter here
    with torch.autocast(device_type=z_flat.device.type, enabled=False):
        z_flat = z_flat.float()
        if l2_normalized:
            z_flat = F.normalize(z_flat, dim=1)
        code_vectors = codes()                                              # (K, D)
        ids = torch.cdist(z_flat, code_vectors).argmin(dim=1)              # (N,)
        z_q_flat = code_vectors[ids]                                        # (N, D)
        # codebook loss pulls codes to the encoder outputs; commitment loss keeps the encoder near its codes
        q_loss = F.mse_loss(z_q_flat, z_flat.detach()) + beta * F.mse_loss(z_flat, z_q_flat.detach())
        # straight-through estimator: the value is exactly the code (adding z - z = 0 changes no bit),
        # the gradient w.r.t. z_q is handed unchanged to z
        z_q_flat = z_q_flat.detach() + (z_flat - z_flat.detach())
    return z_q_flat, ids, q_loss


class Codebook(nn.Module):
    """K learned code vectors of size D; ``forward`` quantises a latent grid.

    Attribute ``embedding``: nn.Embedding(K, D) holding the (unnormalised) code vectors.
    """

    def __init__(self, num_codebook_vectors: int, latent_dim: int, beta: float = 0.25, l2_normalized: bool = True):
        super().__init__()
        self.num_codebook_vectors = num_codebook_vectors
        self.latent_dim = latent_dim
        self.beta = beta
        self.l2_normalized = l2_normalized
        self.embedding = nn.Embedding(num_codebook_vectors, latent_dim)
        self.embedding.weight.data.uniform_(-1.0 / num_codebook_vectors, 1.0 / num_codebook_vectors)

    def codes(self) -> torch.Tensor:
        """The code vectors as the lookup sees them: float (K, D), unit length when l2-normalised."""
        w = self.embedding.weight.float()
        return F.normalize(w, dim=1) if self.l2_normalized else w

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """int64 ids of any shape (...) -> code vectors float (..., D)."""
        return F.embedding(indices, self.codes())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise a latent grid.

        Inputs: z float (B, D, h, w), the encoder output.
        Returns: z_q float (B, D, h, w) equal to the chosen codes, with the encoder's gradient passed
        straight through; indices int64 (B, h, w) in [0, K); q_loss, a scalar: codebook loss plus
        ``beta`` x commitment loss (van den Oord et al. 2017).
        """
        B, D, h, w = z.shape
        z_flat = z.permute(0, 2, 3, 1).reshape(B * h * w, D)                # (N, D), N = B*h*w
        z_q_flat, indices, q_loss = quantize_rows(z_flat, self.codes, self.beta, self.l2_normalized)
        z_q = z_q_flat.reshape(B, h, w, D).permute(0, 3, 1, 2)             # (B, D, h, w)
        return z_q, indices.reshape(B, h, w), q_loss
