"""Hidden forms of the TODO3 checks (MaskGit.inpainting_step, iterative_decoding, inpainting.run).

As the public checks: the grader's attention and cosine schedule stand in for TODO1/TODO2, every rule of the step
is judged one image at a time (batching is its own check), the loop checks record the calls of a stand-in step.
Here the transformer's weights, the token ids, masks, counts, ratios, temperatures, T, sweet spots, the known
noise and the test images are drawn afresh from each submission's seed. Where the contract leaves a choice
(sampled ids, ties in the confidence, the rounding of a count the count check does not judge), the judge checks
the property the public check checks; elsewhere it compares with the reference on the same inputs.
"""
from __future__ import annotations

import math

import torch

from maskgit_kit.autograder.judging import Bad
from maskgit_kit.autograder.judging import judged as _judged
from maskgit_kit.autograder.trusted import Probe

TODO = "TODO3"
KNOWN, NEVER_MASK, INPUTS, REVEALS = ("test_step_keeps_known_tokens", "test_step_never_predicts_mask_token",
                                      "test_step_leaves_inputs_alone", "test_step_reveals_only_masked")
COUNT, ROUNDS, FROM_N0 = ("test_step_keeps_scheduled_count_masked", "test_step_rounds_down",
                          "test_step_counts_from_original_unknown")
ZERO_T, GUMBEL, BATCHED = ("test_step_zero_temperature_reveals_most_confident",
                           "test_step_confidence_with_gumbel_noise", "test_step_batched_equals_per_image")
LOOP, FILLS, SWEET, KEEPS = ("test_loop_schedule_and_arguments", "test_loop_fills_every_token",
                             "test_loop_sweet_spot_stops_early", "test_loop_keeps_each_steps_predictions")
RUN = "test_run_saves_images_in_test_order"
STEP, DECODE, INPAINT_RUN = "inpainting_step", "iterative_decoding", "inpainting_run"


# --- drawing inputs ----------------------------------------------------------------------------------------------
def _int(g, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _uniform(g, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=g))


def _sizes(reference) -> tuple[int, int]:
    tiny = reference.grader.module("_tiny")
    return tiny.K, tiny.N


def _state(reference, g) -> dict:
    """Fresh transformer weights for the tiny model (its own init from a drawn seed, random per-position code
    biases); the mask token's logit pushed down, as the public checks' model has it."""
    tiny = reference.grader.module("_tiny")
    K, N = tiny.K, tiny.N
    seed = _int(g, 0, 2**31 - 2)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        t = reference.impl.module("models.Transformer.transformer").BidirectionalTransformer(
            tiny.config(reference.impl).transformer)
    state = {k: v.detach().clone() for k, v in t.state_dict().items()}
    state["bias"][:, :K] += 0.5 * torch.randn(N, K, generator=g)
    state["bias"][:, K] = -30.0
    return state


def _image(reference, g, unknown: int):
    """Random ids (1, N) in [0, K) and a mask (1, N) with ``unknown`` random positions masked."""
    K, N = _sizes(reference)
    z = torch.randint(0, K, (1, N), generator=g)
    mask = torch.zeros(1, N, dtype=torch.bool)
    mask[0, torch.randperm(N, generator=g)[:unknown]] = True
    return z, mask


def _ratio(g, lo: float = 0.0, hi: float = 1.0) -> float:
    """(t + 1) / T for a random T, strictly inside (0, 1) and within [lo, hi] (tried until it is)."""
    for _ in range(100):
        total = _int(g, 4, 16)
        r = _int(g, 1, total - 1) / total
        if lo <= r <= hi:
            return r
    return (lo + hi) / 2


def _case(z, mask, ratio, n0=None, temperature=4.5, sample=True, gens=None, **extra) -> dict:
    n0 = mask.sum(1) if n0 is None else torch.tensor([int(n0)])
    return {"z": z, "mask": mask, "n0": n0.long(), "ratio": float(ratio), "temperature": float(temperature),
            "sample": sample, "gens": gens, **extra}


def _seed(g) -> int:
    return _int(g, 0, 2**31 - 2)


def _images(reference, g, count: int, lo: float = 0.1, hi: float = 0.9):
    _, N = _sizes(reference)
    return [_image(reference, g, max(1, int(_uniform(g, lo, hi) * N))) for _ in range(count)]


