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
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm import tqdm

from distributed_training import ShardedShuffle
from maskgit_kit.atomic import torch_save as atomic_torch_save
from maskgit_kit.class_labels import folder_labels
from models.checkpoint import tokenizer_identity
from utils import DataError, LoadTrainData


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


def _cached_tokens(path: Path, n_images: int, tokenizer: dict | None) -> torch.Tensor | None:
    """The tokens of a cache file when it is readable, holds ``n_images`` rows and records the same tokenizer (its
    file's sha256) as ``tokenizer``; else None (the caller rebuilds it). An older cache (a bare tensor, no
    tokenizer recorded) is rebuilt too."""
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None  # unreadable (truncated, not a torch file ...)
    if not isinstance(entry, dict) or not isinstance(entry.get("tokens"), torch.Tensor):
        return None
    recorded = entry.get("tokenizer")
    expected = tokenizer.get("sha256") if tokenizer else None
    if (recorded or {}).get("sha256") != expected:
        print(f"warning: {path} was encoded by another tokenizer ({(recorded or {}).get('path')}); re-encoding")
        return None
    tokens = entry["tokens"]
    return tokens if tokens.dim() == 2 and tokens.shape[0] == n_images else None


def load_or_build_tokens(model, dataset: LoadTrainData, cache_dir, vqgan_ckpt, device, split: str) -> torch.Tensor:
    """Return the cached tokens of ``dataset`` for this VQGAN, encoding and caching them if needed.

    The cache file is ``{"tokens": int16 (M, N), "tokenizer": tokenizer_identity(vqgan_ckpt)}`` (None for a random
    VQGAN): the key in its name hashes the VQGAN file already, and the recorded identity is checked on load."""
    key = cache_key(dataset.files, vqgan_ckpt)
    path = Path(cache_dir) / f"{split}-{key}.pt"
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None and vqgan_ckpt and Path(vqgan_ckpt).is_file():
        tokenizer = tokenizer_identity(vqgan_ckpt)
    if path.is_file():
        tokens = _cached_tokens(path, len(dataset), tokenizer)
        if tokens is not None:
            return tokens
    tokens = encode_folder(model, dataset, device, desc=f"caching {split} tokens")
    atomic_torch_save({"tokens": tokens, "tokenizer": tokenizer}, path)
    return tokens


def _stack_tokens(rows):
    return torch.stack([r[0] for r in rows]).long()


def _stack_labelled_tokens(rows):
    return torch.stack([r[0] for r in rows]).long(), torch.stack([r[1] for r in rows])


def _shuffled(n: int, gen: torch.Generator, shard: tuple[int, int] | None) -> dict:
    """The DataLoader arguments of a shuffled loader drawing from ``gen``: ``shuffle=True``, or with ``shard``
    (rank, world size; ``torchrun``) this rank's share of the same permutation
    (``distributed_training.ShardedShuffle``)."""
    return {"shuffle": True} if shard is None else {"sampler": ShardedShuffle(n, gen, *shard)}


def token_loader(tokens: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0,
                 drop_last: bool = False, labels: torch.Tensor | None = None,
                 shard: tuple[int, int] | None = None) -> DataLoader:
    """Batches of int64 token ids (B, N) from an int16 token tensor; with ``labels`` (int64 (M,)), pairs
    (token ids (B, N), labels (B,)). ``shard`` (rank, world size): a shuffled loader yields this rank's share."""
    gen = torch.Generator().manual_seed(seed)
    data = TensorDataset(tokens) if labels is None else TensorDataset(tokens, labels)
    order = _shuffled(len(data), gen, shard) if shuffle else {"shuffle": False}
    return DataLoader(data, batch_size=batch_size, generator=gen, drop_last=drop_last,
                      collate_fn=_stack_tokens if labels is None else _stack_labelled_tokens, **order)


class LabelledImages(Dataset):
    """(image, label) pairs of a ``LoadTrainData`` folder (``--no-token-cache`` with a class-conditional model)."""

    def __init__(self, images: LoadTrainData, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], self.labels[i]


