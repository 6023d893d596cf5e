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
from maskgit_kit.autograder.feedback import TODO_RE
from maskgit_kit.autograder.points import points

TODO = "TODO2"  # the TODO of every check in this file (see @points)

MODES = {"cosine": "cos(pi/2 * r)", "linear": "1 - r", "square": "1 - r^2"}


def model_module(impl):
    return impl.module("models.VQGAN_Transformer")


def gamma_at(g, r: float, what: str, hint: str) -> float:
    """gamma(r) for a float r: a float or a 0-d tensor comes back (accepting tensors is optional)."""
    out = g(r)
    ok = isinstance(out, (float, int)) or (isinstance(out, torch.Tensor) and out.numel() == 1)
    expect(ok, what, "a float (or a 0-d tensor) for a float r", short(out), hint)
    return float(out)


@pytest.mark.parametrize("mode", list(MODES))
@points(6, "MaskGit.gamma_func")
def test_gamma_values(impl, mode):
    """gamma(r) at r = 0, 1 and in between, for a float r"""
    g = _tiny.maskgit(impl).gamma_func(mode)
    hint = f"{mode}: gamma(r) = {MODES[mode]}"
    for r in (0.0, 0.25, 0.5, 0.8, 1.0):
        got, want = gamma_at(g, r, f"gamma_func({mode!r})({r:g})", hint), _standins.gamma_value(mode, r)
        if mode == "cosine" and abs(got - max(0.0, math.cos(math.pi * r))) < 1e-5 and r in (0.25, 0.8):
            hint = "cosine: cos(pi/2 * r), not cos(pi * r) (which reaches 0 at r = 0.5)"
        expect(abs(got - want) <= 1e-5, f"gamma_func({mode!r})({r:g})", f"{want:.4f}", f"{got:.4f}", hint)


@pytest.mark.parametrize("mode", list(MODES))
@points(3, "MaskGit.gamma_func")
def test_gamma_monotone_and_in_range(impl, mode):
    """gamma is non-increasing on [0, 1] with values in [0, 1]"""
    g = _tiny.maskgit(impl).gamma_func(mode)
    rs = [i / 100 for i in range(101)]
    out = [gamma_at(g, r, f"gamma_func({mode!r})({r:g})", "gamma(r) takes a float r") for r in rs]
    rises = [rs[i] for i in range(100) if out[i + 1] > out[i] + 1e-6]
    expect(not rises, f"gamma_{mode} on [0, 1]", "non-increasing",
           f"a rise after r = {rises[0]:.2f}" if rises else "", "more tokens are known as r grows")
    expect(min(out) >= -1e-6 and max(out) <= 1 + 1e-6, f"gamma_{mode} values", "in [0, 1]",
           f"[{min(out):.3g}, {max(out):.3g}]", "clip to [0, 1]")


