"""Decoding a batch of test images (given code): what ``inpainting.py`` runs around your ``iterative_decoding``.

    masked images --prefill + encode_to_z--> token ids + token mask --iterative_decoding--> ids --decode_to_image-->

``DecodeSettings`` holds every decoding setting as a plain value, resolved once from the flags and the config
(``command_line.decode_settings``); ``inpaint_batch`` runs one batch with them. ``experiments.py`` and the
benchmark use the same helpers, so all of them decode alike.
"""
from __future__ import annotations

import contextlib
import ctypes
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hole_fill import prefill_holes
from models.sampling import image_generators
from models.VQGAN_Transformer import NO_CLASS, MaskGit


@dataclass(frozen=True)
class DecodeSettings:
    """How to decode, as plain values."""

    choice_temperature: float       # Gumbel noise scale on the confidence (the config's 4.5 unless a flag says)
    total_iter: int = 8             # T, steps of the mask schedule
    sweet_spot: int | None = None   # stop after this many steps (None: all T)
    sample: bool = False            # True: sample ids from softmax(logits); False: argmax
    prefill: str = "laplace"        # hole fill before tokenizing (hole_fill.PREFILLS)
    precision: str = "fp32"         # "fp32" or "bf16" (autocast) for the transformer
    composite: bool = False         # copy the known pixels of the input into the output
    save_steps: bool = True         # also decode the image after every step (for imga/)
    seed: int = 0                   # with the image index, seeds each image's generator
    guidance: float = 1.0           # classifier-free guidance scale (class-conditional models, TODO4)
    guidance_ramp: bool = False     # ramp it linearly over the steps


def latent_mask(pixel_mask: torch.Tensor, latent_size: int) -> torch.Tensor:
    """Pixel mask float (B, 1, H, W), 1 = known -> token mask bool (B, N), True where the token's patch touches
    a hole (as in the course: average-pool and mask any token that is not fully known)."""
    hole = 1.0 - pixel_mask
    pooled = F.adaptive_avg_pool2d(hole, latent_size)  # (B, 1, h, w): hole fraction per patch
    return (pooled > 0).flatten(1)