# --- judging helpers ---------------------------------------------------------------------------------------------
def _cases(ctx) -> list:
    got = ctx.observed.get("cases")
    if not isinstance(got, list) or len(got) != len(ctx.inputs["cases"]):
        raise Bad(ctx.observed.get("error") or "no result for every case")
    return got


def _desc(x) -> str:
    return f"{tuple(x.shape)} {str(x.dtype).replace('torch.', '')}" if isinstance(x, torch.Tensor) else \
        type(x).__name__


def _pair(got, shape) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_pred, new_mask) of one call, checked as the public checks' ``step`` checks them."""
    if not isinstance(got, dict):
        raise Bad("no result")
    if "error" in got:
        raise Bad(str(got["error"])[:300])
    z_pred, new_mask = got.get("z_pred"), got.get("new_mask")
    if not isinstance(z_pred, torch.Tensor) or z_pred.dtype != torch.int64 or tuple(z_pred.shape) != tuple(shape):
        raise Bad(f"z_pred is {_desc(z_pred)}, not int64 {tuple(shape)}")
    if not isinstance(new_mask, torch.Tensor) or new_mask.dtype != torch.bool or \
            tuple(new_mask.shape) != tuple(shape):
        raise Bad(f"new_mask is {_desc(new_mask)}, not bool {tuple(shape)}")
    return z_pred, new_mask


def _gamma(ctx, r: float) -> float:
    return ctx.grader.module("_standins").gamma_value("cosine", r)


def _floor_set(x: float) -> set[int]:
    return {math.floor(x + e) for e in (-1e-4, 1e-4)}


def _band(x: float) -> set[int]:
    return _floor_set(x) | {math.ceil(x + e) for e in (-1e-4, 1e-4)}


def _clamp(counts: set[int], unknown: int, ratio: float) -> set[int]:
    if unknown == 0 or ratio >= 1:
        return {0}
    return {max(1, min(unknown - 1, c)) for c in counts}


def _what(case) -> str:
    return (f"ratio {case['ratio']:.4g}, N0 = {int(case['n0'].sum())}, {int(case['mask'].sum())} unknown, "
            f"temperature {case['temperature']:.3g}, sample={case['sample']}")


# --- the step's rules, one image at a time ---------------------------------------------------------------------
def known_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    K, _ = _sizes(reference)
    cases = []
    for z, mask in _images(reference, g, 3):
        r = _ratio(g)
        cases.append(_case(z, mask, r, temperature=_uniform(g, 1, 6), gens=[_seed(g)], global_seed=_seed(g)))
        garbage = torch.where(mask, torch.randint(0, K, z.shape, generator=g), z)
        cases.append(_case(z, mask, r, temperature=0.0, sample=False, global_seed=_seed(g), again_seed=_seed(g),
                           garbage=garbage))
    return {"state": _state(reference, g), "cases": cases}


def _known(ctx) -> None:
    K = ctx.grader.module("_tiny").K
    for case, got in zip(ctx.inputs["cases"], _cases(ctx), strict=True):
        z, mask = case["z"], case["mask"]
        z_pred, _ = _pair(got, z.shape)
        changed = int((z_pred[~mask] != z[~mask]).sum())
        if changed:
            raise Bad(f"{changed} known tokens of z_pred replaced ({_what(case)})")
        if int(z_pred.min()) < 0 or int(z_pred.max()) >= K:
            raise Bad(f"z_pred ids in [{int(z_pred.min())}, {int(z_pred.max())}], not real codes in [0, {K})")
        if case.get("garbage") is None:
            continue
        again, _ = _pair(got.get("again"), z.shape)
        if not torch.equal(again, z_pred):
            continue  # random with sample=False: the zero-temperature check's to charge
        other, _ = _pair(got.get("garbage"), z.shape)
        if not torch.equal(other, z_pred):
            raise Bad(f"z_pred changes with the ids under the mask ({_what(case)}): the transformer must see the "
                      "mask id there")


def mask_token_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for z, mask in _images(reference, g, 2):
        bias, r = _uniform(g, 20, 40), _ratio(g)
        cases += [_case(z, mask, r, sample=False, mask_bias=bias, global_seed=_seed(g)),
                  _case(z, mask, r, temperature=_uniform(g, 1, 6), gens=[_seed(g)], mask_bias=bias)]
    return {"state": _state(reference, g), "cases": cases}


