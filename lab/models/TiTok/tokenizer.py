"""A trained TiTok and its teacher as MaskGIT's tokenizer (given code): MaskGIT on K 1D tokens instead of 16x16.

``MaskGit`` uses its tokenizer through two calls, ``encode(x) -> (z_q, ids, loss)`` and ``decode_indices(ids)``;
``TiTokTokenizer`` answers both, so the kit's transformer, training loop, token cache and decoding run unchanged on
K tokens: images -> TiTok's K latent ids (the transformer's tokens) -> TiTok's decoder -> the teacher's 16x16 code
ids -> the teacher's pixel decoder.

A 1D token is not a place in the image: every latent token sees the whole image, so a hole cannot be mapped to some
tokens. ``token_mask`` therefore masks all K tokens of any image with a hole; "inpainting" with a TiTok MaskGIT is
generation of all K tokens with the known pixels pasted back afterwards (``--composite``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from models.checkpoint import codes_digest, file_sha256, read_checkpoint
from models.VQGAN import VQGAN

from .config import TiTokRunConfig
from .teacher import KIND, codes_to_pixels, load_teacher, load_titok
from .titok import TiTok

# TiTok's weights that do not decide the latent ids (its decoder side): a decoder fine-tune keeps every id
DECODER_PREFIXES = ("from_code.", "mask_token", "grid_pos", "decoder_latent_pos", "decoder_blocks.", "head.")


def titok_identity(path) -> dict:
    """What a transformer trained on TiTok tokens records about its tokenizer, as ``tokenizer_identity`` does for a
    VQGAN: ``{"path", "sha256", "codes_sha256" (the tensors that decide the ids), "config", "kind": "titok"}``."""
    ckpt = read_checkpoint(path, KIND)
    state = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith(DECODER_PREFIXES)}
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    return {"path": str(path), "sha256": file_sha256(path), "codes_sha256": codes_digest(state), "config": config,
            "kind": KIND}


class TiTokTokenizer(nn.Module):
    """A frozen TiTok (image -> K ids -> teacher code grid) with its frozen teacher VQGAN (code grid -> pixels)."""

    one_dimensional = True  # decoding.tokenize_masked: the token mask comes from ``token_mask``

    def __init__(self, titok: TiTok, teacher: VQGAN):
        super().__init__()
        self.titok, self.teacher = titok.eval(), teacher.eval()
        self.requires_grad_(False)
        self.num_tokens = titok.num_latent_tokens

    @torch.no_grad()
    def encode(self, x: torch.Tensor):
        """x float (B, 3, H, W) in [-1, 1] -> (z_q float (B, K, code_dim), ids int64 (B, K), q_loss scalar)."""
        return self.titok.encode(x)

    @torch.no_grad()
    def decode_indices(self, ids: torch.Tensor) -> torch.Tensor:
        """Latent ids int64 (B, K) -> images float (B, 3, H, W) in [-1, 1] (through the teacher's decoder)."""
        return codes_to_pixels(self.teacher, self.titok.decode_ids(ids.reshape(ids.shape[0], -1)))

    def token_mask(self, pixel_masks: torch.Tensor) -> torch.Tensor:
        """Pixel masks float (B, 1, H, W), 1 = known -> bool (B, K): every token of an image with any hole."""
        has_hole = (pixel_masks < 1).flatten(1).any(dim=1)  # (B,)
        return has_hole[:, None].expand(-1, self.num_tokens).contiguous()


def load_titok_tokenizer(cfg: TiTokRunConfig, titok_ckpt, device="cpu") -> tuple[TiTokTokenizer, dict]:
    """The trained TiTok of ``titok_ckpt`` with the teacher of ``cfg``, checked to be the teacher it was trained on
    (``CheckpointError`` naming both files otherwise), and its ``titok_identity``."""
    teacher, teacher_identity = load_teacher(cfg, device)
    titok = load_titok(titok_ckpt, cfg.titok, teacher_identity, device)
    return TiTokTokenizer(titok, teacher).to(device), titok_identity(titok_ckpt)
