"""TiTok's teacher (given code): the frozen VQGAN whose code ids TiTok learns to predict, checked against the TiTok
config, its proxy codes from the token cache, and TiTok checkpoints that record which teacher they were trained on.

Why the checks: TiTok's output classes are the teacher's code ids. A TiTok trained on one VQGAN and decoded through
another runs without an error and paints nonsense, so each pairing of files is checked once, with both named.
"""
from __future__ import annotations

import torch

from models.checkpoint import (
    CheckpointError,
    load_model_weights,
    save_model_checkpoint,
    tokenizer_differences,
    tokenizer_identity,
)
from models.VQGAN import VQGAN, load_vqgan

from .config import TiTokConfig, TiTokRunConfig
from .titok import TiTok

KIND = "titok"  # the "kind" of a TiTok checkpoint (models/checkpoint.py)


def check_teacher_checkpoint(path, titok: TiTokConfig) -> dict:
    """The teacher VQGAN checkpoint ``path``'s ``tokenizer_identity``, after checking that its codebook size and
    token grid are the ones ``titok`` predicts (``teacher_codes``, ``teacher_grid``); ``CheckpointError`` naming the
    file and the field otherwise."""
    identity = tokenizer_identity(path)
    stored = identity.get("config") or {}
    codes = stored.get("num_codebook_vectors")
    if codes is not None and codes != titok.teacher_codes:
        raise CheckpointError(f"{path}: the teacher VQGAN has {codes} codes (num_codebook_vectors), the TiTok config "
                              f"predicts teacher_codes {titok.teacher_codes}")
    try:
        side = int(stored["image_size"]) // 2 ** (len(stored["channels"]) - 1)
    except (KeyError, TypeError, ValueError):
        side = None
    if side is not None and side != titok.teacher_grid:
        raise CheckpointError(f"{path}: the teacher VQGAN makes a {side}x{side} grid (image_size / channels), the "
                              f"TiTok config predicts teacher_grid {titok.teacher_grid}")
    return identity


def load_teacher(cfg: TiTokRunConfig, device="cpu") -> tuple[VQGAN, dict]:
    """The frozen teacher VQGAN of ``cfg`` in eval mode on ``device``, and its ``tokenizer_identity``."""
    identity = check_teacher_checkpoint(cfg.teacher_ckpt_path, cfg.titok)
    vqgan = load_vqgan(cfg.teacher, cfg.teacher_ckpt_path, device)
    vqgan.requires_grad_(False)
    return vqgan, identity


@torch.no_grad()
def codes_to_pixels(vqgan: VQGAN, codes: torch.Tensor) -> torch.Tensor:
    """Teacher code ids int64 (B, G, G) (``TiTok.decode_codes``) -> images float (B, 3, H, W) in [-1, 1], through
    the teacher's decoder."""
    return vqgan.decode_indices(codes).clamp(-1, 1)


def check_cache_teacher(path, identity: dict, n_images: int, cfg: TiTokConfig) -> None:
    """Raise ``CheckpointError`` naming the token-cache file ``path`` when it holds another teacher's codes (its
    recorded tokenizer differs from ``identity`` in config or code weights) or does not fit ``cfg``'s grid and
    codebook. A cache that records no tokenizer, or that is unreadable, is left to the cache code (it rebuilds)."""
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return
    if not isinstance(entry, dict) or not isinstance(entry.get("tokenizer"), dict):
        return
    diffs = tokenizer_differences(entry["tokenizer"], identity)
    if diffs:
        raise CheckpointError(f"{path}: this token cache was built with another teacher "
                              f"({entry['tokenizer'].get('path')}), not {identity.get('path')}: " + "; ".join(diffs)
                              + ". Delete it, or pass the teacher it was built with (--vqgan-ckpt)")
    tokens = entry.get("tokens")
    if isinstance(tokens, torch.Tensor) and tokens.dim() == 2 and tokens.shape[0] == n_images:
        if tokens.shape[1] != cfg.teacher_grid ** 2:
            raise CheckpointError(f"{path}: {tokens.shape[1]} codes per image, the TiTok config's teacher_grid "
                                  f"{cfg.teacher_grid} needs {cfg.teacher_grid ** 2}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= cfg.teacher_codes):
            raise CheckpointError(f"{path}: code ids outside [0, {cfg.teacher_codes}) (teacher_codes)")


def save_titok(path, model: TiTok, teacher: dict, meta: dict | None = None, half: bool = True) -> None:
    """Write TiTok weights (float16 by default) with their config and the teacher's ``tokenizer_identity``."""
    save_model_checkpoint(path, KIND, model.cfg, model, half=half, meta=meta, teacher=teacher)


def load_titok(path, cfg: TiTokConfig, teacher: dict | None = None, device="cpu") -> TiTok:
    """A trained TiTok from ``path`` (eval mode, on ``device``), checked against ``cfg`` and, when given, the teacher
    in use (``teacher``, a ``tokenizer_identity``): ``CheckpointError`` naming both files when it was trained on
    another one."""
    model = TiTok(cfg)
    check_trained_teacher(path, load_model_weights(model, path, KIND, cfg), teacher)
    return model.to(device).eval()


def check_trained_teacher(path, ckpt: dict, teacher: dict | None) -> None:
    """``CheckpointError`` when the TiTok checkpoint ``ckpt`` (from ``path``) records another teacher than
    ``teacher``."""
    stored = ckpt.get("teacher")
    if teacher is None or not isinstance(stored, dict):
        return
    diffs = tokenizer_differences(stored, teacher)
    if diffs:
        raise CheckpointError(f"{path}: this TiTok was trained with the teacher {stored.get('path')}, not "
                              f"{teacher.get('path')}: " + "; ".join(diffs))

