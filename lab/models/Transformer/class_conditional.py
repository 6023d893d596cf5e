"""Class-conditional MaskGIT (TODO4, an extension): a class token after the image tokens, and classifier-free
guidance.

TODO4: ``class_token_ids`` and ``forward`` of ``ClassConditionalTransformer`` (and ``guided_decoding`` in
``inpainting.py``).

Token ids of a class-conditional model (K = num_codebook_vectors, C = num_classes):
    [0, K)          image codes            K               the mask token
    K + 1 + c       class c, c in [0, C)   K + 1 + C       "no class" (unconditional)
so the wrapped ``BidirectionalTransformer`` reads N + 1 ids (the N image ids, then the class id) and has
K + C + 2 embeddings. One model does both conditional and unconditional generation: in training a fraction
``class_dropout`` of the images get "no class" instead of their own (Ho & Salimans, 2022), and at sampling the
guided logits are ``uncond + guidance * (cond - uncond)`` (guidance 1 = conditional, 0 = unconditional).

Why the labels are an attribute and not an argument: ``inpainting_step`` (TODO3) and ``MaskGit.forward`` (TODO2)
call ``self.transformer(masked_ids)`` with the ids alone, as the course's code does; ``MaskGit.conditioned``
sets ``labels`` and ``guidance`` around those calls, so TODO2 and TODO3 run class-conditional unchanged.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from models.config import TransformerConfig

from .transformer import BidirectionalTransformer

NO_CLASS = -1  # a label meaning "no class": the model gets its "no class" id (unconditional)


class ClassConditionalTransformer(nn.Module):
    """``BidirectionalTransformer`` over N image tokens + 1 class token; logits over the image positions only.

    Attributes (set by the given code):
      - net: the ``BidirectionalTransformer`` (input (B, N + 1), output (B, N + 1, K + C + 2)).
      - num_image_tokens N, num_codebook_vectors K, num_classes C, mask_token_id = K,
        first_class_id = K + 1, null_class_id = K + 1 + C.
      - class_dropout: float in [0, 1), the probability of "no class" per image in training mode.
      - labels: None (every image unconditional) or int64 (B,), class ids in [0, C) or ``NO_CLASS``.
      - guidance: float, the classifier-free guidance scale (used in eval mode only; training is always 1).
      - generator: None or a ``torch.Generator`` for the class-dropout draws.
    """

    def __init__(self, cfg: TransformerConfig, class_dropout: float = 0.1):
        super().__init__()
        if cfg.num_classes <= 0:
            raise ValueError("ClassConditionalTransformer needs a config with num_classes > 0")
        self.net = BidirectionalTransformer(cfg)
        self.cfg = cfg
        self.num_image_tokens = cfg.num_image_tokens
        self.num_codebook_vectors = cfg.num_codebook_vectors
        self.num_classes = cfg.num_classes
        self.mask_token_id = cfg.num_codebook_vectors
        self.first_class_id = cfg.num_codebook_vectors + 1
        self.null_class_id = cfg.num_codebook_vectors + 1 + cfg.num_classes
        self.class_dropout = class_dropout
        self.labels: torch.Tensor | None = None
        self.guidance = 1.0
        self.generator: torch.Generator | None = None

    # ------------------------------------------------------------------------------------------------
    # TODO4: the class token, class dropout and classifier-free guidance
    # ------------------------------------------------------------------------------------------------
    def class_token_ids(self, labels, drop_prob=0.0, generator=None):
        """Class labels -> the ids of their class tokens.

        Inputs:
          - labels: int64 (B,), class ids in [0, C) or ``NO_CLASS`` (-1).
          - drop_prob: float in [0, 1): each image independently gets "no class" with this probability, drawn
            as ``torch.rand(B, generator=generator) < drop_prob`` (on the CPU; no draw at all when it is 0).
        Returns int64 (B,) on the labels' device: ``first_class_id + label`` for a class, ``null_class_id`` for
        ``NO_CLASS`` and for every dropped image.
        """
        # ============================== TODO4 ==============================
        # class_token_ids: labels -> class token ids, "no class"
        # (contract: see this function's docstring)
        # ===================================================================
        raise NotImplementedError("TODO4: class_token_ids: labels -> class token ids, \"no class\"")

    def forward(self, masked_ids):
        """Logits of the image tokens, conditioned on ``self.labels``.

        Inputs: masked_ids int64 (B, N), ids in [0, K] (K = the mask token).
        Returns float (B, N, K + 1): the logits of the N image positions over the K codes and the mask id; the
        class position and the class ids' columns are dropped.
          - The class token (``class_token_ids`` of ``self.labels``; all "no class" when ``self.labels`` is None)
            goes after the image tokens: ``self.net`` reads (B, N + 1).
          - Training mode: class dropout with ``self.class_dropout`` and ``self.generator``; no guidance.
          - Eval mode, ``self.guidance == 1``: one pass with the class tokens. Any other guidance g: a conditional
            and an unconditional ("no class") pass (one batch of 2B is fine) and ``uncond + g * (cond - uncond)``.
        """
        # ============================== TODO4 ==============================
        # forward: append the class token, read off the image logits, guidance
        # (contract: see this function's docstring)
        # ===================================================================
        raise NotImplementedError("TODO4: forward: append the class token, read off the image logits, guidance")


GROWN_DIMS = {"tok_emb.weight": (0,), "pos_emb": (0,), "bias": (0, 1)}  # what the class token adds rows to


def expand_unconditional_state(state: dict, model: ClassConditionalTransformer) -> dict:
    """The state dict of an unconditional ``BidirectionalTransformer`` made to fit ``model`` (``--init-from`` an
    unconditional checkpoint): every weight is copied; the rows the class token adds (the class and "no class"
    embeddings, the class position, its bias row and columns) keep ``model``'s fresh initialisation."""
    own = model.state_dict()
    out = {}
    for key, value in own.items():
        src = state.get(key.removeprefix("net."))
        if src is None:
            out[key] = value
            continue
        if src.shape == value.shape:
            out[key] = src.to(value.dtype)
            continue
        growing = GROWN_DIMS.get(key.removeprefix("net."), ())
        fits = src.dim() == value.dim() and all(
            a == b or (d in growing and a < b) for d, (a, b) in enumerate(zip(src.shape, value.shape, strict=True)))
        if not fits:
            raise ValueError(f"{key}: the unconditional weights {tuple(src.shape)} do not fit {tuple(value.shape)}")
        grown = value.clone()
        grown[tuple(slice(0, n) for n in src.shape)] = src.to(value.dtype)
        out[key] = grown
    return out