def _mask_token(ctx) -> None:
    K = ctx.grader.module("_tiny").K
    for case, got in zip(ctx.inputs["cases"], _cases(ctx), strict=True):
        z_pred, _ = _pair(got, case["z"].shape)
        bad = int((z_pred == K).sum())
        if bad:
            raise Bad(f"the mask id {K} predicted at {bad} positions when its logit is the largest ({_what(case)})")


def inputs_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for z, mask in _images(reference, g, 3):
        r = _ratio(g)
        cases += [_case(z, mask, r, temperature=_uniform(g, 1, 6), gens=[_seed(g)]),
                  _case(z, mask, r, temperature=_uniform(g, 1, 6), sample=False, global_seed=_seed(g))]
    return {"state": _state(reference, g), "cases": cases}


def _inputs(ctx) -> None:
    for case, got in zip(ctx.inputs["cases"], _cases(ctx), strict=True):
        if not isinstance(got, dict) or "error" in got:
            raise Bad(str(got.get("error") if isinstance(got, dict) else "no result")[:300])
        edited = got.get("edited")
        if not isinstance(edited, list) or edited:
            raise Bad(f"inputs edited in place: {edited} ({_what(case)})")


def reveals_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    cases = [_case(z, mask, _ratio(g, hi=lo_hi), temperature=_uniform(g, 1, 6), gens=[_seed(g)])
             for z, mask in _images(reference, g, 3) for lo_hi in (0.5, 0.95)]
    return {"state": _state(reference, g), "cases": cases}


def _reveals(ctx) -> None:
    for case, got in zip(ctx.inputs["cases"], _cases(ctx), strict=True):
        _, new_mask = _pair(got, case["z"].shape)
        bad = int((new_mask & ~case["mask"]).sum())
        if bad:
            raise Bad(f"{bad} known tokens masked again ({_what(case)})")


def _count_case(reference, g, n0: int, unknown: int, ratio: float) -> dict:
    z, mask = _image(reference, g, unknown)
    return _case(z, mask, ratio, n0=n0, temperature=_uniform(g, 0.5, 6), gens=[_seed(g)])


def count_inputs(seed: int, reference) -> dict:
    """Counts as the public check's kinds: N0 = unknown over the range, small N0, the [1, unknown - 1] clamp
    binding at both ends, none unknown, the last step; where unknown < N0, only cases that clamp alike for N0 and
    for the current count (that difference is the N0 check's)."""
    g = torch.Generator().manual_seed(seed)
    _, N = _sizes(reference)
    gamma = reference.grader.module("_standins").gamma_value
    triples = [(n, n, _ratio(g)) for n in (_int(g, 20, 80), _int(g, 81, 160), _int(g, 161, N), _int(g, 40, N))]
    triples += [(n, n, _uniform(g, 0.02, 0.98)) for n in (1, 2, 3, _int(g, 2, 3))]
    triples += [(n, n, _uniform(g, 0.8, 0.98)) for n in (_int(g, 2, 4), _int(g, 3, 5))]  # scheduled 0 -> 1
    for _ in range(2):  # scheduled >= unknown (N0 > unknown), clamped to unknown - 1 whichever count is used
        for _ in range(100):
            n0, u, r = _int(g, 10, 80), _int(g, 2, 8), _ratio(g, hi=0.3)
            if _clamp(_band(n0 * gamma("cosine", r)), u, r) == _clamp(_band(u * gamma("cosine", r)), u, r):
                triples.append((n0, u, r))
                break
    last, small = _int(g, 1, N), _int(g, 1, 4)
    triples += [(0, 0, _ratio(g)), (last, last, 1.0), (small, small, 1.0)]
    return {"state": _state(reference, g), "cases": [_count_case(reference, g, *t) for t in triples]}


def _count(ctx) -> None:
    for case, got in zip(ctx.inputs["cases"], _cases(ctx), strict=True):
        _, new_mask = _pair(got, case["z"].shape)
        n0, unknown, r = int(case["n0"].sum()), int(case["mask"].sum()), case["ratio"]
        want, count = _clamp(_band(n0 * _gamma(ctx, r)), unknown, r), int(new_mask.sum())
        if count not in want:
            raise Bad(f"{count} tokens left masked, expected {' or '.join(map(str, sorted(want)))} "
                      f"({_what(case)})")


