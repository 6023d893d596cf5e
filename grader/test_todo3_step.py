"""TODO3: MaskGit.inpainting_step, one step of iterative decoding (models/VQGAN_Transformer.py).

Runs with the grader's attention and cosine schedule (see _standins.py), so TODO1/TODO2 bugs are not charged here.
Contract decisions (grader/README.md): every rule is checked one image at a time (B = 1), so a step written for one
image, as the course's template is, keeps the points of every rule it gets right; batching is one check of its own.
Inputs are passed as clones and results compared with the originals; editing the inputs is its own check.
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
COUNT_HINT = "mask_len = floor(num_unknown_start * gamma(ratio)), clamped to [1, unknown - 1]"


@pytest.fixture
def model(impl, monkeypatch):
    _standins.use(monkeypatch, impl, "attention", "gamma")
    return _tiny.maskgit(impl)


def gens(n, seed=0):
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def step(model, z, mask, n0, ratio, choice_temperature=4.5, **kwargs):
    """One call on clones of the inputs (a step that edits its inputs is judged by test_step_leaves_inputs_alone)."""
    n0 = torch.as_tensor(n0).reshape(-1).long()
    out = model.inpainting_step(z.clone(), mask.clone(), n0.clone(), ratio, choice_temperature=choice_temperature,
                                **kwargs)
    z_pred, new_mask = unpack(out, 2, "inpainting_step(...)", "return (z_pred, new_mask)")
    expect_tensor(z_pred, "z_pred", z.shape, torch.int64)
    expect_tensor(new_mask, "new_mask", z.shape, torch.bool)
    return z_pred, new_mask


def per_image(model, z, mask, n0, ratio, seed=None, **kwargs):
    """The step run on each image alone (B = 1), results stacked; ``seed``: per-image generators."""
    outs = [step(model, z[b:b + 1], mask[b:b + 1], torch.as_tensor(n0).reshape(-1)[b:b + 1], ratio,
                 **({} if seed is None else {"generators": gens(1, seed + b)}), **kwargs) for b in range(len(z))]
    return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])


def one(n0: int, unknown: int, seed: int = 0):
    """Random ids (1, N) and a mask (1, N) with ``unknown`` masked tokens; N0 = ``n0``."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randint(0, K, (1, N), generator=g)
    mask = torch.zeros(1, N, dtype=torch.bool)
    mask[0, torch.randperm(N, generator=g)[:unknown]] = True
    return z, mask, torch.tensor([n0])


def _x(n0: int, ratio: float) -> float:
    return n0 * _standins.gamma_value("cosine", ratio)


def _floor(n0: int, ratio: float) -> set[int]:
    x = _x(n0, ratio)
    return {math.floor(x + e) for e in (-1e-4, 1e-4)}


def _band(n0: int, ratio: float) -> set[int]:
    """floor and ceil of N0 * gamma(ratio): the count check accepts both (rounding is test_step_rounds_down's)."""
    x = _x(n0, ratio)
    return {math.floor(x + e) for e in (-1e-4, 1e-4)} | {math.ceil(x + e) for e in (-1e-4, 1e-4)}


def _clamp(counts: set[int], unknown: int, ratio: float) -> set[int]:
    if unknown == 0 or ratio >= 1:
        return {0}
    return {max(1, min(unknown - 1, c)) for c in counts}


@points(3, "MaskGit.inpainting_step")
def test_step_keeps_known_tokens(model):
    """Known tokens come back unchanged; masked ones get a real code id; ids under the mask are ignored"""
    z, mask = _tiny.tokens_and_mask()
    n0 = mask.sum(1)
    z_pred, _ = per_image(model, z, mask, n0, 0.25, seed=0)
    changed = int((z_pred[~mask] != z[~mask]).sum())
    expect(changed == 0, "known (unmasked) tokens in z_pred", "unchanged", f"{changed} of {int((~mask).sum())} "
           "replaced by predictions", "z_pred = torch.where(mask, predicted, z_indices)")
    expect(0 <= z_pred.min() and z_pred.max() < K, "z_pred ids", f"real codes in [0, {K}) (never the mask id {K})",
           f"[{z_pred.min()}, {z_pred.max()}]", "predict ids among the K codes")
    garbage = z.masked_fill(mask, 3)
    a, _ = per_image(model, z, mask, n0, 0.25, choice_temperature=0.0, sample=False)
    again, _ = per_image(model, z, mask, n0, 0.25, choice_temperature=0.0, sample=False)
    if not torch.equal(a, again):
        return  # random with sample=False: test_step_zero_temperature_reveals_most_confident says so
    b, _ = per_image(model, garbage, mask, n0, 0.25, choice_temperature=0.0, sample=False)
    expect(torch.equal(a, b), "z_pred when the ids under the mask change", "the same (the transformer sees the mask "
           f"id {K} there)", "a different result", "feed z_indices.masked_fill(mask, self.mask_token_id)")


