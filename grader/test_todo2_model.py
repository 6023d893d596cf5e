"""TODO2, model side: gamma_func, encode_to_z, mask_tokens, forward (models/VQGAN_Transformer.py).

The transformer runs with the grader's attention and the masking checks with the grader's schedule (see
_standins.py), so a TODO1 or gamma bug is not charged again here.
"""
from __future__ import annotations

import math

import _standins
import _tiny
import pytest
import torch
from _tiny import K, N

from maskgit_kit.autograder.check import expect, expect_tensor, max_abs_diff, short, unpack
from maskgit_kit.autograder.points import points

TODO = "TODO2"  # the TODO of every check in this file (see @points)

MODES = {"cosine": "cos(pi/2 * r)", "linear": "1 - r", "square": "1 - r^2"}


def model_module(impl):
    return impl.module("models.VQGAN_Transformer")


@pytest.mark.parametrize("mode", list(MODES))
@points(6, "MaskGit.gamma_func")
def test_gamma_values(impl, mode):
    """gamma(r) at r = 0, 1 and in between"""
    g = _tiny.maskgit(impl).gamma_func(mode)
    r = torch.tensor([0.0, 0.25, 0.5, 0.8, 1.0])
    out = g(r)
    hint = f"{mode}: gamma(r) = {MODES[mode]}"
    expect_tensor(out, f"gamma_func({mode!r})(r) for r of shape (5,)", (5,), hint=hint)
    for i, ri in enumerate(r.tolist()):
        want = _standins.gamma_value(mode, ri)
        expect(abs(out[i].item() - want) <= 1e-5, f"gamma_func({mode!r})({ri:g})", f"{want:.4f}",
               f"{out[i].item():.4f}", hint)
    scalar = g(torch.tensor(0.5))
    expect(isinstance(scalar, torch.Tensor) and scalar.shape == (), f"gamma_func({mode!r}) of a 0-d tensor",
           "a 0-d tensor", short(scalar), "keep the shape of r")


@pytest.mark.parametrize("mode", list(MODES))
@points(3, "MaskGit.gamma_func")
def test_gamma_monotone_and_in_range(impl, mode):
    """gamma is non-increasing on [0, 1] with values in [0, 1]"""
    r = torch.linspace(0, 1, 101)
    out = _tiny.maskgit(impl).gamma_func(mode)(r)
    expect_tensor(out, f"gamma_func({mode!r})(r)", r.shape)
    rises = torch.nonzero(out[1:] > out[:-1] + 1e-6).flatten()
    expect(len(rises) == 0, f"gamma_{mode} on [0, 1]", "non-increasing",
           f"a rise after r = {r[rises[0]].item():.2f}" if len(rises) else "", "more tokens are known as r grows")
    expect(out.min() >= -1e-6 and out.max() <= 1 + 1e-6, f"gamma_{mode} values", "in [0, 1]",
           f"[{out.min().item():.3g}, {out.max().item():.3g}]", "clip to [0, 1]")


@points(1, "MaskGit.gamma_func")
def test_gamma_unknown_mode_raises(impl):
    """An unknown schedule name raises ValueError naming the valid choices"""
    model = _tiny.maskgit(impl)
    try:
        model.gamma_func("triangle")(torch.tensor([0.5]))
        raised = None
    except NotImplementedError:
        raise
    except Exception as exc:  # noqa: BLE001 - the type is what is checked
        raised = exc
    expect(isinstance(raised, ValueError) and "cosine" in str(raised), "gamma_func('triangle')",
           "ValueError naming the choices (cosine, ...)", short(raised), "raise ValueError for an unknown mode")


@points(2, "MaskGit.encode_to_z")
def test_encode_to_z(impl):
    """encode_to_z returns z_q (B, D, h, w) and int64 token ids (B, N) in [0, K), row-major"""
    model = _tiny.maskgit(impl)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    z_q, ids = unpack(model.encode_to_z(x), 2, "encode_to_z(x)", "return (z_q, z_indices)")
    with torch.no_grad():
        ref_q, ref_ids, _ = model.vqgan.encode(x)
    expect_tensor(z_q, "z_q", ref_q.shape, torch.float32, "z_q comes from self.vqgan.encode(x)")
    expect(max_abs_diff(z_q, ref_q) < 1e-5, "z_q", "self.vqgan.encode(x)[0]", "different values")
    expect_tensor(ids, "z_indices", (2, N), torch.int64, "flatten the (B, h, w) ids to (B, h*w)")
    expect(0 <= ids.min() and ids.max() < K, "z_indices values", f"in [0, {K})", f"[{ids.min()}, {ids.max()}]")
    expect(torch.equal(ids, ref_ids.reshape(2, -1)), "z_indices order", "row-major over the h x w grid "
           "(indices.reshape(B, -1))", "a different order", "do not transpose the grid")


def _expected_count(ratio: float) -> set[int]:
    """clamp(ceil(gamma(r) * N), 1, N); both neighbours when gamma(r) * N is within float error of an integer."""
    x = _standins.gamma_value("cosine", ratio) * N
    return {min(N, max(1, math.ceil(x + e))) for e in (-1e-4, 1e-4)}