@points(1, "MaskGit.gamma_func")
def test_gamma_unknown_mode_raises(impl):
    """An unknown schedule name raises ValueError or NotImplementedError"""
    model = _tiny.maskgit(impl)
    try:
        model.gamma_func("triangle")(0.5)
        raised = None
    except NotImplementedError as exc:
        if TODO_RE.match(str(exc)):
            raise  # the stub: "not implemented yet"
        raised = exc
    except Exception as exc:  # noqa: BLE001 - the type is what is checked
        raised = exc
    expect(isinstance(raised, (ValueError, NotImplementedError)), "gamma_func('triangle')",
           "ValueError or NotImplementedError", short(raised),
           "raise ValueError (naming the modes you have) or NotImplementedError for an unknown mode")


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
    """mask_tokens masks clamp(ceil(gamma(r) * N), 1, N) tokens per image for a given ratio r; r ~ U(0, 1) per
    image when ratio is None"""
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
            x = _standins.gamma_value("cosine", r) * N
            if N - got in want:
                why = "the inverted training mask: you mask the tokens you should keep (N - count)"
            elif got == max(1, math.floor(x)):
                why = "rounded down: use ceil(gamma(r) * N), at least 1"
            else:
                why = hint
            expect(got in want, f"masked tokens for ratio {r:g}", f"{min(want)} of {N}", got, why)
    _, random_mask = unpack(model.mask_tokens(torch.randint(0, K, (64, N)), None), 2, "mask_tokens(z, None)")
    counts = random_mask.sum(1)
    expect(counts.unique().numel() > 5 and counts.min() >= 1, "masked counts with ratio=None (64 images)",
           "r ~ U(0, 1) drawn per image (varied counts, each >= 1)",
           f"{counts.unique().numel()} distinct counts, the smallest {int(counts.min())}",
           "draw r per image when ratio is None")


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
           short(values), "use self.mask_token_id: MaskGIT's mask token is an extra id K with its own embedding; a "
           "real code id there would look like a known token to the transformer")
    expect(torch.equal(masked[~mask], z[~mask]), "masked_indices at unmasked positions", "the original ids",
           "changed ids")
    expect(len({tuple(m.tolist()) for m in mask}) > 1, "masks of 8 images", "different random positions",
           "the same positions for every image", "draw the positions per image")
    expect(mask.any(0).float().mean() > 0.9, "positions masked in at least one of 8 images", "nearly all",
           f"{mask.any(0).float().mean():.0%}", "choose the masked positions uniformly at random")


@points(1, "MaskGit.mask_tokens")
def test_mask_tokens_uses_generator(impl, monkeypatch):
    """mask_tokens draws from its generator: the same seed gives the same mask, whatever the global RNG state"""
    _standins.use(monkeypatch, impl, "gamma")
    model = _tiny.maskgit(impl)
    z = torch.randint(0, K, (4, N))
    for ratio in (0.5, None):
        masks = []
        for seed, global_seed in ((7, 1), (7, 2), (8, 1)):
            torch.manual_seed(global_seed)
            _, mask = unpack(model.mask_tokens(z.clone(), ratio, generator=torch.Generator().manual_seed(seed)), 2,
                             f"mask_tokens(z, {ratio}, generator=...)", "return (masked_indices, mask)")
            masks.append(mask)
        expect(torch.equal(masks[0], masks[1]), f"mask_tokens(z, {ratio}) with the same generator seed, another "
               "global RNG state", "the same mask", "a different mask", "mask_tokens ignores its generator: pass "
               "generator=generator to every random draw (torch.rand / torch.randperm)")
        expect(not torch.equal(masks[0], masks[2]), f"mask_tokens(z, {ratio}) with another generator seed",
               "a different mask", "the same mask", "draw the positions at random with the generator")


@points(2, "MaskGit.forward")
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
    wrong_axis = isinstance(logits, torch.Tensor) and tuple(logits.shape) == (2, K + 1, N)
    expect_tensor(logits, "logits", (2, N, K + 1), hint="cross-entropy over the wrong axis: return the "
                  "transformer's (B, N, K+1) logits; transpose inside the loss, not in forward" if wrong_axis else "")
    with torch.no_grad():
        ref = model.transformer(masked)
    expect(max_abs_diff(logits, ref) < 1e-5, "logits", "the transformer's output", "different values")
    expect_tensor(target, "target", (2, N), torch.int64)
    expect(torch.equal(target[mask], z[mask]), "target at masked positions", "the original token ids",
           "other values", "the loss is computed on the masked tokens")
    ignore = mod.IGNORE_INDEX
    all_tokens = torch.equal(target, z)
    expect(bool((target[~mask] == ignore).all()), "target at unmasked positions", f"IGNORE_INDEX ({ignore})",
           short(target[~mask].unique()[:5]), ("loss over all tokens: " if all_tokens else "") + "MaskGIT's loss "
           "counts only the masked tokens (the others are in the input, predicting them is copying)")