@points(2, "MaskGit.inpainting_step")
def test_step_never_predicts_mask_token(impl, model):
    """With the mask token's logit the largest, z_pred still holds only real codes (argmax over the K codes)"""
    with torch.no_grad():
        model.transformer.bias[:, K] = 30.0  # the mask token wins any argmax over all K + 1 classes
    z, mask = _tiny.tokens_and_mask()
    for sample in (False, True):
        z_pred, _ = per_image(model, z, mask, mask.sum(1), 0.5, seed=3, sample=sample)
        bad = int((z_pred == K).sum())
        expect(bad == 0, f"z_pred with sample={sample} when the mask token's logit is the largest",
               f"ids in [0, {K}) only", f"the mask id {K} at {bad} masked positions",
               f"an argmax over all K + 1 classes predicts the mask token: set logits[..., {K}] = -inf (or use "
               f"logits[..., :{K}]) before the softmax; the mask id is not an image code and cannot be decoded")


@points(1, "MaskGit.inpainting_step")
def test_step_leaves_inputs_alone(model):
    """The step does not edit z_indices, mask or num_unknown_start in place (the caller still uses them)"""
    z, mask = _tiny.tokens_and_mask()
    n0 = mask.sum(1)
    for b in range(len(z)):
        args = (z[b:b + 1].clone(), mask[b:b + 1].clone(), n0[b:b + 1].clone())
        for kwargs in ({"sample": True, "generators": gens(1, b)}, {"sample": False}):
            model.inpainting_step(*args, 0.5, choice_temperature=4.5, **kwargs)
            edited = [name for name, x, orig in zip(("z_indices", "mask", "num_unknown_start"), args,
                                                    (z[b:b + 1], mask[b:b + 1], n0[b:b + 1]), strict=True)
                      if not torch.equal(x, orig)]
            expect(not edited, "the inputs after inpainting_step", "unchanged", "edited in place: "
                   + ", ".join(edited), "the loop keeps using them (history, the next step): build new tensors "
                   "(z_indices.masked_fill(...), torch.where(...)) instead of writing into the inputs")


@points(2, "MaskGit.inpainting_step")
def test_step_reveals_only_masked(model):
    """new_mask is a subset of mask: a known token never becomes masked again"""
    z, mask = _tiny.tokens_and_mask()
    for ratio in (0.25, 0.5):
        _, new_mask = per_image(model, z, mask, mask.sum(1), ratio, seed=0)
        bad = int((new_mask & ~mask).sum())
        expect(bad == 0, f"new_mask at ratio {ratio}", "True only where mask was True", f"{bad} known tokens "
               "masked again", "known tokens get confidence +inf so they are never re-masked")


# (N0, unknown now, ratio): small N0 (1, 2, 3), the [1, unknown - 1] clamp binding at both ends (scheduled >= unknown,
# scheduled 0 before the last step), none unknown, the last step. Where unknown < N0, the current count clamps alike.
COUNT_CASES = [(50, 50, 1 / 8), (128, 128, 3 / 8), (200, 200, 5 / 8), (100, 100, 7 / 8), (1, 1, 0.5), (2, 2, 1 / 8),
               (2, 2, 7 / 8), (3, 3, 1 / 8), (3, 3, 7 / 8), (10, 3, 1 / 8), (40, 6, 1 / 8), (0, 0, 0.5),
               (40, 40, 1.0), (3, 3, 1.0)]


