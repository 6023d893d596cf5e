"""Training on several processes with ``torchrun`` (given code): the process group, each rank's share of the
training data, the gradients averaged across ranks, and rank 0 as the only writer.

    torchrun --nproc_per_node=2 training_transformer.py --batch-size 32 ...   (2 processes, 64 images a step)

``--batch-size`` is per process, as in PyTorch: the global batch is ``--batch-size`` x the number of processes.
Without ``torchrun`` (no ``WORLD_SIZE`` in the environment, or 1) nothing here does anything: a plain
``python training_transformer.py`` creates no process group and trains exactly as before.

How the pieces keep a ``torchrun`` run equal to one process with the same global batch:
  - data: ``ShardedShuffle`` draws each epoch's permutation from the training loader's generator, as the
    single-process shuffle does, and gives rank r every world-size-th index from r on. The ranks' batches of
    step j together are the single-process batch j, and the generator's state (saved in every training state)
    makes ``--resume`` continue the same data order.
  - gradients: during ``train_one_epoch`` the model's transformer is a ``DistributedDataParallel`` wrapper
    (``ddp_transformer``), which averages the gradients across ranks in every ``backward``; the optimizer and
    the clipping see the same gradients on every rank, so the weights stay equal. Outside the training loop the
    transformer is the plain module again: checkpoints hold its own state dict, without a ``module.`` prefix.
  - random masks and dropout: rank 0 draws from the run's seeded stream (saved and restored by ``--resume``);
    rank r > 0 reseeds at every epoch from (seed, rank, epoch) (``seed_epoch``), so a resumed run draws as the
    uninterrupted one did and no two ranks draw the same masks.
  - files and validation: rank 0 validates, writes log.csv and the checkpoints; the others wait (``barrier``). The
    logged training loss is the mean of the ranks' losses (``average``).
"""
from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import RandomSampler, Sampler


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """True on rank 0, and in a single-process run."""
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def launched() -> bool:
    """Whether ``torchrun`` started this process as one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def process_group(device: torch.device):
    """Join the ``torchrun`` process group for the block and yield the device this rank trains on (``cuda:LOCAL_RANK``
    on GPUs, NCCL; the CPU with gloo); without ``torchrun``, yield ``device`` and do nothing."""
    if not launched() or dist.is_initialized():
        yield device
        return
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise SystemExit(f"torchrun: LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA devices; "
                             f"pass --nproc_per_node {torch.cuda.device_count()} or less")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    elif device.type == "cpu":
        dist.init_process_group("gloo")
    else:
        raise SystemExit(f"--device {device}: torchrun training runs on CUDA (NCCL) or the CPU (gloo)")
    try:
        yield device
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def main_first():
    """Run the block on rank 0 first and on the other ranks after it (e.g. building a cold token cache: only rank 0
    encodes and writes it, the others read it)."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def average(value):
    """The mean over the ranks of a number each rank computed (its training loss), as a float; ``value`` itself,
    untouched, without ``torchrun``."""
    if world_size() == 1:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.item() / world_size()


def seed_epoch(seed: int, epoch: int) -> None:
    """On rank r > 0, reseed the global RNGs (training masks, dropout) for ``epoch`` from (seed, rank, epoch);
    nothing on rank 0 or without ``torchrun``. Rank 0 keeps the run's own stream, which the training states save."""
    if rank() > 0:
        torch.manual_seed(((seed * 1_000_003 + epoch) * 1_009 + rank()) % 2**64)


class ShardedShuffle(Sampler[int]):
    """This rank's share of a shuffled epoch: rank r gets positions r, r + W, r + 2W, ... of the order a
    ``RandomSampler`` over ``range(n)`` draws from ``generator`` (W ranks). Every rank holds a generator in the same
    state, so all draw the same order, and it is the one ``DataLoader(shuffle=True, generator=generator)`` draws: the
    W ranks' batches of a step make up the single-process batch of that step. Iterating to the end runs the
    ``RandomSampler`` to its end too, so the generator moves on exactly as in a single-process epoch. ``n`` is cut
    to a multiple of W (at most W - 1 samples left out an epoch, as ``DistributedSampler(drop_last=True)`` does)."""

    def __init__(self, n: int, generator: torch.Generator, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.order = RandomSampler(range(n), generator=generator)
        self.n, self.generator, self.rank, self.world = n, generator, rank, world_size

    def __len__(self) -> int:
        return self.n // self.world

    def __iter__(self):
        kept = len(self) * self.world
        for position, index in enumerate(self.order):
            if position < kept and position % self.world == self.rank:
                yield index


def shard() -> tuple[int, int] | None:
    """(rank, world size) when training on several processes, else None (for ``build_loaders(shard=...)``)."""
    return (rank(), world_size()) if world_size() > 1 else None


class SharedGradients(DistributedDataParallel):
    """``DistributedDataParallel`` that also passes the wrapped transformer's plain attributes through: reading
    ``num_image_tokens``, and setting ``labels`` (``token_cache.ConditionedBatches`` conditions the model through
    ``model.transformer.labels``), reach the inner module."""

    def __init__(self, module: torch.nn.Module, **kwargs):
        super().__init__(module, **kwargs)
        self.__dict__["_pass_through"] = True  # from now on, set the inner module's own attributes on it

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)

    def __setattr__(self, name, value):
        inner = self.__dict__.get("_modules", {}).get("module")
        if self.__dict__.get("_pass_through") and name in vars(inner) and not name.startswith("_") \
                and name != "training":
            setattr(inner, name, value)
        else:
            super().__setattr__(name, value)


@contextlib.contextmanager
def ddp_transformer(model: torch.nn.Module):
    """Within the block ``model.transformer`` averages its gradients across ranks (a ``SharedGradients`` wrapper
    around the same parameters, so an optimizer built on them keeps working); after it, the plain module again.
    Without ``torchrun`` nothing changes."""
    if world_size() == 1:
        yield
        return
    inner = model.transformer
    device = next(inner.parameters()).device
    wrapper = getattr(model, "_ddp_wrapper", None)
    if wrapper is None or wrapper.module is not inner:
        wrapper = SharedGradients(inner, device_ids=[device.index] if device.type == "cuda" else None)
        object.__setattr__(model, "_ddp_wrapper", wrapper)  # not a submodule of model: no second state-dict entry
    model.transformer = wrapper
    try:
        yield
    finally:
        model.transformer = inner


def steps_note(batch_size: int) -> str | None:
    """A line for the log naming the global batch, when training on several processes."""
    if world_size() == 1:
        return None
    return (f"torchrun: {world_size()} processes x --batch-size {batch_size} = {world_size() * batch_size} "
            f"images per step")
