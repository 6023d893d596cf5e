"""MaskGIT (Chang et al., 2022): a frozen VQGAN tokenizer plus a bidirectional transformer that predicts
masked tokens.

TODO2: ``encode_to_z``, ``gamma_func``, ``mask_tokens`` and ``forward`` (training-time masking).
TODO3: ``inpainting_step`` (one step of iterative decoding).
TODO4 (extension, class-conditional): in ``models/Transformer/class_conditional.py``; ``conditioned`` here is given.

Conventions used everywhere in this file:
  - N = num_image_tokens (16 * 16 = 256), K = num_codebook_vectors (512 here, 1024 in the course).
  - Token ids are int64 in [0, K); the mask token id is K (``self.mask_token_id``), never a real code.
  - A boolean token mask is True where the token is MASKED (unknown, to be predicted).
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn

from models.checkpoint import load_model_weights
from models.config import MaskGitConfig
from models.sampling import gumbel_noise
from models.Transformer.class_conditional import NO_CLASS, ClassConditionalTransformer
from models.Transformer.transformer import BidirectionalTransformer
from models.VQGAN import VQGAN

IGNORE_INDEX = -100  # target value at unmasked positions: F.cross_entropy(ignore_index=-100) skips them
MASK_FUNCS = ("cosine", "linear", "square")  # the course's schedules: required, graded, the given defaults
EXTRA_MASK_FUNCS = ("cubic", "sqrt", "log", "exp")  # optional (not graded); only used when asked for by name


class MaskGit(nn.Module):
    """Frozen VQGAN + trainable ``BidirectionalTransformer``.

    Build it with ``models.loading.load_maskgit(cfg, ...)`` to get the trained VQGAN weights; ``MaskGit(cfg)``
    alone gives randomly initialised models (fine for tests).
    """

    def __init__(self, cfg: MaskGitConfig, vqgan: VQGAN | None = None):
        super().__init__()
        self.cfg = cfg
        self.vqgan = (vqgan if vqgan is not None else VQGAN(cfg.vqgan)).eval()
        self.vqgan.requires_grad_(False)  # the tokenizer is frozen (stage 2 of MaskGIT)
        self.num_classes = cfg.transformer.num_classes  # 0: unconditional (the course's model)
        if self.num_classes:
            self.transformer = ClassConditionalTransformer(cfg.transformer, cfg.class_dropout)
        else:
            self.transformer = BidirectionalTransformer(cfg.transformer)
        self.num_image_tokens = cfg.num_image_tokens
        self.num_codebook_vectors = cfg.num_codebook_vectors
        self.mask_token_id = cfg.num_codebook_vectors
        self.mask_func = cfg.mask_func  # the schedule ``gamma`` uses: the config's, or the script's --mask-func

    def train(self, mode: bool = True):
        super().train(mode)
        self.vqgan.eval()  # frozen: no dropout / batch statistics updates, whatever mode the transformer is in
        return self

    def gamma(self, ratio):
        """The mask schedule named by ``self.mask_func``, applied to ``ratio`` (a float; see ``gamma_func``)."""
        return self.gamma_func(self.mask_func)(ratio)

    @contextlib.contextmanager
    def conditioned(self, labels, guidance: float = 1.0, generator: torch.Generator | None = None):
        """Within the block, every ``self.transformer(ids)`` call (``forward``, ``inpainting_step``) is conditioned on
        ``labels`` (int64 (B,), class ids in [0, C) or ``NO_CLASS``; None = unconditional) with classifier-free
        guidance ``guidance`` (eval mode); ``generator`` draws the class dropout (training). A class-conditional
        model only; labels out of range are refused here, naming the bad value."""
        if not self.num_classes:
            raise ValueError("this MaskGit is unconditional (num_classes 0): it takes no class labels")
        if labels is not None:
            labels = torch.as_tensor(labels).long()
            bad = (labels != NO_CLASS) & ((labels < 0) | (labels >= self.num_classes))
            if bad.any():
                raise ValueError(f"class label {int(labels[bad][0])} out of range: expected 0..{self.num_classes - 1} "
                                 f"or {NO_CLASS} (no class)")
        t = self.transformer
        saved = t.labels, t.guidance, t.generator
        t.labels, t.guidance, t.generator = labels, float(guidance), generator
        try:
            yield self
        finally:
            t.labels, t.guidance, t.generator = saved

    def load_transformer_checkpoint(self, path) -> dict:
        return load_model_weights(self.transformer, path, "transformer", self.cfg.transformer)

    @torch.no_grad()
    def decode_to_image(self, z_indices):
        """Token ids -> images with the frozen VQGAN decoder: the way back of ``encode_to_z``.

        Inputs: z_indices int64 (B, N), ids in [0, K), row-major over the h x w grid (no mask token left).
        Returns: float (B, 3, H, W), clamped to [-1, 1].
        """
        return self.vqgan.decode_indices(z_indices).clamp(-1, 1)

    # ------------------------------------------------------------------------------------------------
    # TODO2: tokens, schedule and training-time masking
    # ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_to_z(self, x):
        """Turn images into token ids with the frozen VQGAN.

        Inputs:
          - x: float tensor (B, 3, H, W), values in [-1, 1].
        Returns a tuple ``(z_q, z_indices)``:
          - z_q: float tensor (B, latent_dim, h, w), the quantised latents (``self.vqgan.encode`` gives them);
          - z_indices: int64 tensor (B, N) with N = h * w, token ids in [0, K), row-major over the h x w grid.
        """
        # ============================== TODO2 ==============================
        # encode_to_z: token ids (B, N) from self.vqgan.encode
        # (contract: see this function's docstring)
        # ===================================================================
        raise NotImplementedError("TODO2: encode_to_z: token ids (B, N) from self.vqgan.encode")

    def gamma_func(self, mode="cosine"):
        """Return the mask schedule ``gamma`` named ``mode``.

        ``gamma(r)`` takes a float ``r`` in [0, 1] and returns a float (or a 0-d tensor): the fraction of tokens
        that are (still) masked at ratio ``r``, with gamma(0) = 1, gamma(1) = 0, non-increasing, values clipped
        to [0, 1]. ``math.cos`` on a float is fine; accepting tensors too is optional (the given code passes
        floats; your own ``mask_tokens`` may pass whatever your ``gamma`` accepts).
        Required (``MASK_FUNCS``, graded; every given script's default uses only these):
          cosine: cos(pi/2 * r)      linear: 1 - r        square: 1 - r^2
        Optional extras (``EXTRA_MASK_FUNCS``, not graded; the reference has them, N = self.num_image_tokens):
          cubic: 1 - r^3   sqrt: 1 - sqrt(r)   log: -log2(r) / log2(N)   exp: 1 - 2^(-log2(N) * (1 - r))
          (exp starts at 1 - 1/N).
        Any other ``mode`` (an extra you did not write included) raises ``ValueError`` (best: naming the modes
        you have) or ``NotImplementedError``.
        """
        # ============================== TODO2 ==============================
        # gamma_func: the cosine / linear / square mask schedules as functions of r
        # (contract: see this function's docstring)
        # ===================================================================
        raise NotImplementedError("TODO2: gamma_func: the cosine / linear / square mask schedules as functions of r")

    def mask_tokens(self, z_indices, ratio=None, generator=None):
        """Training-time masking: hide a random subset of each image's tokens.

        Inputs:
          - z_indices: int64 tensor (B, N), token ids in [0, K).
          - ratio: None (draw r ~ U(0, 1) independently per image, as in training), or a float / float
            tensor of shape (B,) fixing r.
          - generator: optional ``torch.Generator``; every random draw uses it, so the same seed gives the same
            mask whatever the global RNG state (the grader checks this).
        Returns ``(masked_indices, mask)``:
          - mask: bool tensor (B, N), True at the masked positions; each image has exactly
            ``clamp(ceil(gamma(r) * N), 1, N)`` masked positions, chosen uniformly at random;
          - masked_indices: int64 (B, N), equal to z_indices where not masked and ``self.mask_token_id``
            where masked.
        """
        # ============================== TODO2 ==============================
        # mask_tokens: mask ceil(gamma(r) * N) random tokens per image
        # (contract: see this function's docstring)
        # ===================================================================
        raise NotImplementedError("TODO2: mask_tokens: mask ceil(gamma(r) * N) random tokens per image")

    def forward(self, x, ratio=None):
        """One training forward pass.

        Inputs:
          - x: images, float (B, 3, H, W) in [-1, 1]; or token ids, int64 (B, N), already encoded (the
            token cache of ``token_cache.py`` passes these to skip the VQGAN).
          - ratio: passed to ``mask_tokens`` (None = random per image).
        Masks with ``self.mask_tokens(z_indices, ratio)`` (the grader relies on it), then runs
        ``self.transformer`` on the masked ids.
        Returns ``(logits, target)``:
          - logits: float (B, N, K + 1), the transformer's output on the masked tokens;
          - target: int64 (B, N), the original token id at masked positions and ``IGNORE_INDEX`` (-100)
            at unmasked ones, so ``F.cross_entropy(..., ignore_index=IGNORE_INDEX)`` scores masked tokens only.
        """
        with torch.autocast(x.device.type, enabled=False):  # the frozen VQGAN in fp32, as the token cache encodes
            z_indices = x if not torch.is_floating_point(x) else self.encode_to_z(x)[1]
        # ============================== TODO2 ==============================
        # forward: mask the tokens, run the transformer, build the targets
        # (contract: see this function's docstring)
        # ===================================================================
        raise NotImplementedError("TODO2: forward: mask the tokens, run the transformer, build the targets")

    # ------------------------------------------------------------------------------------------------
    # TODO3: one step of iterative decoding
    # ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def inpainting_step(self, z_indices, mask, num_unknown_start, ratio, choice_temperature, sample=True,
                        generators=None):
        """One MaskGIT decoding step (google-research/maskgit ``parallel_decode.decode``), batched.

        Inputs:
          - z_indices: int64 (B, N): current token ids; values at masked positions are ignored (the
            transformer sees ``self.mask_token_id`` there).
          - mask: bool (B, N), True where the token is still unknown.
          - num_unknown_start: int64 (B,), N0 = number of unknown tokens of each image before step 0.
          - ratio: float in (0, 1], (step + 1) / total_iter.
          - choice_temperature: float >= 0, scale of the Gumbel noise added to the confidence, annealed as
            ``choice_temperature * (1 - ratio)`` (no noise when that is 0). The caller passes it (MaskGIT: 4.5).
          - sample: True = sample ids from softmax(logits) (Gumbel-max), False = argmax.
          - generators: None or one ``torch.Generator`` per image, used through ``gumbel_noise`` (first for
            sampling ids when ``sample``, then for the confidence noise).
        Returns ``(z_pred, new_mask)``:
          - z_pred: int64 (B, N): known tokens exactly as in ``z_indices``; every masked position filled
            with a predicted id in [0, K) (never the mask token);
          - new_mask: bool (B, N), True where a token stays masked for the next step (a subset of
            ``mask``). Confidence = log p(predicted id) + noise, where log p is the log-softmax over the
            K image codes (the mask token's logit excluded), and +inf for known tokens; per image the
            ``floor(N0 * gamma(ratio))`` lowest-confidence unknown tokens stay masked, that number clamped
            to [1, unknown - 1]; none stay masked on the last step (ratio == 1) or when none were unknown.
        """
        # ============================== TODO3 ==============================
        # inpainting_step: predict, score confidence, keep the least confident masked
        # (contract: see this function's docstring)
        # ===================================================================
        raise NotImplementedError("TODO3: inpainting_step: predict, score confidence, keep the least confident masked")

