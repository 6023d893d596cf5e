"""Build a ``MaskGit`` with trained weights (given code): the frozen VQGAN and, optionally, a transformer."""
from __future__ import annotations

import dataclasses

from models.checkpoint import CheckpointError, check_config, check_tokenizer, read_checkpoint, tokenizer_identity
from models.config import MaskGitConfig
from models.Transformer.class_conditional import expand_unconditional_state
from models.VQGAN import load_vqgan
from models.VQGAN_Transformer import MaskGit


def load_maskgit(cfg: MaskGitConfig, device="cpu", transformer_ckpt=None, vqgan_ckpt=None,
                 grow_classes: bool = False) -> MaskGit:
    """MaskGit with the trained VQGAN (``cfg.vqgan_ckpt_path`` unless ``vqgan_ckpt`` is given) and, when
    ``transformer_ckpt`` is given, trained transformer weights (else random ones). Returned in eval mode on
    ``device``. A missing or mismatched checkpoint raises ``models.checkpoint.CheckpointError`` naming the file,
    and so does a transformer trained on another tokenizer than this VQGAN (``check_tokenizer``).

    ``model.tokenizer`` is the VQGAN's ``tokenizer_identity``: the training scripts store it in every transformer
    checkpoint and token cache they write.

    A config with ``TiTok_Configs`` (MaskGIT on TiTok's 1D tokens) gets ``models.TiTok.tokenizer.TiTokTokenizer``
    in place of the VQGAN (``vqgan_ckpt`` then names its teacher), and ``model.tokenizer`` is its ``titok_identity``.

    ``grow_classes`` (training's ``--init-from``): a class-conditional ``cfg`` may start from an unconditional
    checkpoint of the same architecture; its weights are copied and the class token's new rows start fresh."""
    vqgan_path = vqgan_ckpt or cfg.vqgan_ckpt_path
    if cfg.titok_ckpt_path:  # MaskGIT on TiTok's 1D tokens: TiTok + its teacher are the tokenizer
        from models.TiTok import load_titok_config, with_teacher
        from models.TiTok.tokenizer import load_titok_tokenizer

        run = with_teacher(load_titok_config(cfg.titok_config_path), vqgan_path)
        tokenizer, identity = load_titok_tokenizer(run, cfg.titok_ckpt_path, device)
        model = MaskGit(cfg, vqgan=tokenizer)
        model.tokenizer = identity
    else:
        model = MaskGit(cfg, vqgan=load_vqgan(cfg.vqgan, vqgan_path, device))
        model.tokenizer = tokenizer_identity(vqgan_path)
    if transformer_ckpt is not None:
        ckpt = read_checkpoint(transformer_ckpt, "transformer")
        stored = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
        if grow_classes and model.num_classes and not stored.get("num_classes"):
            check_config(transformer_ckpt, ckpt, dataclasses.replace(cfg.transformer, num_classes=0))
            try:
                state = expand_unconditional_state(ckpt["state_dict"], model.transformer)
            except ValueError as exc:
                raise CheckpointError(f"{transformer_ckpt}: {exc}") from None
            model.transformer.load_state_dict(state)
        else:
            ckpt = model.load_transformer_checkpoint(transformer_ckpt)
        check_tokenizer(transformer_ckpt, ckpt, model.tokenizer, cfg.transformer)
    return model.to(device).eval()