def rounds_inputs(seed: int, reference) -> dict:
    """N0 = unknown, the clamp not binding, N0 * gamma with a fraction below and above one half."""
    g = torch.Generator().manual_seed(seed)
    _, N = _sizes(reference)
    gamma = reference.grader.module("_standins").gamma_value
    triples = []
    for lo, hi in ((0.1, 0.45), (0.55, 0.9), (0.1, 0.45), (0.55, 0.9)):
        for _ in range(200):
            n, r = _int(g, 40, N), _ratio(g, 0.1, 0.9)
            x = n * gamma("cosine", r)
            if lo <= x - math.floor(x) <= hi and 1 <= math.floor(x) and math.ceil(x) <= n - 1:
                triples.append((n, n, r))
                break
    return {"state": _state(reference, g), "cases": [_count_case(reference, g, *t) for t in triples]}


def _rounds(ctx) -> None:
    for case, got in zip(ctx.inputs["cases"], _cases(ctx), strict=True):
        _, new_mask = _pair(got, case["z"].shape)
        n0, r = int(case["n0"].sum()), case["ratio"]
        x, count = n0 * _gamma(ctx, r), int(new_mask.sum())
        if count not in _floor_set(x):
            raise Bad(f"{count} tokens left masked, not floor(N0 * gamma) = floor({x:.3f}) ({_what(case)})")


def n0_inputs(seed: int, reference) -> dict:
    """unknown < N0, the bands of N0 * gamma and of unknown * gamma disjoint, the clamp not binding."""
    g = torch.Generator().manual_seed(seed)
    _, N = _sizes(reference)
    gamma = reference.grader.module("_standins").gamma_value
    triples = []
    for _ in range(3):
        for _ in range(200):
            n0 = _int(g, 80, N)
            u, r = _int(g, int(0.4 * n0), int(0.75 * n0)), _ratio(g, 0.5, 0.9)
            x, y = n0 * gamma("cosine", r), u * gamma("cosine", r)
            if not (_band(x) & (_band(y) | {round(y)})) and 1 <= math.floor(x) and math.ceil(x) <= u - 1:
                triples.append((n0, u, r))
                break
    return {"state": _state(reference, g), "cases": [_count_case(reference, g, *t) for t in triples]}


def _n0(ctx) -> None:
    for case, got in zip(ctx.inputs["cases"], _cases(ctx), strict=True):
        _, new_mask = _pair(got, case["z"].shape)
        n0, r = int(case["n0"].sum()), case["ratio"]
        want, count = _band(n0 * _gamma(ctx, r)), int(new_mask.sum())
        if count not in want:
            raise Bad(f"{count} tokens left masked, expected {' or '.join(map(str, sorted(want)))} from N0 "
                      f"({_what(case)})")


def zero_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    cases = [_case(z, mask, _ratio(g), temperature=0.0, sample=False, global_seed=_seed(g), again_seed=_seed(g),
                   log_probs=True) for z, mask in _images(reference, g, 3)]
    return {"state": _state(reference, g), "cases": cases}


def _consistent(scores, mask, new_mask, tol: float) -> bool:
    """new_mask keeps masked only tokens scoring no higher than every revealed one (ties within ``tol``)."""
    revealed, kept = scores[mask & ~new_mask], scores[new_mask & mask]
    return not len(revealed) or not len(kept) or bool(revealed.min() >= kept.max() - tol)


def _zero(ctx) -> None:
    for case, got, want in zip(ctx.inputs["cases"], _cases(ctx), ctx.expected["cases"], strict=True):
        z, mask = case["z"], case["mask"]
        z_pred, new_mask = _pair(got, z.shape)
        again = _pair(got.get("again"), z.shape)
        if not (torch.equal(again[0], z_pred) and torch.equal(again[1], new_mask)):
            raise Bad(f"two calls with sample=False and choice_temperature 0 differ (other global seeds) "
                      f"({_what(case)})")
        lp = want["log_probs"][0]
        top2 = lp.topk(2, dim=-1).values
        clear = mask[0] & (top2[:, 0] - top2[:, 1] > 1e-4)
        best = lp.argmax(-1)
        if not torch.equal(z_pred[0][clear], best[clear]):
            raise Bad(f"z_pred at masked positions differs from the argmax ids ({_what(case)})")
        conf = lp.max(-1).values
        revealed, kept = mask[0] & ~new_mask[0], new_mask[0]
        if revealed.any() and kept.any() and conf[revealed].min() < conf[kept].max() - 1e-5:
            raise Bad(f"a token revealed with a lower confidence than one kept masked ({_what(case)})")


