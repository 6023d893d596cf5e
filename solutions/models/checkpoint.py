"""Saving and loading checkpoints safely.

Why this file exists: a checkpoint written half-way (Ctrl-C, full disk) must never replace a good one,
and a checkpoint trained with another architecture must fail with a message that names the file and
the differing hyperparameters, not with a wall of ``size mismatch`` lines from ``load_state_dict``.

Format (a plain dict, loadable with ``torch.load(path, weights_only=True)``)::

    {"kind": "vqgan" | "transformer", "config": {...dataclass fields...},
     "state_dict": {...}, "meta": {...}}     # training state may add "optimizer", "scheduler", "epoch"

A transformer checkpoint also records the tokenizer it was trained on (``"tokenizer"``, ``tokenizer_identity``):
a transformer predicts the code ids of one VQGAN, and over another VQGAN's codes it runs without an error but
inpaints nonsense. ``check_tokenizer`` turns such a mismatched pair into one error naming both files.
"""
from __future__ import annotations

import dataclasses
import hashlib
import sys
from pathlib import Path

import torch

from maskgit_kit.atomic import torch_save as atomic_torch_save


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not fit the config."""


def save_model_checkpoint(path, kind: str, config, model: torch.nn.Module, half: bool = False,
                          meta: dict | None = None, **extra) -> None:
    """Write ``model``'s weights with its config. ``half`` stores floating tensors as float16."""
    state = {k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
             for k, v in model.state_dict().items()}
    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    atomic_torch_save({"kind": kind, "config": cfg, "state_dict": state, "meta": meta or {}, **extra}, path)


