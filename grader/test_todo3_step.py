"""TODO3: MaskGit.inpainting_step, one step of iterative decoding (models/VQGAN_Transformer.py).

Runs with the grader's attention and cosine schedule (see _standins.py), so TODO1/TODO2 bugs are not charged here.
"""
from __future__ import annotations

import math

import _standins
import _tiny
import pytest
import torch
from _tiny import K, N

from maskgit_kit.autograder.check import expect, expect_tensor, unpack
from maskgit_kit.autograder.points import points

TODO = "TODO3"  # the TODO of every check in this file (see @points)


@pytest.fixture
def model(impl, monkeypatch):
    _standins.use(monkeypatch, impl, "attention", "gamma")
    return _tiny.maskgit(impl)


def gens(n, seed=0):
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def step(model, z, mask, n0, ratio, choice_temperature=4.5, **kwargs):
    out = model.inpainting_step(z, mask, n0, ratio, choice_temperature=choice_temperature, **kwargs)
    z_pred, new_mask = unpack(out, 2, "inpainting_step(...)", "return (z_pred, new_mask)")
    expect_tensor(z_pred, "z_pred", z.shape, torch.int64)
    expect_tensor(new_mask, "new_mask", z.shape, torch.bool)
    return z_pred, new_mask


@points(4, "MaskGit.inpainting_step")
def test_step_keeps_known_tokens(model):
    """Known tokens come back unchanged; masked ones get a real code id; ids under the mask are ignored"""
    z, mask = _tiny.tokens_and_mask()
    n0 = mask.sum(1)
    z_pred, _ = step(model, z, mask, n0, 0.25, generators=gens(3))
    changed = int((z_pred[~mask] != z[~mask]).sum())
    expect(changed == 0, "known (unmasked) tokens in z_pred", "unchanged", f"{changed} of {int((~mask).sum())} "
           "replaced by predictions", "z_pred = torch.where(mask, predicted, z_indices)")
    expect(0 <= z_pred.min() and z_pred.max() < K, "z_pred ids", f"real codes in [0, {K}) (never the mask id {K})",
           f"[{z_pred.min()}, {z_pred.max()}]", "predict ids among the K codes")
    garbage = z.masked_fill(mask, 3)
    a, _ = step(model, z, mask, n0, 0.25, choice_temperature=0.0, sample=False)
    b, _ = step(model, garbage, mask, n0, 0.25, choice_temperature=0.0, sample=False)
    expect(torch.equal(a, b), "z_pred when the ids under the mask change", "the same (the transformer sees the mask "
           f"id {K} there)", "a different result", "feed z_indices.masked_fill(mask, self.mask_token_id)")


@points(3, "MaskGit.inpainting_step")
def test_step_reveals_only_masked(model):
    """new_mask is a subset of mask: a known token never becomes masked again"""
    z, mask = _tiny.tokens_and_mask()
    for ratio in (0.25, 0.5):
        _, new_mask = step(model, z, mask, mask.sum(1), ratio, generators=gens(3))
        bad = int((new_mask & ~mask).sum())
        expect(bad == 0, f"new_mask at ratio {ratio}", "True only where mask was True", f"{bad} known tokens "
               "masked again", "known tokens get confidence +inf so they are never re-masked")


def _floor(n0: int, ratio: float) -> set[int]:
    x = n0 * _standins.gamma_value("cosine", ratio)
    return {math.floor(x + e) for e in (-1e-4, 1e-4)}


@points(5, "MaskGit.inpainting_step")
def test_step_keeps_scheduled_count_masked(model):
    """floor(N0 * gamma(ratio)) tokens stay masked, clamped to [1, unknown - 1]; none at ratio 1 or when none are"""
    z, mask = _tiny.tokens_and_mask(4, fractions=(0.2, 0.5, 0.8, 0.0))
    n0 = mask.sum(1)
    hint = "mask_len = floor(num_unknown_start * gamma(ratio)), clamped to [1, unknown - 1]"
    for ratio in (1 / 8, 3 / 8, 5 / 8, 7 / 8, 1.0):
        _, new_mask = step(model, z, mask, n0, ratio, generators=gens(4))
        for b in range(4):
            n, got = int(n0[b]), int(new_mask[b].sum())
            if n == 0 or ratio >= 1:
                want = {0}
            else:
                want = {max(1, min(n - 1, f)) for f in _floor(n, ratio)}
            expect(got in want, f"tokens left masked at ratio {ratio:g} with N0 = {n}", min(want), got,
                   "none stay masked on the last step (ratio 1)" if ratio >= 1 else hint)


@points(4, "MaskGit.inpainting_step")
def test_step_counts_from_original_unknown(model):
    """The number left masked comes from N0 (unknown before step 0), not from the current count"""
    z, _ = _tiny.tokens_and_mask(1)
    mask = torch.zeros(1, N, dtype=torch.bool)
    mask[0, torch.randperm(N)[:166]] = True  # 166 unknown now; 200 before the first step
    n0 = torch.tensor([200])
    _, new_mask = step(model, z, mask, n0, 0.5, generators=gens(1))
    want, got = _floor(200, 0.5), int(new_mask.sum())
    current = got in _floor(166, 0.5)
    expect(got in want, "tokens left masked at ratio 0.5 with N0 = 200 and 166 unknown now", min(want), got,
           "you used the current count; use num_unknown_start (N0)" if current else
           "floor(num_unknown_start * gamma(ratio))")


@points(4, "MaskGit.inpainting_step")
def test_step_zero_temperature_reveals_most_confident(model):
    """With choice_temperature 0 and sample=False, the argmax ids are predicted and the most confident revealed"""
    z, mask = _tiny.tokens_and_mask()
    z_pred, new_mask = step(model, z, mask, mask.sum(1), 0.5, choice_temperature=0.0, sample=False)
    with torch.no_grad():
        logits = model.transformer(z.masked_fill(mask, K))[..., :K]
    conf, best = logits.log_softmax(-1).max(-1)
    expect(torch.equal(z_pred[mask], best[mask]), "z_pred at masked positions with sample=False",
           "the argmax ids", "other ids", "sample=False: pred = logits.argmax(-1)")
    for b in range(z.shape[0]):
        revealed, kept = mask[b] & ~new_mask[b], new_mask[b]
        if revealed.any() and kept.any():
            lo, hi = conf[b][revealed].min().item(), conf[b][kept].max().item()
            expect(lo >= hi - 1e-5, f"image {b}: confidence of revealed vs still-masked tokens",
                   "revealed >= still masked", f"revealed min {lo:.3f} < masked max {hi:.3f}",
                   "keep masked the LOWEST-confidence tokens (confidence = log p of the predicted id)")