def gumbel_inputs(seed: int, reference) -> dict:
    """Known Gumbel noise per case (ids (N, K + 1), then confidence (N,)), sharper logits, other temperatures."""
    g = torch.Generator().manual_seed(seed)
    K, N = _sizes(reference)

    def gumbel(*shape):
        return -torch.log(-torch.log(torch.rand(shape, generator=g).clamp(1e-20, 1 - 1e-7)))
    cases = []
    for z, mask in _images(reference, g, 3, 0.3, 0.8):
        for lo, hi in ((0.15, 0.4), (0.6, 0.85)):
            cases.append(_case(z, mask, _ratio(g, lo, hi), temperature=_uniform(g, 2.5, 6), gens=[_seed(g)],
                               noise={"ids": gumbel(N, K + 1), "conf": gumbel(N)}, scale=_uniform(g, 3, 6),
                               log_probs=True))
    return {"state": _state(reference, g), "cases": cases}


def _gumbel(ctx) -> None:
    K = ctx.grader.module("_tiny").K
    for case, got, want in zip(ctx.inputs["cases"], _cases(ctx), ctx.expected["cases"], strict=True):
        z, mask = case["z"], case["mask"]
        z_pred, new_mask = _pair(got, z.shape)
        dims = [c[0] for c in got.get("calls", []) if isinstance(c, (list, tuple)) and c]
        if 3 not in dims:
            raise Bad(f"no gumbel_noise call for the ids (B, N, K) with sample=True (calls: {dims}) ({_what(case)})")
        lp = want["log_probs"][0]
        scored = lp + case["noise"]["ids"][:, :K].double()
        top2 = scored.topk(2, dim=-1).values
        clear = mask[0] & (top2[:, 0] - top2[:, 1] > 1e-4)
        ids = scored.argmax(-1)
        if not torch.equal(z_pred[0][clear], ids[clear]):
            raise Bad(f"sampled ids are not argmax(log_probs + the known noise) ({_what(case)})")
        if 2 not in dims:
            raise Bad(f"no gumbel_noise call for the confidence (B, N) (calls: {dims}) ({_what(case)})")
        c = lp.gather(-1, ids[:, None]).squeeze(-1)
        t, r = case["temperature"], case["ratio"]
        if not _consistent(c + t * (1 - r) * case["noise"]["conf"].double(), mask[0], new_mask[0], 1e-4):
            raise Bad(f"tokens kept masked are not the lowest log p(id) + T (1 - ratio) g ({_what(case)})")


def batched_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    batch = _int(g, 2, 4)
    images = _images(reference, g, batch, 0.15, 0.85)
    z, mask = torch.cat([i[0] for i in images]), torch.cat([i[1] for i in images])
    case = _case(z, mask, _ratio(g, 0.1, 0.9), temperature=_uniform(g, 1, 6),
                 gens=[_seed(g) for _ in range(batch)], batch=True, global_seed=_seed(g))
    return {"state": _state(reference, g), "cases": [case]}


def _batched(ctx) -> None:
    case, got = ctx.inputs["cases"][0], _cases(ctx)[0]
    if not isinstance(got, dict):
        raise Bad("no result")
    z = case["z"]
    alone, again = _pair(got.get("alone"), z.shape), _pair(got.get("again"), z.shape)
    if not all(torch.equal(a, b) for a, b in zip(alone, again, strict=True)):
        calls = [c for run in ("alone", "again") for c in got[run].get("calls", [])]
        if any(isinstance(c, (list, tuple)) and len(c) > 1 and c[1] is True for c in calls):
            raise Bad("gumbel_noise called with generators=None: two runs with the same generators differ")
        return  # random numbers not drawn through gumbel_noise: the gumbel-noise check's to charge
    batched = _pair(got.get("batched"), z.shape)
    for b in range(len(z)):
        if not (torch.equal(alone[0][b], batched[0][b]) and torch.equal(alone[1][b], batched[1][b])):
            raise Bad(f"image {b} in a batch of {len(z)} differs from the image alone (kept masked in the batch "
                      f"{batched[1].sum(1).tolist()}, alone {alone[1].sum(1).tolist()})")


# --- the loop ----------------------------------------------------------------------------------------------------
def _loop_case(reference, g, batch: int, total: int, sweet=None, recorder=True, **extra) -> dict:
    images = _images(reference, g, batch, 0.1, 0.9)
    z, mask = torch.cat([i[0] for i in images]), torch.cat([i[1] for i in images])
    return {"z": z, "mask": mask, "total": total, "sweet_spot": sweet, "recorder": recorder,
            "temperature": extra.pop("temperature", 4.5), "global_seed": _seed(g), **extra}


