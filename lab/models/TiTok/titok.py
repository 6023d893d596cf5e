"""TiTok (Yu et al., 2024, "An Image is Worth 32 Tokens for Reconstruction and Generation"), stage 1, for the kit's
64x64 images: a ViT encoder turns an image into K latent tokens (a 1D sequence, not a grid), a codebook quantises
them, and a ViT decoder predicts from them, for every position of the teacher VQGAN's 16x16 grid, the code id the
teacher puts there (the "proxy codes"); the teacher's own decoder then turns those ids into pixels.

TODO5 (extension): ``encode_latents``, ``decoder_input`` and ``proxy_code_loss`` of ``TiTok``; the rest is given.

Conventions (P = number of patches = G * G, G = the grid side 16, W = width, K = num_latent_tokens,
K_codes = the teacher's codebook size):
  - every sequence is token-major, (B, tokens, channels); grid positions are row-major (position i * G + j is row i,
    column j), as the token cache stores the teacher's ids;
  - the paper's class embedding (a [CLS] token in front of both ViTs) is dropped: no output reads it, and a
    bidirectional ViT needs no summary token; nothing else changes.
The blocks are the kit's post-LN ``Encoder`` of ``models/Transformer/modules/layer.py``, so TODO1's attention runs
here too.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.Transformer.modules.layer import Encoder

from .config import TiTokConfig
from .quantizer import TokenQuantizer


class TiTokOutput(NamedTuple):
    logits: torch.Tensor   # float (B, K_codes, G, G): the proxy-code logits, class axis 1
    loss: torch.Tensor     # float scalar: proxy-code cross-entropy
    q_loss: torch.Tensor   # float scalar: codebook + commitment loss
    ids: torch.Tensor      # int64 (B, K): the latent token ids


def _blocks(cfg: TiTokConfig, n: int) -> nn.Sequential:
    """A LayerNorm on the summed embeddings (as the kit's transformer does), then ``n`` post-LN blocks."""
    return nn.Sequential(nn.LayerNorm(cfg.width, eps=1e-12), *[
        Encoder(cfg.width, cfg.mlp_dim, cfg.num_heads, cfg.dropout, cfg.dropout) for _ in range(n)])


class TiTok(nn.Module):
    """Image (B, 3, 64, 64) -> K latent token ids -> logits over the teacher's codes on its 16x16 grid.

    Attributes (set by the given code; the TODOs use them):
      - patch_embed: ``nn.Conv2d(3, W, patch_size, stride=patch_size)``; patch_pos: float (P, W).
      - latent_tokens: float (K, W), the K learnable latent tokens; latent_pos: float (K, W), their positions.
      - encoder_blocks: ``nn.Sequential`` over (B, P + K, W) -> (B, P + K, W).
      - to_code: ``nn.Linear(W, code_dim)``; quantizer: ``TokenQuantizer``; from_code: ``nn.Linear(code_dim, W)``.
      - mask_token: float (W,), one learned token for every grid position; grid_pos: float (G * G, W);
        decoder_latent_pos: float (K, W), the latents' positions in the decoder.
      - decoder_blocks: ``nn.Sequential`` over (B, G * G + K, W); head: ``nn.Linear(W, K_codes)``.
      - num_patches P, grid G, num_latent_tokens K, teacher_codes K_codes.
    """

    def __init__(self, cfg: TiTokConfig):
        super().__init__()
        self.cfg = cfg
        W, K = cfg.width, cfg.num_latent_tokens
        self.num_patches, self.grid, self.num_latent_tokens = cfg.num_patches, cfg.teacher_grid, K
        self.teacher_codes = cfg.teacher_codes
        scale = W ** -0.5  # ViT's init scale for the learned tokens and positions
        self.patch_embed = nn.Conv2d(3, W, cfg.patch_size, stride=cfg.patch_size)
        self.patch_pos = nn.Parameter(scale * torch.randn(cfg.num_patches, W))
        self.latent_tokens = nn.Parameter(scale * torch.randn(K, W))
        self.latent_pos = nn.Parameter(scale * torch.randn(K, W))
        self.encoder_blocks = _blocks(cfg, cfg.encoder_layers)
        self.to_code = nn.Linear(W, cfg.code_dim)
        self.quantizer = TokenQuantizer(cfg.codebook_size, cfg.code_dim, cfg.beta, cfg.l2_normalized_codes)
        self.from_code = nn.Linear(cfg.code_dim, W)
        self.mask_token = nn.Parameter(scale * torch.randn(W))
        self.grid_pos = nn.Parameter(scale * torch.randn(self.grid ** 2, W))
        self.decoder_latent_pos = nn.Parameter(scale * torch.randn(K, W))
        self.decoder_blocks = _blocks(cfg, cfg.decoder_layers)
        self.head = nn.Linear(W, cfg.teacher_codes)

    # ------------------------------------------------------------------------------------------------
    # TODO5: the latent tokens in the encoder, the decoder's input, the proxy-code loss
    # ------------------------------------------------------------------------------------------------
    def encode_latents(self, patch_tokens):
        """The encoder ViT over the patches and the latent tokens; only the latent tokens' outputs are kept.

        Inputs:
          - patch_tokens: float (B, P, W), the patch embeddings (no positions yet), row-major over the patch grid.
        Returns float (B, K, W): the outputs of ``self.encoder_blocks`` at the K latent positions, for the sequence
        ``[patch_tokens + self.patch_pos, self.latent_tokens + self.latent_pos]`` (the patches first, then the same
        K latent tokens for every image), (B, P + K, W). The patch positions' outputs are dropped.
        """
        # ============================== TODO5 ==============================
        # encode_latents: patches, then latent tokens, positions; keep latents
        # (contract: see this function's docstring)
        # ===================================================================
        raise NotImplementedError("TODO5: encode_latents: patches, then latent tokens, positions; keep latents")

    def decoder_input(self, latents):
        """The decoder ViT's input sequence.

        Inputs:
          - latents: float (B, K, W), the quantised latent tokens projected to the width (``self.from_code``).
        Returns float (B, G * G + K, W): first ``self.mask_token + self.grid_pos`` (the one mask token at each of
        the G * G grid positions, row-major; the same for every image), then ``latents + self.decoder_latent_pos``.
        """
        # ============================== TODO5 ==============================
        # decoder_input: mask token + grid positions, then latents + theirs
        # (contract: see this function's docstring)
        # ===================================================================
        raise NotImplementedError("TODO5: decoder_input: mask token + grid positions, then latents + theirs")

    def proxy_code_loss(self, grid_out, codes):
        """The proxy-code logits in the image layout, and their cross-entropy against the teacher's codes.

        Inputs:
          - grid_out: float (B, G * G, K_codes), the head's output at the grid positions, row-major
            (position i * G + j is row i, column j).
          - codes: int64 (B, G, G), the teacher's code ids in [0, K_codes).
        Returns ``(loss, logits)``: logits float (B, K_codes, G, G) with ``logits[b, :, i, j] = grid_out[b, i * G + j]``
        (the class axis second, as ``F.cross_entropy`` reads it); loss, a float32 scalar: the mean cross-entropy
        over all B * G * G positions (no label smoothing).
        """
        # ============================== TODO5 ==============================
        # proxy_code_loss: (B, K_codes, G, G) logits, cross-entropy
        # (contract: see this function's docstring)
        # ===================================================================
        raise NotImplementedError("TODO5: proxy_code_loss: (B, K_codes, G, G) logits, cross-entropy")

    # ------------------------------------------------------------------------------------------------
    # given
    # ------------------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x float (B, 3, H, W) in [-1, 1] -> (z_q float (B, K, code_dim) straight-through, ids int64 (B, K),
        q_loss scalar)."""
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, W, G, G) -> (B, P, W), row-major
        return self.quantizer(self.to_code(self.encode_latents(patches)))

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantised latents float (B, K, code_dim) -> the head's grid output float (B, G * G, K_codes), row-major."""
        if z_q.shape[1] != self.num_latent_tokens:
            raise ValueError(f"expected {self.num_latent_tokens} latent tokens, got {tuple(z_q.shape)}")
        h = self.decoder_blocks(self.decoder_input(self.from_code(z_q)))  # (B, G*G + K, W)
        return self.head(h[:, : self.grid ** 2])  # (B, G*G, K_codes)

    def decode_codes(self, latents: torch.Tensor) -> torch.Tensor:
        """Quantised latents float (B, K, code_dim) -> the predicted teacher code ids int64 (B, G, G) (argmax)."""
        B = latents.shape[0]
        return self.decode(latents).argmax(-1).reshape(B, self.grid, self.grid)  # row-major, as the grid output

    def decode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Latent token ids int64 (B, K) -> predicted teacher code ids int64 (B, G, G) (for MaskGIT on 1D tokens)."""
        return self.decode_codes(self.quantizer.lookup(ids))

    def forward(self, x: torch.Tensor, codes: torch.Tensor) -> TiTokOutput:
        """x float (B, 3, H, W) in [-1, 1]; codes int64 (B, G, G), the teacher's ids -> ``TiTokOutput``."""
        z_q, ids, q_loss = self.encode(x)
        loss, logits = self.proxy_code_loss(self.decode(z_q), codes)
        return TiTokOutput(logits, loss, q_loss, ids)