@points(3, "MaskGit.mask_tokens")
def test_mask_tokens_counts(impl, monkeypatch):
    """mask_tokens masks clamp(ceil(gamma(r) * N), 1, N) tokens per image for a given ratio r"""
    _standins.use(monkeypatch, impl, "gamma")
    model = _tiny.maskgit(impl)
    z = torch.randint(0, K, (4, N))
    hint = "mask ceil(gamma(r) * N) tokens (at least 1), chosen at random"
    for ratio in (0.0, 0.25, 0.5, 0.75, 1.0, torch.tensor([0.1, 0.5, 0.9, 0.3])):
        _, mask = unpack(model.mask_tokens(z.clone(), ratio), 2, f"mask_tokens(z, {short(ratio)})",
                         "return (masked_indices, mask)")
        expect_tensor(mask, "mask", (4, N), torch.bool)
        rs = ratio.tolist() if isinstance(ratio, torch.Tensor) else [ratio] * 4
        for b, r in enumerate(rs):
            want, got = _expected_count(r), int(mask[b].sum())
            inverted = N - got in want
            expect(got in want, f"masked tokens for ratio {r:g}", f"{min(want)} of {N}", got,
                   "you mask the tokens you should keep (N - count)" if inverted and got not in want else hint)


@points(2, "MaskGit.mask_tokens")
def test_mask_tokens_values(impl, monkeypatch):
    """Masked positions hold the mask id K, the others keep their token; random positions per image"""
    _standins.use(monkeypatch, impl, "gamma")
    model = _tiny.maskgit(impl)
    z = torch.randint(0, K, (8, N))
    before = z.clone()
    masked, mask = unpack(model.mask_tokens(z, 0.5), 2, "mask_tokens(z, 0.5)")
    expect(torch.equal(z, before), "z_indices after mask_tokens", "unchanged (no in-place edit)", "modified",
           "work on a copy (masked_fill, not z[mask] = ...)")
    expect_tensor(masked, "masked_indices", (8, N), torch.int64)
    values = masked[mask].unique().tolist()
    expect(values == [K], "masked_indices at masked positions", f"the mask token id {K} (= K, never a real code)",
           short(values), "use self.mask_token_id")
    expect(torch.equal(masked[~mask], z[~mask]), "masked_indices at unmasked positions", "the original ids",
           "changed ids")
    expect(len({tuple(m.tolist()) for m in mask}) > 1, "masks of 8 images", "different random positions",
           "the same positions for every image", "draw the positions per image")
    expect(mask.any(0).float().mean() > 0.9, "positions masked in at least one of 8 images", "nearly all",
           f"{mask.any(0).float().mean():.0%}", "choose the masked positions uniformly at random")
    _, random_mask = unpack(model.mask_tokens(torch.randint(0, K, (64, N)), None), 2, "mask_tokens(z, None)")
    counts = random_mask.sum(1)
    expect(counts.unique().numel() > 5 and counts.min() >= 1, "masked counts with ratio=None (64 images)",
           "r ~ U(0, 1) drawn per image (varied counts, each >= 1)",
           f"{counts.unique().numel()} distinct counts, the smallest {int(counts.min())}",
           "draw r per image when ratio is None")


@points(3, "MaskGit.forward")
def test_forward_logits_and_targets(impl, monkeypatch):
    """forward masks with mask_tokens, runs the transformer on the masked ids, targets only the masked tokens"""
    _standins.use(monkeypatch, impl, "attention")
    mod = model_module(impl)
    calls = []

    def fake_mask_tokens(self, z_indices, ratio=None, generator=None):
        calls.append(ratio)
        pos = torch.arange(z_indices.shape[1])
        mask = torch.stack([(pos + 3 * b) % 4 == 0 for b in range(z_indices.shape[0])])
        return torch.where(mask, self.mask_token_id, z_indices), mask

    monkeypatch.setattr(mod.MaskGit, "mask_tokens", fake_mask_tokens)
    model = _tiny.maskgit(impl)
    seen = []
    model.transformer.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    z = torch.randint(0, K, (2, N))
    masked, mask = fake_mask_tokens(model, z)
    logits, target = unpack(model(z, ratio=0.3), 2, "forward(z, ratio=0.3)", "return (logits, target)")
    expect(calls[-1:] == [0.3], "self.mask_tokens calls", "one call with ratio=0.3", short(calls),
           "forward must call self.mask_tokens(z_indices, ratio)")
    expect(len(seen) == 1 and torch.equal(seen[0], masked), "transformer input", "the masked ids from mask_tokens",
           "something else", "run self.transformer(masked_indices)")
    expect_tensor(logits, "logits", (2, N, K + 1))
    with torch.no_grad():
        ref = model.transformer(masked)
    expect(max_abs_diff(logits, ref) < 1e-5, "logits", "the transformer's output", "different values")
    expect_tensor(target, "target", (2, N), torch.int64)
    expect(torch.equal(target[mask], z[mask]), "target at masked positions", "the original token ids",
           "other values", "the loss is computed on the masked tokens")
    ignore = mod.IGNORE_INDEX
    expect(bool((target[~mask] == ignore).all()), "target at unmasked positions", f"IGNORE_INDEX ({ignore})",
           short(target[~mask].unique()[:5]), "unmasked tokens must not count in the loss")