@points(3, "MaskGit.inpainting_step")
def test_step_keeps_scheduled_count_masked(model):
    """N0 * gamma(ratio) tokens stay masked, clamped to [1, unknown - 1]; none at ratio 1 or when none are unknown"""
    for i, (n0, unknown, ratio) in enumerate(COUNT_CASES):
        z, mask, n = one(n0, unknown, seed=i)
        _, new_mask = step(model, z, mask, n, ratio, generators=gens(1, i))
        got, want = int(new_mask.sum()), _clamp(_band(n0, ratio), unknown, ratio)
        what = f"tokens left masked at ratio {ratio:g} with N0 = {n0} and {unknown} unknown"
        if ratio >= 1 or unknown == 0:
            hint = "none stay masked on the last step (ratio 1) or when none are unknown"
        elif got == 0:
            hint = "at least 1 stays masked before the last step: clamp mask_len to [1, unknown - 1]"
        elif got >= unknown:
            hint = "at least 1 is revealed every step: clamp mask_len to [1, unknown - 1]"
        else:
            hint = COUNT_HINT
        expect(got in want, what, " or ".join(map(str, sorted(want))), got, hint)


ROUNDING_CASES = [(100, 5 / 8), (64, 0.5), (200, 3 / 8), (120, 5 / 8)]  # N0 * gamma: 55.56, 45.25, 166.29, 66.67


@points(1, "MaskGit.inpainting_step")
def test_step_rounds_down(model):
    """The count left masked is floor(N0 * gamma(ratio)), not rounded up or to the nearest"""
    found = []
    for i, (n0, ratio) in enumerate(ROUNDING_CASES):
        z, mask, n = one(n0, n0, seed=20 + i)
        _, new_mask = step(model, z, mask, n, ratio, generators=gens(1, i))
        found.append((n0, ratio, _x(n0, ratio), int(new_mask.sum())))
    wrong = [f for f in found if f[3] not in _floor(f[0], f[1])]
    if wrong:
        how = next((name for name, r in (("rounded up (ceil)", math.ceil), ("rounded to the nearest", round))
                    if all(got == r(x) for _, _, x, got in found)), "")
        n0, ratio, x, got = wrong[0]
        expect(False, f"tokens left masked at ratio {ratio:g} with N0 = {n0} (N0 * gamma = {x:.2f})",
               math.floor(x), f"{got}{f' ({how})' if how else ''}",
               "floor, as MaskGIT: mask_len = floor(N0 * gamma(ratio)) (torch.floor or math.floor, not ceil/round)")


# (N0, unknown now, ratio): the floor/ceil of N0 * gamma and of unknown * gamma are disjoint, and both < unknown.
N0_CASES = [(200, 120, 0.75), (100, 60, 0.625), (150, 90, 0.75)]


@points(3, "MaskGit.inpainting_step")
def test_step_counts_from_original_unknown(model):
    """The number left masked comes from N0 (unknown before step 0), not from the current count"""
    for i, (n0, unknown, ratio) in enumerate(N0_CASES):
        z, mask, n = one(n0, unknown, seed=40 + i)
        _, new_mask = step(model, z, mask, n, ratio, generators=gens(1, i))
        want, got = _band(n0, ratio), int(new_mask.sum())
        current = _band(unknown, ratio) | {round(_x(unknown, ratio))}
        expect(got in want, f"tokens left masked at ratio {ratio:g} with N0 = {n0} and {unknown} unknown now",
               math.floor(_x(n0, ratio)), f"{got}{' (from the current count)' if got in current else ''}",
               "you used the current count (mask.sum()); use num_unknown_start (N0)" if got in current else
               "floor(num_unknown_start * gamma(ratio))")


@points(2, "MaskGit.inpainting_step")
def test_step_zero_temperature_reveals_most_confident(model):
    """With choice_temperature 0 and sample=False, the argmax ids are predicted and the most confident revealed"""
    z, mask = _tiny.tokens_and_mask()
    torch.manual_seed(1)
    z_pred, new_mask = per_image(model, z, mask, mask.sum(1), 0.5, choice_temperature=0.0, sample=False)
    torch.manual_seed(2)
    z_again, mask_again = per_image(model, z, mask, mask.sum(1), 0.5, choice_temperature=0.0, sample=False)
    expect(torch.equal(z_pred, z_again) and torch.equal(new_mask, mask_again),
           "two calls with sample=False and choice_temperature 0 (other global RNG seeds)", "the same result",
           "different results: the step draws random numbers from the global RNG",
           "sample=False means argmax ids, and choice_temperature 0 means no noise: nothing is random then")
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


NOISE_HINT = ("draw ALL noise through gumbel_noise(x, generators) (no torch.rand/exponential_ of your own): ids = "
              "argmax(log_probs + gumbel_noise(log_probs, generators)), then confidence + choice_temperature * "
              "(1 - ratio) * gumbel_noise(confidence, generators)")


