"""Random numbers for decoding, one stream per test image (given code).

Why per image: an image must get the same noise, and so the same inpainting, whether it is decoded alone or in
a batch of 64, and whatever the batch size. ``image_generators`` seeds one ``torch.Generator`` per image from
(seed, image index); ``gumbel_noise`` draws each image's row from its own generator.
"""
from __future__ import annotations

import torch


def image_generators(indices, seed: int) -> list[torch.Generator]:
    """One CPU generator per test image, seeded from (``seed``, image index): results do not depend on batching."""
    return [torch.Generator().manual_seed(seed * 1_000_003 + int(i)) for i in indices]


def gumbel_noise(like: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
    """Standard Gumbel noise, float32, with the shape and device of ``like``.

    ``generators``: None (use the global RNG), or one ``torch.Generator`` per image (``len == like.shape[0]``),
    so that an image gets the same noise whether it is decoded alone or in a batch.
    ``argmax(logits + gumbel_noise(logits))`` is a sample from ``softmax(logits)`` (the Gumbel-max trick).
    """
    if generators is None:
        u = torch.rand(like.shape, device=like.device)
    else:
        if len(generators) != like.shape[0]:
            raise ValueError(f"got {len(generators)} generators for a batch of {like.shape[0]}")
        u = torch.empty(like.shape)
        for row, g in zip(u, generators, strict=True):  # row i: the same numbers as torch.rand(..., generator=g)
            row.uniform_(generator=g)
        u = u.to(like.device)
    # In place: this runs on (B, N, K) every decoding step, and fresh large buffers cost more than the math.
    return u.clamp_(1e-20, 1.0 - 1e-7).log_().neg_().log_().neg_()