def loop_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for sample in (False, True):
        batch = _int(g, 1, 3)
        cases.append(_loop_case(reference, g, batch, _int(g, 3, 9), gens=[_seed(g) for _ in range(batch)],
                                temperature=round(_uniform(g, 0.5, 6), 2), sample=sample))
    return {"state": None, "cases": cases}


def _recorded(ctx, case, got) -> tuple[list, list]:
    """The recorded calls, and what the recording stand-in returned for each (recomputed here from each call's
    recorded inputs)."""
    if not isinstance(got, dict):
        raise Bad("no result")
    if "error" in got:
        raise Bad(str(got["error"])[:300])
    calls = got.get("calls")
    if not isinstance(calls, list):
        raise Bad("no record of the step calls")
    rec = ctx.grader.module("test_todo3_step_loop").StepRecorder()
    for c in calls:
        if not isinstance(c.get("z"), torch.Tensor) or not isinstance(c.get("mask"), torch.Tensor) or \
                c["z"].shape != case["z"].shape or c["mask"].shape != case["mask"].shape or \
                c["mask"].dtype != torch.bool:
            raise Bad("a step got ids or a mask of another shape or type")
        rec(c["z"], c["mask"], c["n0"], float(c["ratio"]), c["temperature"])
    return calls, rec.returned


def _z_final(got, case) -> torch.Tensor:
    z_final = got.get("z_final")
    if not isinstance(z_final, torch.Tensor) or z_final.dtype != torch.int64 or z_final.shape != case["z"].shape:
        raise Bad(f"z_final is {_desc(z_final)}, not int64 {tuple(case['z'].shape)}")
    return z_final


def _history_equal(history, returned) -> bool:
    return isinstance(history, list) and len(history) == len(returned) and all(
        isinstance(h, (list, tuple)) and len(h) == 2 and all(isinstance(x, torch.Tensor) for x in h)
        and h[0].shape == r[0].shape and h[1].shape == r[1].shape and torch.equal(h[0], r[0])
        and torch.equal(h[1], r[1]) for h, r in zip(history, returned, strict=False))


def _loop(ctx) -> None:
    for case, got in zip(ctx.inputs["cases"], _cases(ctx), strict=True):
        calls, returned = _recorded(ctx, case, got)
        total, where = case["total"], f"(T = {case['total']}, B = {len(case['z'])})"
        ratios = [float(c["ratio"]) for c in calls]
        if len(ratios) != total or not all(math.isclose(r, (t + 1) / total) for t, r in enumerate(ratios)):
            raise Bad(f"ratios {[round(r, 3) for r in ratios]}, not (t + 1) / T {where}")
        n0 = case["mask"].sum(1)
        for t, c in enumerate(calls):
            got_n0 = c["n0"]
            if not isinstance(got_n0, torch.Tensor) or got_n0.numel() != n0.numel() or \
                    not torch.equal(got_n0.reshape(-1).long(), n0):
                raise Bad(f"num_unknown_start at step {t} is not the unknown count before step 0 {where}")
            prev_z, prev_mask = (case["z"], case["mask"]) if t == 0 else returned[t - 1]
            if not torch.equal(c["mask"], prev_mask):
                raise Bad(f"the mask passed at step {t} is not "
                          f"{'the input mask' if t == 0 else 'new_mask of the previous step'} {where}")
            known = ~c["mask"]
            if not torch.equal(c["z"][known], prev_z[known]):
                raise Bad(f"the ids passed at step {t} are not "
                          f"{'the input ids' if t == 0 else 'z_pred of the previous step'} {where}")
            if c["generators"] != "same" or c["temperature"] != case["temperature"] or \
                    c["sample"] is not case["sample"]:
                raise Bad(f"options at step {t}: generators {c['generators']}, choice_temperature "
                          f"{c['temperature']}, sample {c['sample']}; not those given {where}")
        if not _history_equal(got.get("history"), returned):
            raise Bad(f"history is not the (z_pred, new_mask) of each step, in order {where}")
        if not torch.equal(_z_final(got, case), returned[-1][0]):
            raise Bad(f"z_final is not z_pred of the last step {where}")


