"""Saving and loading checkpoints safely.

Why this file exists: a checkpoint written half-way (Ctrl-C, full disk) must never replace a good one,
and a checkpoint trained with another architecture must fail with a message that names the file and
the differing hyperparameters, not with a wall of ``size mismatch`` lines from ``load_state_dict``.

Format (a plain dict, loadable with ``torch.load(path, weights_only=True)``)::

    {"kind": "vqgan" | "transformer", "config": {...dataclass fields...},
     "state_dict": {...}, "meta": {...}}     # training state may add "optimizer", "scheduler", "epoch"
"""
from __future__ import annotations

import dataclasses
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
