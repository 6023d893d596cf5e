"""Build a ``MaskGit`` with trained weights (given code): the frozen VQGAN and, optionally, a transformer."""
from __future__ import annotations

from models.config import MaskGitConfig
from models.VQGAN import load_vqgan
from models.VQGAN_Transformer import MaskGit


def load_maskgit(cfg: MaskGitConfig, device="cpu", transformer_ckpt=None, vqgan_ckpt=None) -> MaskGit:
    """MaskGit with the trained VQGAN (``cfg.vqgan_ckpt_path`` unless ``vqgan_ckpt`` is given) and, when
    ``transformer_ckpt`` is given, trained transformer weights (else random ones). Returned in eval mode on
    ``device``. A missing or mismatched checkpoint raises ``models.checkpoint.CheckpointError`` naming the file."""
    vqgan = load_vqgan(cfg.vqgan, vqgan_ckpt or cfg.vqgan_ckpt_path, device)
    model = MaskGit(cfg, vqgan=vqgan)
    if transformer_ckpt is not None:
        model.load_transformer_checkpoint(transformer_ckpt)
    return model.to(device).eval()