def read_checkpoint(path, kind: str) -> dict:
    """Load a checkpoint dict with ``weights_only=True`` and check that it is a ``kind`` checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {kind} checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code objects, truncated zip ...
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: expected a kit checkpoint dict with 'state_dict', 'config', 'kind'")
    if ckpt.get("kind", kind) != kind:
        raise CheckpointError(f"{path}: this is a {ckpt.get('kind')} checkpoint, expected a {kind} checkpoint")
    return ckpt


def check_config(path, ckpt: dict, config) -> None:
    """Raise if the architecture stored in ``ckpt`` differs from ``config`` (a dataclass)."""
    stored = ckpt.get("config")
    if not isinstance(stored, dict):
        return  # foreign checkpoint without a config: the shape check in load_state_dict decides
    expected = dataclasses.asdict(config)
    ignore = {"dropout", "attn_dropout", "beta"}  # training-only knobs, free to change
    diffs = [f"{k}={stored[k]!r} (config says {expected[k]!r})"
             for k in expected if k in stored and k not in ignore and stored[k] != expected[k]]
    if diffs:
        raise CheckpointError(f"{path}: checkpoint does not fit the config: " + ", ".join(diffs))


def load_model_weights(model: torch.nn.Module, path, kind: str, config) -> dict:
    """Load a ``kind`` checkpoint into ``model`` (float16 storage is cast back to the model's dtype)."""
    ckpt = read_checkpoint(path, kind)
    check_config(path, ckpt, config)
    own = model.state_dict()
    state = {k: (v.to(own[k].dtype) if k in own and v.is_floating_point() else v)
             for k, v in ckpt["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"{path}: weights do not fit the model: {' '.join(first[:3])}") from None
    return ckpt


# ----------------------------------------------------------------------------------------------------
# Which tokenizer a transformer was trained on
# ----------------------------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def codes_digest(state_dict: dict) -> str:
    """sha256 over the tensors that decide the code ids (everything but ``decoder.*``), as stored.

    Why apart from the file's hash: a decoder fine-tune (``tools/train_vqgan.py --decoder-only``) writes a new
    file but keeps every image's code ids, so a transformer trained on the old file stays valid with the new one.
    """
    h = hashlib.sha256()
    for key in sorted(state_dict):
        if key.startswith("decoder."):
            continue
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def tokenizer_identity(vqgan_ckpt) -> dict:
    """What a transformer checkpoint records about its VQGAN: ``{"path", "sha256" (the file's content),
    "codes_sha256" (``codes_digest``), "config" (the VQGAN's config dict)}``. Raises ``CheckpointError`` when the
    file is missing or is not a VQGAN checkpoint."""
    path = Path(vqgan_ckpt)
    ckpt = read_checkpoint(path, "vqgan")
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    return {"path": str(path), "sha256": file_sha256(path), "codes_sha256": codes_digest(ckpt["state_dict"]),
            "config": config}


def _describe(identity: dict) -> str:
    cfg = identity.get("config") or {}
    return (f"{identity.get('path')} (sha256 {str(identity.get('sha256'))[:12]}, "
            f"{cfg.get('num_codebook_vectors', '?')} codes, {_grid(cfg)} grid)")


def _side(cfg: dict) -> int | None:
    """The token grid's side of a VQGAN config dict (None when the dict does not say)."""
    try:
        return int(cfg["image_size"]) // 2 ** (len(cfg["channels"]) - 1)
    except (KeyError, TypeError, ValueError):
        return None


def _grid(cfg: dict) -> str:
    side = _side(cfg)
    return "?" if side is None else f"{side}x{side}"


def tokenizer_differences(stored: dict, given: dict) -> list[str]:
    """What differs between the tokenizer a transformer was trained on and the one given, [] if they fit.

    The config (codebook size, token grid, architecture) must be equal, and so must the tensors that decide the
    code ids; a file that differs only in its decoder (a decoder fine-tune) fits."""
    diffs = []
    a, b = stored.get("config") or {}, given.get("config") or {}
    for key in sorted(set(a) | set(b)):
        if key != "beta" and a.get(key) != b.get(key):  # beta: a training-only loss weight
            diffs.append(f"{key} {a.get(key)!r} vs {b.get(key)!r}")
    if stored.get("codes_sha256") != given.get("codes_sha256"):
        diffs.append(f"encoder/codebook weights (sha256 {str(stored.get('codes_sha256'))[:12]} vs "
                     f"{str(given.get('codes_sha256'))[:12]})")
    return diffs


def check_tokenizer(path, ckpt: dict, identity: dict | None, transformer_config=None) -> None:
    """Raise ``CheckpointError`` when the transformer checkpoint ``ckpt`` (read from ``path``) was trained on another
    tokenizer than ``identity`` (``tokenizer_identity`` of the VQGAN in use), naming both files and what differs.

    A checkpoint that records no tokenizer (written before the kit recorded it) gets a one-line warning.
    ``transformer_config``: also check the recorded codebook size and token grid against it."""
    stored = ckpt.get("tokenizer")
    if identity is None:
        return
    if not isinstance(stored, dict):
        print(f"warning: {path} records no tokenizer (an older kit wrote it): not checked against "
              f"{identity.get('path')}", file=sys.stderr)
        return
    diffs = tokenizer_differences(stored, identity)
    cfg, side = stored.get("config") or {}, _side(stored.get("config") or {})
    if transformer_config is not None:
        if cfg.get("num_codebook_vectors") not in (None, transformer_config.num_codebook_vectors):
            diffs.append(f"the recorded tokenizer has {cfg.get('num_codebook_vectors')} codes, the transformer's "
                         f"config {transformer_config.num_codebook_vectors}")
        if side is not None and side * side != transformer_config.num_image_tokens:
            diffs.append(f"the recorded tokenizer makes {side * side} tokens, the transformer's config "
                         f"{transformer_config.num_image_tokens}")
    if diffs:
        raise CheckpointError(
            f"{path}: this transformer was trained on the tokenizer {_describe(stored)}, not on the VQGAN given, "
            f"{_describe(identity)}: " + "; ".join(diffs) + ". Use the VQGAN it was trained with (--vqgan-ckpt) "
            "or train a transformer on this one")