def calls(dims) -> str:
    return "calls for: " + (", ".join("the ids" if d == 3 else "the confidence" for d in dims) or "nothing")


class KnownNoise:
    """Stands in for gumbel_noise: fixed Gumbel noise by the rank of ``like`` (3 dims: ids, 2: confidence)."""

    def __init__(self):
        g = torch.Generator().manual_seed(123)
        gumbel = lambda *shape: -torch.log(-torch.log(torch.rand(shape, generator=g).clamp(1e-20, 1 - 1e-7)))
        self.ids, self.conf = gumbel(1, N, K + 1), gumbel(1, N)
        self.calls = []

    def __call__(self, like, generators=None):
        self.calls.append(like.dim())
        base = self.ids[..., :like.shape[-1]] if like.dim() == 3 else self.conf
        return base.expand(like.shape).clone().to(like.device)


def _consistent(scores, mask, new_mask) -> bool:
    """new_mask keeps masked only tokens scoring no higher than every revealed one (ties within 1e-4)."""
    revealed, kept = scores[mask & ~new_mask], scores[new_mask & mask]
    return not len(revealed) or not len(kept) or bool(revealed.min() >= kept.max() - 1e-4)


@points(3, "MaskGit.inpainting_step")
def test_step_confidence_with_gumbel_noise(impl, model, monkeypatch):
    """With known gumbel_noise (ids, then confidence): sampled ids and log p(id) + T (1 - ratio) g ranked exactly"""
    noise = KnownNoise()
    for name in ("models.VQGAN_Transformer", "models.sampling"):
        monkeypatch.setattr(impl.module(name), "gumbel_noise", noise)
    z, mask = _tiny.tokens_and_mask()
    t = 4.5
    # Sharper logits (log p of the ids spread over a few nats, as in a trained model), so that the known mistakes
    # rank tokens differently from the rule and from each other.
    model.transformer.register_forward_hook(lambda module, args, out: out * 5)
    ids_hyp = {"ids taken by argmax, not sampled (sample=True)": lambda lp, g, r: lp,
               "Gumbel noise added to probabilities, not log-probabilities": lambda lp, g, r: lp.exp() + g,
               "the choice temperature applied to the id sampling": lambda lp, g, r: lp + t * (1 - r) * g,
               "the choice temperature (unannealed) applied to the id sampling": lambda lp, g, r: lp + t * g}
    conf_hyp = {"no annealing (choice_temperature * g, not * (1 - ratio))": lambda c, p, m, g, r: c + t * g,
                "annealing the wrong way (* ratio instead of * (1 - ratio))": lambda c, p, m, g, r: c + t * r * g,
                "annealing with gamma(ratio) instead of (1 - ratio)":
                    lambda c, p, m, g, r: c + t * _standins.gamma_value("cosine", r) * g,
                "probability instead of log-probability": lambda c, p, m, g, r: c.exp() + t * (1 - r) * g,
                "the maximum log-probability instead of the sampled id's": lambda c, p, m, g, r: m + t * (1 - r) * g,
                "noise subtracted instead of added": lambda c, p, m, g, r: c - t * (1 - r) * g,
                "no noise on the confidence": lambda c, p, m, g, r: c}
    fits, ids_fit = dict.fromkeys(conf_hyp, True), dict.fromkeys(ids_hyp, True)
    failed = ids_failed = None
    for ratio in (0.25, 0.75):
        for b in range(len(z)):
            zb, mb = z[b:b + 1], mask[b:b + 1]
            noise.calls.clear()
            z_pred, new_mask = step(model, zb, mb, mb.sum(1), ratio, choice_temperature=t, sample=True,
                                    generators=gens(1, b))
            with torch.no_grad():
                lp = model.transformer(zb.masked_fill(mb, K)).double()[..., :K].log_softmax(-1)
            expect(3 in noise.calls, f"gumbel_noise calls (ratio {ratio}, sample=True)",
                   "one for the ids (B, N, K), then one for the confidence (B, N)", calls(noise.calls), NOISE_HINT)
            g_ids, g_conf = noise.ids[..., :K].double(), noise.conf.double()
            scored = lp + g_ids
            top2 = scored.topk(2, dim=-1).values
            clear = mb & (top2[..., 0] - top2[..., 1] > 1e-4)  # positions where float32 cannot flip the argmax
            want = scored.argmax(-1)
            for k, f in ids_hyp.items():  # named only if it explains every case
                ids_fit[k] = ids_fit[k] and bool((f(lp, g_ids, ratio).argmax(-1)[clear] == z_pred[clear])
                                                 .double().mean() > 0.98)
            if not torch.equal(z_pred[clear], want[clear]):
                ids_failed = ids_failed or ratio
                continue
            expect(2 in noise.calls, f"gumbel_noise calls (ratio {ratio}, sample=True)",
                   "one for the ids (B, N, K), then one for the confidence (B, N)", calls(noise.calls), NOISE_HINT)
            c = lp.gather(-1, want[..., None]).squeeze(-1)
            mx = lp.max(-1).values
            if not _consistent(c + t * (1 - ratio) * g_conf, mb, new_mask):
                failed = failed or (ratio, b)
            for k, f in conf_hyp.items():  # a known mistake is named only if it explains every case
                fits[k] = fits[k] and _consistent(f(c, None, mx, g_conf, ratio), mb, new_mask)
    if ids_failed:
        named = [k for k, ok in ids_fit.items() if ok]
        expect(False, f"z_pred with sample=True and known noise (ratio {ids_failed})",
               "argmax(log_probs + gumbel_noise)", " or ".join(named) if named else "other ids",
               "ids = (log_probs + gumbel_noise(log_probs, generators)).argmax(-1); the choice temperature "
               "only scales the confidence noise")
    if failed:
        named = [k for k, ok in fits.items() if ok]
        expect(False, f"tokens kept masked with known noise (ratio {failed[0]}, image {failed[1]})",
               "the lowest log p(sampled id) + choice_temperature * (1 - ratio) * g",
               " or ".join(named) if named else "other tokens",
               "confidence = log_probs.gather(-1, ids) + choice_temperature * (1 - ratio) * gumbel_noise(...)")