def precision_context(device: torch.device, precision: str):
    """bfloat16 autocast on ``device`` for "bf16", nothing for "fp32"."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory for reuse instead of handing it back to the OS.

    Why: each decoding step allocates and frees buffers of tens to hundreds of MB (attention weights,
    logits, noise). By default glibc maps each one anew and the kernel faults in and zeroes every page
    again; on the kit's 2-core VMs that costs about as much as the arithmetic (docs/performance.md).
    Call once per process, from a script's ``main``; a no-op where the C library has no ``mallopt``.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    mallopt(m_mmap_max, 0)  # large blocks from the heap, not from fresh mmap()s
    mallopt(m_trim_threshold, 2**31 - 1)  # and never trim the heap back


class TokenIdError(ValueError):
    """Token ids from ``iterative_decoding`` that the VQGAN cannot decode (raised before decoding)."""


def check_token_ids(z: torch.Tensor, num_codes: int, what: str = "z_final") -> None:
    """Raise ``TokenIdError`` unless ``z`` is an int64 tensor of ids in [0, ``num_codes``) (the mask id excluded):
    an id out of range would otherwise fail deep inside the codebook lookup, far from the code that made it."""
    if not isinstance(z, torch.Tensor) or z.dtype != torch.int64:
        raise TokenIdError(f"iterative_decoding returned {what} as {type(z).__name__} "
                           f"{getattr(z, 'dtype', '')}, not an int64 tensor of token ids")
    bad = (z < 0) | (z >= num_codes)
    if bad.any():
        where = tuple(bad.nonzero()[0].tolist())
        value = int(z[where])
        name = " (the mask id)" if value == num_codes else ""
        raise TokenIdError(f"iterative_decoding returned {what} with token id {value}{name} at (image, position) "
                           f"{where} ({int(bad.sum())} such ids); ids must be real codes in [0, {num_codes}): "
                           "check inpainting_step (an argmax over all K + 1 classes? edits of its inputs?) and "
                           "iterative_decoding")


@torch.inference_mode()
def tokenize_masked(model: MaskGit, images, pixel_masks, prefill: str = "laplace"):
    """Token ids int64 (B, N) of the masked images, holes pre-filled by ``prefill`` first (hole_fill.py says
    why), and the token mask bool (B, N), True = to inpaint. A MaskGIT on TiTok's 1D tokens masks every token of
    an image with a hole (a 1D token is no place in the image: ``models.TiTok.tokenizer``)."""
    _, z_indices = model.encode_to_z(prefill_holes(images, pixel_masks, prefill))
    tokenizer = getattr(model, "vqgan", None)
    if getattr(tokenizer, "one_dimensional", False):  # TiTok's 1D tokens: all K tokens of an image with a hole
        return z_indices, tokenizer.token_mask(pixel_masks).to(z_indices.device)
    return z_indices, latent_mask(pixel_masks, model.cfg.vqgan.latent_size).to(z_indices.device)


def batch_padding(n: int, device: torch.device) -> int:
    """How many images to append to a batch of ``n`` so that no image's result depends on the batch size (CPU).

    Why: measured on the kit's CPUs, a convolution computes an image bit for bit the same in any batch, except
    when the batch is split among the torch threads mid-image (a batch size that is not a multiple of the thread
    count) or holds one image alone (another kernel): then its pixels move by about 3e-6, enough to flip a uint8
    level now and then (batch 7 and 64 differed in 3 pixel values). Padding every batch to a multiple of the thread
    count, at least 2, gives byte-identical outputs for every batch size. On a GPU the kernels are the library's
    choice; nothing is padded there."""
    if device.type != "cpu" or n == 0:
        return 0
    threads = torch.get_num_threads()
    return max(2, -(-n // threads) * threads) - n


def pad_batch(images, pixel_masks, indices, labels=None):
    """``(images, pixel_masks, indices, pad)`` with ``batch_padding`` copies of the last image appended (its
    generator is a fresh one, so the real images' random streams are untouched); drop the last ``pad`` results.
    With ``labels`` (one class label per image) the padded labels come fifth."""
    indices = [int(i) for i in indices]
    pad = batch_padding(len(indices), images.device)
    if pad:
        images = torch.cat([images, images[-1:].expand(pad, *images.shape[1:])])
        pixel_masks = torch.cat([pixel_masks, pixel_masks[-1:].expand(pad, *pixel_masks.shape[1:])])
        indices = indices + indices[-1:] * pad
    if labels is None:
        return images, pixel_masks, indices, pad
    labels = [int(v) for v in labels]
    return images, pixel_masks, indices, pad, labels + labels[-1:] * pad


def decode_tokens(model: MaskGit, z_indices, mask, generators, settings: DecodeSettings, iterative_decoding,
                  sweet_spot=None, labels=None, guided_decoding=None):
    """``(z_final, history)`` of one padded batch: ``iterative_decoding`` (TODO3), or for a class-conditional model
    ``guided_decoding`` (TODO4) with ``labels`` (int64 (B,); None = every image "no class")."""
    sweet_spot = settings.sweet_spot if sweet_spot is None else sweet_spot
    kwargs = dict(generators=generators, choice_temperature=settings.choice_temperature, sample=settings.sample)
    with precision_context(z_indices.device, settings.precision):
        if not getattr(model, "num_classes", 0):  # 0: an unconditional model (a test's stand-in may not say)
            return iterative_decoding(model, z_indices, mask, settings.total_iter, sweet_spot, **kwargs)
        if guided_decoding is None:
            raise ValueError("a class-conditional model decodes with guided_decoding (TODO4); none was given")
        if labels is None:
            labels = torch.full((z_indices.shape[0],), NO_CLASS, dtype=torch.int64)
        return guided_decoding(model, z_indices, mask, torch.as_tensor(labels, dtype=torch.int64),
                               settings.total_iter, settings.guidance, settings.guidance_ramp, sweet_spot, **kwargs)


@torch.inference_mode()
def inpaint_batch(model: MaskGit, images, pixel_masks, indices, settings: DecodeSettings, iterative_decoding,
                  labels=None, guided_decoding=None):
    """Inpaint one batch with ``iterative_decoding`` (inpainting.py's TODO3, passed in); a class-conditional model
    with ``guided_decoding`` (TODO4) and ``labels`` (one class label per image, ``NO_CLASS`` for none).

    Inputs: images float (B, 3, H, W) in [-1, 1]; pixel_masks float (B, 1, H, W), 1 = known; indices: the
    test-image numbers (B,), which seed the per-image generators.
    Returns ``(outputs, steps, masks)``: outputs float (B, 3, H, W) in [-1, 1]; steps: the decoded image after
    each step (empty unless ``settings.save_steps``); masks: the token mask before the first step, then after
    each step, bool (B, N) each. The batch is padded (``pad_batch``) so that the outputs do not depend on it.
    """
    n = images.shape[0]
    if labels is None:
        images, pixel_masks, indices, pad = pad_batch(images, pixel_masks, indices)
    else:
        images, pixel_masks, indices, pad, labels = pad_batch(images, pixel_masks, indices, labels)
    out, steps, masks = _inpaint_padded(model, images, pixel_masks, indices, settings, iterative_decoding, labels,
                                        guided_decoding)
    if pad:
        out, steps, masks = out[:n], [s[:n] for s in steps], [m[:n] for m in masks]
    return out, steps, masks


def _inpaint_padded(model: MaskGit, images, pixel_masks, indices, settings: DecodeSettings, iterative_decoding,
                    labels=None, guided_decoding=None):
    z_indices, mask = tokenize_masked(model, images, pixel_masks, settings.prefill)
    generators = image_generators(indices, settings.seed)
    z_final, history = decode_tokens(model, z_indices, mask, generators, settings, iterative_decoding,
                                     labels=labels, guided_decoding=guided_decoding)
    check_token_ids(z_final, model.num_codebook_vectors)
    if settings.save_steps:
        for t, (z, _) in enumerate(history):
            check_token_ids(z, model.num_codebook_vectors, f"z_pred of step {t} (in history)")
    out = model.decode_to_image(z_final)
    if settings.composite:  # keep the known pixels of the input exactly
        out = pixel_masks * images + (1 - pixel_masks) * out
    steps = [model.decode_to_image(z) for z, _ in history] if settings.save_steps else []
    masks = [mask] + [m for _, m in history]
    return out, steps, masks