def sweet_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    total = _int(g, 5, 10)
    return {"state": None, "cases": [_loop_case(reference, g, _int(g, 1, 3), total, sweet=_int(g, 2, total - 1))]}


def _sweet(ctx) -> None:
    for case, got in zip(ctx.inputs["cases"], _cases(ctx), strict=True):
        calls, returned = _recorded(ctx, case, got)
        total, sweet = case["total"], case["sweet_spot"]
        ratios = [float(c["ratio"]) for c in calls]
        if len(ratios) != sweet or not all(math.isclose(r, (t + 1) / total) for t, r in enumerate(ratios)):
            raise Bad(f"ratios {[round(r, 4) for r in ratios]} with total_iter = {total}, sweet_spot = {sweet}: "
                      f"not {[round((t + 1) / total, 4) for t in range(sweet)]}")
        history = got.get("history")
        if not isinstance(history, list) or len(history) != sweet:
            raise Bad(f"history of {len(history) if isinstance(history, list) else 'no'} steps, not {sweet}")
        if not torch.equal(_z_final(got, case), returned[-1][0]):
            raise Bad(f"z_final is not z_pred of step {sweet} (T = {total})")


def keeps_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    total = _int(g, 6, 10)
    return {"state": None, "cases": [_loop_case(reference, g, _int(g, 1, 3), _int(g, 3, 8)),
                                     _loop_case(reference, g, _int(g, 1, 3), total, sweet=_int(g, 2, total - 2))]}


def _keeps(ctx) -> None:
    for case, got in zip(ctx.inputs["cases"], _cases(ctx), strict=True):
        calls, returned = _recorded(ctx, case, got)
        z_final = _z_final(got, case)
        for t, (c, (z_pred, new_mask)) in enumerate(zip(calls, returned, strict=True)):
            revealed = c["mask"] & ~new_mask
            wrong = int((z_final[revealed] != z_pred[revealed]).sum())
            if wrong:
                raise Bad(f"z_final differs from step {t}'s prediction at {wrong} of the {int(revealed.sum())} "
                          f"positions it revealed (T = {case['total']}, sweet_spot = {case['sweet_spot']})")


def fills_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    _, N = _sizes(reference)
    z, mask = _image(reference, g, int(_uniform(g, 0.3, 0.7) * N))
    case = {"z": z, "mask": mask, "total": _int(g, 4, 8), "sweet_spot": None, "recorder": False,
            "temperature": 4.5, "gens": [_seed(g)], "global_seed": _seed(g)}
    return {"state": _state(reference, g), "cases": [case]}


def _fills(ctx) -> None:
    K = ctx.grader.module("_tiny").K
    for case, got in zip(ctx.inputs["cases"], _cases(ctx), strict=True):
        if not isinstance(got, dict) or "error" in got:
            raise Bad(str(got.get("error") if isinstance(got, dict) else "no result")[:300])
        z, mask, total = case["z"], case["mask"], case["total"]
        z_final, history = _z_final(got, case), got.get("history")
        if not isinstance(history, list) or len(history) != total:
            raise Bad(f"{len(history) if isinstance(history, list) else 'no'} steps run with total_iter = {total}")
        pairs = [_pair({"z_pred": h[0], "new_mask": h[1]} if isinstance(h, (list, tuple)) and len(h) == 2
                       else None, z.shape) for h in history]
        left = int(pairs[-1][1].sum())
        if left:
            raise Bad(f"{left} tokens still masked after the last step (T = {total})")
        for t in range(1, total):
            if (pairs[t][1] & ~pairs[t - 1][1]).any():
                raise Bad(f"the mask at step {t} is not a subset of the previous step's")
        if not torch.equal(z_final[~mask], z[~mask]):
            raise Bad("known tokens changed in z_final")
        if int(z_final.min()) < 0 or int(z_final.max()) >= K:
            raise Bad(f"z_final ids in [{int(z_final.min())}, {int(z_final.max())}], not in [0, {K})")
        if not torch.equal(z_final, pairs[-1][0]):
            raise Bad("z_final is not z_pred of the last step")


# --- the script --------------------------------------------------------------------------------------------------
def run_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    n = _int(g, 3, 5)
    images = torch.randint(0, 256, (n, 64, 64, 3), generator=g, dtype=torch.uint8)
    masks = torch.full((n, 64, 64), 255, dtype=torch.uint8)
    for i in range(n):
        h, w = _int(g, 8, 24), _int(g, 8, 24)
        top, left = _int(g, 0, 64 - h), _int(g, 0, 64 - w)
        masks[i, top:top + h, left:left + w] = 0
    return {"images": images, "masks": masks, "batch_size": _int(g, 2, 3), "total_iter": _int(g, 1, 2)}