BATCH_HINT = ("handle every image of the batch: counts per image (mask.sum(dim=1), num_unknown_start[b]), not "
              "mask.sum().item(); all logits, not logits[0]; one generator per image (gumbel_noise(x, generators) on "
              "the whole batch); mask_len[:, None] when ranking")


@points(1, "MaskGit.inpainting_step")
def test_step_batched_equals_per_image(impl, model, monkeypatch):
    """A batch gives each image what it gets alone (per-image counts, logits and generators)"""
    z, mask = _tiny.tokens_and_mask()
    n0 = mask.sum(1)
    real, without = impl.module("models.sampling").gumbel_noise, []

    def spy(like, generators=None):
        without.append(generators is None)
        return real(like, generators)
    for name in ("models.VQGAN_Transformer", "models.sampling"):
        monkeypatch.setattr(impl.module(name), "gumbel_noise", spy)
    alone = per_image(model, z, mask, n0, 0.5, seed=5)
    if not all(torch.equal(x, y) for x, y in zip(alone, per_image(model, z, mask, n0, 0.5, seed=5), strict=True)):
        expect(not any(without), "gumbel_noise calls", "with the step's generators", "generators=None (the "
               "global RNG): two runs with the same generators differ", "gumbel_noise(x, generators)")
        return  # random numbers not drawn through gumbel_noise: test_step_confidence_with_gumbel_noise says so
    try:
        batched = step(model, z, mask, n0, 0.5, generators=gens(3, 5))
    except AssertionError:
        raise
    except Exception as exc:  # a step written for one image often fails on a batch: say so, with the hint
        expect(False, "inpainting_step on a batch of 3 vs alone", "each image what it gets alone",
               f"{type(exc).__name__}: {str(exc).strip()[:120]}", BATCH_HINT)
    counts = batched[1].sum(1).tolist()
    summed = [max(1, min(u - 1, math.floor(_x(int(n0.sum()), 0.5)))) for u in mask.sum(1).tolist()]
    why = (": one count for the whole batch" if len(set(counts)) == 1 else
           ": as if N0 were summed over the batch" if counts == summed else "")
    for b in range(len(z)):
        same = torch.equal(alone[0][b], batched[0][b]) and torch.equal(alone[1][b], batched[1][b])
        expect(same, f"image {b} in a batch of 3 vs alone", "the same z_pred and new_mask",
               f"different (kept masked in the batch: {counts}, alone: {alone[1].sum(1).tolist()}){why}",
               BATCH_HINT)