class ConditionedBatches:
    """The batches of a labelled loader without their labels, the model conditioned on each batch's labels while
    it is handed out (``ClassConditionalTransformer.labels``).

    Why: ``train_one_epoch`` and ``eval_one_epoch`` (TODO2) take batches of images or token ids and call
    ``model(batch)``; a class-conditional model trains with the same loops unchanged. Class dropout draws from the
    global RNG, whose state the training checkpoints save (a resumed run reproduces it)."""

    def __init__(self, loader: DataLoader, model):
        self.loader, self.model = loader, model
        self.dataset, self.generator = loader.dataset, loader.generator

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        transformer = self.model.transformer
        try:
            for batch, labels in self.loader:
                transformer.labels = labels
                yield batch
        finally:
            transformer.labels = None


def build_loaders(model, device, train_dir, val_dir, *, batch_size: int, partial: float = 1.0,
                  token_cache: bool = True, cache_dir=None, num_workers: int = 0,
                  seed: int = 0, shard: tuple[int, int] | None = None) -> tuple[DataLoader, DataLoader]:
    """Training (shuffled with ``seed``) and validation loaders over the first ``partial`` of each folder.

    With ``token_cache`` (default) the batches are cached token ids, int64 (B, N), encoded once into
    ``cache_dir``; otherwise images, float (B, 3, H, W) in [-1, 1], that ``MaskGit.forward`` encodes each time.
    A class-conditional model (``model.num_classes`` > 0) trains on the folders' class labels (``meta.json``, see
    ``maskgit_kit.class_labels``): the loaders are ``ConditionedBatches`` and yield the same batches.
    ``shard`` (rank, world size; ``torchrun``, see ``distributed_training.py``): the training loader yields this
    rank's share of each epoch; the validation loader stays whole.
    """
    train_set = LoadTrainData(train_dir, partial=partial)
    val_set = LoadTrainData(val_dir, partial=partial)
    conditional = bool(getattr(model, "num_classes", 0))
    labels = {}
    if conditional:
        for split, folder, data in (("train", train_dir, train_set), ("val", val_dir, val_set)):
            classes, ids = folder_labels(folder, len(data))
            if len(classes) != model.num_classes:
                raise DataError(f"{folder}: the data has {len(classes)} classes, the model's config "
                                f"{model.num_classes} (Transformer_param.num_classes)")
            labels[split] = torch.tensor(ids, dtype=torch.int64)
    if not token_cache:
        gen = torch.Generator().manual_seed(seed)
        if conditional:
            train_set, val_set = LabelledImages(train_set, labels["train"]), LabelledImages(val_set, labels["val"])
        # (issue 16, part C) Both modes batch alike, so --no-token-cache trains on the same batches as the cache:
        # the same drop_last, and a generator for the validation loader too (without one, each pass would draw
        # its worker seed from the global RNG, which the training masks use).
        loaders = (DataLoader(train_set, batch_size=batch_size, drop_last=True, generator=gen,
                              num_workers=num_workers, **_shuffled(len(train_set), gen, shard)),
                   DataLoader(val_set, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                              generator=torch.Generator().manual_seed(seed)))
    else:
        ckpt = model.cfg.tokenizer_ckpt_path  # a TiTok MaskGIT: the TiTok file (its ids are the tokens)
        train_tokens = load_or_build_tokens(model, train_set, cache_dir, ckpt, device, "train")
        val_tokens = load_or_build_tokens(model, val_set, cache_dir, ckpt, device, "val")
        loaders = (token_loader(train_tokens, batch_size, shuffle=True, seed=seed, drop_last=True,
                                labels=labels.get("train"), shard=shard),
                   token_loader(val_tokens, batch_size, shuffle=False, labels=labels.get("val")))
    return tuple(ConditionedBatches(loader, model) for loader in loaders) if conditional else loaders