def _run(ctx) -> None:
    if ctx.observed.get("error"):
        raise Bad(str(ctx.observed["error"])[:300])
    n = len(ctx.inputs["images"])
    names, results = ctx.observed.get("names"), ctx.observed.get("results")
    if not isinstance(names, dict) or not isinstance(results, dict):
        raise Bad("no output files")
    for folder, pattern in (("test_results", "image_{:03d}.png"), ("mask_scheduling", "test_{}.png"),
                            ("imga", "test_{}.png")):
        want = sorted(pattern.format(i) for i in range(n))
        if names.get(folder) != want:
            raise Bad(f"files in {folder}/: {names.get(folder)}, not {want}")
    for i in range(n):
        res, src = results.get(f"image_{i:03d}.png"), ctx.inputs["images"][i]
        if not isinstance(res, torch.Tensor) or res.shape != src.shape:
            raise Bad(f"test_results/image_{i:03d}.png is {_desc(res)}, not a {tuple(src.shape)} image")
        known = ctx.inputs["masks"][i] == 255
        diff = int((res[known].long() - src[known].long()).abs().max())
        if diff > 1:
            raise Bad(f"known pixels of test_results/image_{i:03d}.png differ by {diff} from test image {i} "
                      "(with --composite): another image's?")


PROBES = [
    Probe("step_known_tokens_hidden", TODO, "known tokens kept, real codes predicted, ids under the mask ignored",
          (KNOWN,), _judged(KNOWN, _known), STEP, known_inputs),
    Probe("step_mask_token_hidden", TODO, "the mask token never predicted, even with the largest logit",
          (NEVER_MASK,), _judged(NEVER_MASK, _mask_token), STEP, mask_token_inputs),
    Probe("step_inputs_hidden", TODO, "the step's inputs left unedited", (INPUTS,), _judged(INPUTS, _inputs), STEP,
          inputs_inputs),
    Probe("step_reveals_hidden", TODO, "only masked tokens stay masked", (REVEALS,), _judged(REVEALS, _reveals),
          STEP, reveals_inputs),
    Probe("step_count_hidden", TODO, "the scheduled count left masked, clamped, on other N0 and ratios", (COUNT,),
          _judged(COUNT, _count), STEP, count_inputs),
    Probe("step_rounds_hidden", TODO, "the count rounded down, on other N0 and ratios", (ROUNDS,),
          _judged(ROUNDS, _rounds), STEP, rounds_inputs),
    Probe("step_n0_hidden", TODO, "the count from N0, not the current unknown count", (FROM_N0,),
          _judged(FROM_N0, _n0), STEP, n0_inputs),
    Probe("step_zero_temperature_hidden", TODO, "argmax ids and the most confident revealed at temperature 0",
          (ZERO_T,), _judged(ZERO_T, _zero), STEP, zero_inputs),
    Probe("step_gumbel_hidden", TODO, "sampled ids and the noisy confidence with other known noise and temperatures",
          (GUMBEL,), _judged(GUMBEL, _gumbel), STEP, gumbel_inputs),
    Probe("step_batched_hidden", TODO, "a batch gives each image what it gets alone (another batch size)",
          (BATCHED,), _judged(BATCHED, _batched), STEP, batched_inputs),
    Probe("loop_schedule_hidden", TODO, "the loop's ratios, N0, chaining and options, other T and options", (LOOP,),
          _judged(LOOP, _loop), DECODE, loop_inputs),
    Probe("loop_sweet_spot_hidden", TODO, "the sweet spot stops early, other T and sweet spot", (SWEET,),
          _judged(SWEET, _sweet), DECODE, sweet_inputs),
    Probe("loop_keeps_predictions_hidden", TODO, "z_final keeps each step's predictions", (KEEPS,),
          _judged(KEEPS, _keeps), DECODE, keeps_inputs),
    Probe("loop_fills_hidden", TODO, "every token filled after T steps with the submitted step", (FILLS,),
          _judged(FILLS, _fills), DECODE, fills_inputs),
    Probe("run_saves_in_order_hidden", TODO, "inpainting.py saves each test image under its own index", (RUN,),
          _judged(RUN, _run), INPAINT_RUN, run_inputs),
]
