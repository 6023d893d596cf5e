"""Build a ``MaskGit`` with trained weights (given code): the frozen VQGAN and, optionally, a transformer."""
from __future__ import annotations

from models.checkpoint import check_tokenizer, tokenizer_identity
from models.config import MaskGitConfig
from models.VQGAN import load_vqgan
from models.VQGAN_Transformer import MaskGit


def load_maskgit(cfg: MaskGitConfig, device="cpu", transformer_ckpt=None, vqgan_ckpt=None) -> MaskGit:
    """MaskGit with the trained VQGAN (``cfg.vqgan_ckpt_path`` unless ``vqgan_ckpt`` is given) and, when
    ``transformer_ckpt`` is given, trained transformer weights (else random ones). Returned in eval mode on
    ``device``. A missing or mismatched checkpoint raises ``models.checkpoint.CheckpointError`` naming the file,
    and so does a transformer trained on another tokenizer than this VQGAN (``check_tokenizer``).

    ``model.tokenizer`` is the VQGAN's ``tokenizer_identity``: the training scripts store it in every transformer
    checkpoint and token cache they write."""
    vqgan_path = vqgan_ckpt or cfg.vqgan_ckpt_path
    vqgan = load_vqgan(cfg.vqgan, vqgan_path, device)
    model = MaskGit(cfg, vqgan=vqgan)
    model.tokenizer = tokenizer_identity(vqgan_path)
    if transformer_ckpt is not None:
        ckpt = model.load_transformer_checkpoint(transformer_ckpt)
        check_tokenizer(transformer_ckpt, ckpt, model.tokenizer, cfg.transformer)
    return model.to(device).eval()
