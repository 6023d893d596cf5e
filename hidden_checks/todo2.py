"""Hidden forms of the TODO2 checks (gamma_func, encode_to_z, mask_tokens, forward; the training loops).

Fresh weights, tokens, batch sizes, ratios, learning rates, k and label smoothing per graded submission. Where the
contract fixes the answer (encode_to_z, forward, the losses) the student's result is compared with the
reference's or recomputed here from what the student's loop got; where it allows several (random masks, clipping,
the optimizer's groups) the property the public check judges is judged. Weights the child reports (after training,
at each optimizer step) are re-evaluated here with the reference model, never taken at the child's word.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from maskgit_kit.autograder.trusted import Probe

TODO = "TODO2"
K, N = 16, 256  # the tiny models' codebook and token count (grader/_tiny.py)
IGNORE = -100
VALUES, MONOTONE, UNKNOWN = "test_gamma_values", "test_gamma_monotone_and_in_range", "test_gamma_unknown_mode_raises"
ENCODE, FORWARD = "test_encode_to_z", "test_forward_logits_and_targets"
COUNTS, MASK_VALUES, GENERATOR = "test_mask_tokens_counts", "test_mask_tokens_values", "test_mask_tokens_uses_generator"
CONFIG, LOWERS = "test_configure_optimizers", "test_train_one_epoch_lowers_loss"
ACCUM, RETURNS = "test_train_one_epoch_accumulates_gradients", "test_train_one_epoch_returns_mean_loss"
EVAL_WEIGHTS, EVAL_RETURNS = "test_eval_one_epoch_changes_no_weights", "test_eval_one_epoch_returns_loss_and_accuracy"
MODES = ("cosine", "linear", "square")
UNKNOWN_NAMES = ("triangle", "zigzag", "sawtooth", "staircase", "hyperbolic", "wave")


# --- shared pieces -----------------------------------------------------------------------------------------------
def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _uniform(g, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _int(g, lo: int, hi: int) -> int:
    """An int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _weights(reference, seed: int) -> dict:
    """A fresh tiny MaskGit's transformer and VQGAN weights (the global RNG left as it was)."""
    with torch.random.fork_rng():
        m = reference.grader.module("_tiny").maskgit(reference.impl, seed % (1 << 31))
    return {"transformer": {k: v.clone() for k, v in m.transformer.state_dict().items()},
            "vqgan": {k: v.clone() for k, v in m.vqgan.state_dict().items()}}


def _tensor(x, shape=None, dtype=None) -> bool:
    return torch.is_tensor(x) and (shape is None or tuple(x.shape) == tuple(shape)) and \
        (dtype is None or x.dtype == dtype)


def _number(x):
    """A float from an int/float or a one-element tensor, else None."""
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x)
    if torch.is_tensor(x) and x.numel() == 1:
        return float(x)
    return None


def _error(ctx, what: str = "no result") -> str:
    obs = ctx.observed if isinstance(ctx.observed, dict) else {}
    return str(obs.get("error") or what)[:300]


def _judged(charged: dict, check: str, fn) -> None:
    """Run one check's judgment; a malformed observation (an exception here) charges that check only."""
    try:
        why = fn()
    except Exception as exc:  # noqa: BLE001 - the child's data may be anything
        why = f"unusable observation ({type(exc).__name__}: {exc})"[:300]
    if why:
        charged[check] = why


@contextmanager
def _reference_model(ctx, state: dict, dropout: bool = False):
    """The reference tiny MaskGit with the grader's stand-ins (attention, recording forward, fixed mask) and the
    given transformer weights, as the training checks build it."""
    import pytest
    checks = ctx.grader.module("test_todo2_training")
    with pytest.MonkeyPatch.context() as mp:
        model = checks.tiny_model(ctx.reference.impl, mp, dropout=dropout)
        model.transformer.load_state_dict(state)
        yield model


def _batches(tokens: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    return [tokens[i:i + batch_size] for i in range(0, tokens.shape[0], batch_size)]


def _targets(ctx, batch: torch.Tensor) -> torch.Tensor:
    mask = ctx.grader.module("_standins").fixed_mask(*batch.shape)
    return batch.masked_fill(~mask, IGNORE)


def _ce(logits, target, label_smoothing: float) -> float:
    return F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), ignore_index=IGNORE,
                           label_smoothing=label_smoothing).item()


def _calls_are_real(ctx, calls: list, batches: list, state: dict, train: bool) -> str:
    """The recorded calls are what the model gave on these batches: the targets of the fixed mask, and the first
    call's logits the reference model's at the starting weights (no optimizer step can come before it)."""
    for i, (call, batch) in enumerate(zip(calls, batches, strict=False)):
        if not _tensor(call.get("target")) or not torch.equal(call["target"], _targets(ctx, batch)):
            return f"model call {i + 1}: its target is not the one of batch {i + 1}"
        if not _tensor(call.get("logits"), (batch.shape[0], N, K + 1)):
            return f"model call {i + 1}: logits of shape {tuple(getattr(call.get('logits'), 'shape', ()))}"
    if calls and calls[0].get("train") is train:
        with _reference_model(ctx, state) as model, torch.no_grad():
            model.train(train)
            want = model(batches[0])[0]
        if (calls[0]["logits"].double() - want.double()).abs().max() > 1e-4:
            return "model call 1: logits that the model does not give on batch 1 at the starting weights"
    return ""


# --- gamma_func ----------------------------------------------------------------------------------------------------
def gamma_inputs(seed: int, reference) -> dict:
    g = _gen(seed)
    rs = sorted({0.0, 1.0, *torch.rand(150, generator=g, dtype=torch.float64).tolist()})
    name = UNKNOWN_NAMES[_int(g, 0, len(UNKNOWN_NAMES) - 1)] + f"_{_int(g, 10, 99)}"
    return {"modes": list(MODES), "rs": rs, "unknown": name}


def judge_gamma(ctx) -> dict[str, str]:
    standins = ctx.grader.module("_standins")
    values = ctx.observed.get("values")
    if not isinstance(values, dict):
        why = _error(ctx)
        return {VALUES: why, MONOTONE: why, UNKNOWN: why}
    charged, rs = {}, ctx.inputs["rs"]
    for mode in MODES:
        got = values.get(mode)
        if not isinstance(got, list) or len(got) != len(rs) or any(_number(v) is None for v in got):
            why = f"gamma_func({mode!r})(r): " + (got.get("error", "no value") if isinstance(got, dict) else
                                                 "not a float (or a 0-d tensor) for every float r")
            charged.setdefault(VALUES, why)
            charged.setdefault(MONOTONE, why)
            continue
        out = [_number(v) for v in got]
        wrong = [(r, v) for r, v in zip(rs, out, strict=True) if abs(v - standins.gamma_value(mode, r)) > 1e-5]
        if wrong:
            r, v = wrong[0]
            charged.setdefault(VALUES, f"gamma_func({mode!r})({r:.4f}) = {v:.4f}, not "
                                       f"{standins.gamma_value(mode, r):.4f}")
        rises = [rs[i] for i in range(len(rs) - 1) if out[i + 1] > out[i] + 1e-6]
        if rises or min(out) < -1e-6 or max(out) > 1 + 1e-6:
            charged.setdefault(MONOTONE, f"gamma_{mode} " + (f"rises after r = {rises[0]:.3f}" if rises else
                                                              f"leaves [0, 1]: [{min(out):.3g}, {max(out):.3g}]"))
    unknown = ctx.observed.get("unknown")
    name = ctx.inputs["unknown"]
    if not isinstance(unknown, dict) or not unknown.get("raised"):
        charged[UNKNOWN] = f"gamma_func({name!r})(0.5) raised nothing"
    elif unknown.get("stub") or not unknown.get("allowed"):
        charged[UNKNOWN] = f"gamma_func({name!r})(0.5) raised {unknown.get('raised')}" + \
            (" (the TODO stub)" if unknown.get("stub") else ", not ValueError or NotImplementedError")
    return charged


# --- encode_to_z -------------------------------------------------------------------------------------------------
def encode_inputs(seed: int, reference) -> dict:
    g = _gen(seed)
    return {"vqgan": _weights(reference, seed)["vqgan"], "x": torch.rand(_int(g, 1, 3), 3, 64, 64, generator=g) * 2 - 1}


def judge_encode(ctx) -> dict[str, str]:
    z_q, ids, want_q, want_ids = (ctx.observed.get("z_q"), ctx.observed.get("ids"), ctx.expected["z_q"],
                                  ctx.expected["ids"])
    b = ctx.inputs["x"].shape[0]
    if not _tensor(z_q) or not _tensor(ids):
        return {ENCODE: _error(ctx, "encode_to_z did not return two tensors")}
    if not _tensor(z_q, want_q.shape, torch.float32) or (z_q.double() - want_q.double()).abs().max() > 1e-5:
        return {ENCODE: f"z_q for a batch of {b} is not self.vqgan.encode(x)[0]"}
    if not _tensor(ids, (b, N), torch.int64):
        return {ENCODE: f"z_indices {tuple(ids.shape)} {ids.dtype}, not ({b}, {N}) int64"}
    if not torch.equal(ids, want_ids):
        return {ENCODE: f"z_indices for a batch of {b} differ from the VQGAN's ids in row-major order"}
    return {}


# --- mask_tokens -------------------------------------------------------------------------------------------------
def mask_inputs(seed: int, reference) -> dict:
    g = _gen(seed)
    b = _int(g, 3, 6)
    ratios = [0.0, 1.0, *[round(_uniform(g, 0.02, 0.98), 4) for _ in range(3)], torch.rand(b, generator=g)]
    seeds = torch.randperm(1000, generator=g)[:4].tolist()
    return {"z": torch.randint(0, K, (b, N), generator=g), "ratios": ratios,
            "z_many": torch.randint(0, K, (64, N), generator=g),
            "z_pos": torch.randint(0, K, (8, N), generator=g), "ratio_pos": round(_uniform(g, 0.25, 0.6), 4),
            "z_gen": torch.randint(0, K, (_int(g, 2, 5), N), generator=g),
            "gen_ratios": [round(_uniform(g, 0.2, 0.8), 4), None],
            "gen_seeds": [[seeds[0], seeds[2]], [seeds[0], seeds[3]], [seeds[1], seeds[2]]]}


def _mask_of(call, shape) -> torch.Tensor | None:
    if not isinstance(call, dict) or not _tensor(call.get("mask"), shape, torch.bool):
        return None
    return call["mask"]


def _judge_counts(ctx) -> str:
    checks = ctx.grader.module("test_todo2_model")
    calls, z = ctx.observed.get("counts"), ctx.inputs["z"]
    if not isinstance(calls, list) or len(calls) != len(ctx.inputs["ratios"]):
        return _error(ctx)
    for ratio, call in zip(ctx.inputs["ratios"], calls, strict=True):
        mask = _mask_of(call, z.shape)
        shown = f"tensor {[round(v, 3) for v in ratio.tolist()]}" if torch.is_tensor(ratio) else f"{ratio:g}"
        if mask is None:
            return f"mask_tokens(z, {shown}) on {z.shape[0]} images: " + \
                (call.get("error", "no (B, N) bool mask") if isinstance(call, dict) else "no result")
        rs = ratio.tolist() if torch.is_tensor(ratio) else [ratio] * z.shape[0]
        for i, r in enumerate(rs):
            want, got = checks._expected_count(r), int(mask[i].sum())
            if got not in want:
                return f"ratio {r:.4f}: {got} tokens masked, not {min(want)} of {N}"
    many = ctx.inputs["z_many"]
    mask = _mask_of(ctx.observed.get("none"), many.shape)
    if mask is None:
        return "mask_tokens(z, None): " + str((ctx.observed.get("none") or {}).get("error", "no (B, N) bool mask"))
    counts = mask.sum(1)
    if counts.unique().numel() <= 5 or counts.min() < 1:
        return f"ratio None on {many.shape[0]} images: {counts.unique().numel()} distinct counts, the smallest " \
               f"{int(counts.min())} (r ~ U(0, 1) per image)"
    return ""


def _judge_mask_values(ctx) -> str:
    call, z = ctx.observed.get("positions"), ctx.inputs["z_pos"]
    if not isinstance(call, dict):
        return _error(ctx)
    if not _tensor(call.get("z_after"), z.shape) or not torch.equal(call["z_after"], z):
        return "mask_tokens edited z_indices in place"
    mask, masked = _mask_of(call, z.shape), call.get("masked")
    if mask is None or not _tensor(masked, z.shape, torch.int64):
        return f"mask_tokens(z, {ctx.inputs['ratio_pos']}): " + call.get("error", "no (B, N) int64 ids and bool mask")
    if masked[mask].unique().tolist() != [K]:
        return f"masked positions hold {masked[mask].unique()[:5].tolist()}, not the mask id {K}"
    if not torch.equal(masked[~mask], z[~mask]):
        return "unmasked positions changed"
    if len({tuple(m.tolist()) for m in mask}) <= 1:
        return f"the same positions masked in all {z.shape[0]} images"
    # uniform positions: each one stays unmasked in all images with probability prod(1 - c_i / N); judged against
    # the image's own counts (a wrong count is the count check's)
    covered = int(mask.any(0).sum())
    expected = N * (1 - torch.prod(1 - mask.sum(1).double() / N).item())
    if covered < expected - 40:
        return f"{covered} of {N} positions masked in some image, {expected:.0f} expected (not uniform)"
    return ""


def _judge_generator(ctx) -> str:
    calls, z = ctx.observed.get("generator"), ctx.inputs["z_gen"]
    n = len(ctx.inputs["gen_seeds"])
    if not isinstance(calls, list) or len(calls) != n * len(ctx.inputs["gen_ratios"]):
        return _error(ctx)
    for j, ratio in enumerate(ctx.inputs["gen_ratios"]):
        masks = [_mask_of(c, z.shape) for c in calls[j * n:(j + 1) * n]]
        if any(m is None for m in masks):
            bad = next(c for c, m in zip(calls[j * n:(j + 1) * n], masks, strict=True) if m is None)
            return f"mask_tokens(z, {ratio}, generator=...): " + \
                (bad.get("error", "no (B, N) bool mask") if isinstance(bad, dict) else "no result")
        if not torch.equal(masks[0], masks[1]):
            return f"ratio {ratio}: the same generator seed under another global RNG state gave another mask"
        if torch.equal(masks[0], masks[2]):
            return f"ratio {ratio}: another generator seed gave the same mask"
    return ""


def judge_mask(ctx) -> dict[str, str]:
    charged = {}
    _judged(charged, COUNTS, lambda: _judge_counts(ctx))
    _judged(charged, MASK_VALUES, lambda: _judge_mask_values(ctx))
    _judged(charged, GENERATOR, lambda: _judge_generator(ctx))
    return charged


# --- forward -------------------------------------------------------------------------------------------------------
def forward_inputs(seed: int, reference) -> dict:
    g = _gen(seed)
    b = _int(g, 1, 3)
    mask = torch.rand(b, N, generator=g) < torch.rand(b, 1, generator=g) * 0.5 + 0.2
    mask[:, 0], mask[:, 1] = True, False
    return {"transformer": _weights(reference, seed)["transformer"], "z": torch.randint(0, K, (b, N), generator=g),
            "mask": mask, "ratio": round(_uniform(g, 0.05, 0.95), 4)}


def judge_forward(ctx) -> dict[str, str]:
    obs, z, mask, ratio = ctx.observed, ctx.inputs["z"], ctx.inputs["mask"], ctx.inputs["ratio"]
    b = z.shape[0]
    calls = obs.get("calls")
    if not isinstance(calls, list) or not calls or _number(calls[-1]) is None or \
            abs(_number(calls[-1]) - ratio) > 1e-6:
        return {FORWARD: f"forward(z, ratio={ratio}) called self.mask_tokens with {str(calls)[:80]} "
                         f"({_error(ctx, 'no error')})"}
    seen = obs.get("seen")
    if not isinstance(seen, list) or len(seen) != 1 or not _tensor(seen[0], z.shape) or \
            not torch.equal(seen[0], torch.where(mask, K, z)):
        return {FORWARD: "the transformer did not get the masked ids from mask_tokens (once)"}
    logits, target = obs.get("logits"), obs.get("target")
    if not _tensor(logits, (b, N, K + 1)):
        return {FORWARD: _error(ctx, f"logits {tuple(getattr(logits, 'shape', ()))}, not ({b}, {N}, {K + 1})")}
    if (logits.double() - ctx.expected["logits"].double()).abs().max() >= 1e-5:
        return {FORWARD: "logits are not the transformer's output on the masked ids"}
    ignore = obs.get("ignore") if isinstance(obs.get("ignore"), int) else IGNORE
    if not _tensor(target, (b, N), torch.int64):
        return {FORWARD: f"target {tuple(getattr(target, 'shape', ()))}, not ({b}, {N}) int64"}
    if not torch.equal(target[mask], z[mask]):
        return {FORWARD: "target at the masked positions is not the original ids"}
    if not bool((target[~mask] == ignore).all()):
        return {FORWARD: f"target at the unmasked positions is not IGNORE_INDEX ({ignore})"}
    return {}


# --- configure_optimizers ------------------------------------------------------------------------------------------
def configure_inputs(seed: int, reference) -> dict:
    g = _gen(seed)
    return {"transformer": _weights(reference, seed)["transformer"], "lr": 10 ** _uniform(g, -4.5, -1.5),
            "k": _int(g, 1, 4), "epochs": _int(g, 1, 5), "steps": _int(g, 3, 40)}


def judge_configure(ctx) -> dict[str, str]:
    obs, lr = ctx.observed, ctx.inputs["lr"]
    if obs.get("optimizer") is not True or not isinstance(obs.get("groups"), list):
        return {CONFIG: _error(ctx, f"not a torch.optim.Optimizer ({obs.get('type')})")}
    got = [n for group in obs["groups"] for n in (group if isinstance(group, list) else [None])]
    wanted = [n for n in ctx.expected["all"] if n.startswith("transformer:")]
    vqgan = [n for n in got if isinstance(n, str) and n.startswith("vqgan:")]
    if vqgan:
        return {CONFIG: f"{len(vqgan)} of the VQGAN's tensors in the optimizer"}
    missing = [n[len("transformer:"):] for n in wanted if n not in got]
    if missing:
        return {CONFIG: f"transformer parameters missing from the optimizer: {', '.join(missing[:5])}"}
    if len(got) != len(set(got)) or not set(got) <= set(wanted):
        return {CONFIG: f"{len(got)} entries for {len(set(got))} tensors (each transformer parameter once)"}
    lrs = obs.get("lrs")
    if not isinstance(lrs, list) or not lrs or any(_number(x) is None or not math.isclose(_number(x), lr)
                                                   for x in lrs):
        return {CONFIG: f"group learning rates {str(lrs)[:80]}, not self.learning_rate ({lr:.3g})"}
    if obs.get("scheduler") is not True or obs.get("bound") is not True:
        return {CONFIG: "no torch.optim.lr_scheduler bound to the returned optimizer"}
    return {}


# --- train_one_epoch ------------------------------------------------------------------------------------------------
def lowers_inputs(seed: int, reference) -> dict:
    g = _gen(seed)
    bs, n = _int(g, 1, 2), 2
    row = torch.randint(0, K, (1, N), generator=g)
    return {"transformer": _weights(reference, seed)["transformer"], "tokens": row.expand(n * bs, N).clone(),
            "batch_size": bs, "lr": 1e-2, "epochs": 6, "steps": n}


def judge_lowers(ctx) -> dict[str, str]:
    obs = ctx.observed
    calls, state = obs.get("calls"), obs.get("transformer")
    if not isinstance(calls, list) or not isinstance(state, dict):
        return {LOWERS: _error(ctx)}
    if not calls:
        return {LOWERS: "train_one_epoch never called self.model(batch)"}
    if not any(isinstance(c, dict) and c.get("train") is True for c in calls):
        return {LOWERS: "the model was never in train mode while training"}
    if obs.get("vqgan_same") is not True:
        return {LOWERS: "the VQGAN's weights changed"}
    batches = _batches(ctx.inputs["tokens"], ctx.inputs["batch_size"])
    checks = ctx.grader.module("test_todo2_training")
    with _reference_model(ctx, ctx.inputs["transformer"], dropout=True) as model:
        before = checks.mean_loss(model, batches)
        model.transformer.load_state_dict(state)
        after = checks.mean_loss(model, batches)
    if not after < 0.7 * before:
        return {LOWERS: f"masked-token loss after {ctx.inputs['epochs']} epochs {after:.3f}, not below "
                        f"{0.7 * before:.3f} (it was {before:.3f})"}
    return {}


def accumulate_inputs(seed: int, reference) -> dict:
    g = _gen(seed)
    k = (2, 4)[_int(g, 0, 1)]
    n, bs = 2 * k + _int(g, 1, k - 1), _int(g, 1, 2)
    return {"transformer": _weights(reference, seed)["transformer"], "tokens": torch.randint(0, K, (n * bs, N),
                                                                                           generator=g),
            "batch_size": bs, "k": k, "lr": 1e-3, "epochs": 1, "steps": n, "ls": 0.0,
            "stale": round(_uniform(g, 2.0, 8.0), 2)}


def judge_accumulate(ctx) -> dict[str, str]:
    obs, k = ctx.observed, ctx.inputs["k"]
    batches = _batches(ctx.inputs["tokens"], ctx.inputs["batch_size"])
    want_steps = [k * (j + 1) for j in range(len(batches) // k)]
    if obs.get("loop_error") or "steps" not in obs:
        return {ACCUM: str(obs.get("loop_error") or _error(ctx))[:300]}
    if obs.get("steps") != want_steps:
        return {ACCUM: f"optimizer steps with accum_grad={k} over {len(batches)} batches after batches "
                       f"{str(obs.get('steps'))[:60]}, not {want_steps}"}
    if obs.get("sched_steps") != want_steps:
        return {ACCUM: f"scheduler steps after batches {str(obs.get('sched_steps'))[:60]}, not {want_steps}"}
    states, grads = obs.get("states"), obs.get("grads")
    if not isinstance(states, list) or not isinstance(grads, list) or len(states) < len(want_steps) or \
            len(grads) < len(want_steps) or not isinstance(states[0], dict):
        return {ACCUM: "no weights or gradients at the optimizer steps"}
    start = ctx.inputs["transformer"]
    if set(states[0]) != set(start) or any(not torch.equal(states[0][n], v) for n, v in start.items()):
        return {ACCUM: "the weights at the start are not the given ones"}
    with _reference_model(ctx, start) as model:
        model.train()
        for j in range(len(want_steps)):
            model.transformer.load_state_dict(states[j])
            model.zero_grad()
            for batch in batches[k * j:k * (j + 1)]:
                logits, target = model(batch)
                (F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), ignore_index=IGNORE) / k).backward()
            ref, g = model.transformer.bias.grad.detach().clone(), grads[j]
            if not _tensor(g, ref.shape):
                return {ACCUM: f"no gradient of transformer.bias at optimizer step {j + 1}"}
            cos = F.cosine_similarity(g.double().flatten(), ref.double().flatten(), dim=0).item()
            if not cos > 0.99:
                return {ACCUM: f"gradient at optimizer step {j + 1}: cosine {cos:.3f} with the mean gradient of "
                               f"batches {k * j + 1}-{k * (j + 1)}"}
            if not g.norm() <= ref.norm() * 1.01:
                return {ACCUM: f"gradient at optimizer step {j + 1}: norm {g.norm():.3g} over the mean's "
                               f"{ref.norm():.3g} (divide the loss by k)"}
    return {}


def return_inputs(seed: int, reference) -> dict:
    g = _gen(seed)
    n = _int(g, 4, 7)
    return {"transformer": _weights(reference, seed)["transformer"],
            "tokens": torch.randint(0, K, (2 * n, N), generator=g), "batch_size": 2, "k": _int(g, 2, 3),
            "lr": 1e-3, "epochs": 1, "steps": n, "ls": round(_uniform(g, 0.05, 0.25), 3)}


def judge_return(ctx) -> dict[str, str]:
    obs, ls = ctx.observed, ctx.inputs["ls"]
    calls = obs.get("calls")
    if not isinstance(calls, list) or "returned" not in obs:
        return {RETURNS: _error(ctx)}
    batches = _batches(ctx.inputs["tokens"], ctx.inputs["batch_size"])
    calls = [c for c in calls if isinstance(c, dict) and c.get("grad") is True]
    if len(calls) != len(batches):
        return {RETURNS: f"{len(calls)} training calls of self.model, not {len(batches)} (one per batch)"}
    bad = _calls_are_real(ctx, calls, batches, ctx.inputs["transformer"], train=True)
    if bad:
        return {RETURNS: bad}
    want = sum(_ce(c["logits"], c["target"], ls) for c in calls) / len(calls)
    got = _number(obs["returned"])
    if got is None or not abs(got - want) <= 1e-4 * max(1.0, abs(want)):
        return {RETURNS: f"train_one_epoch returned {str(obs['returned'])[:60]}, not the mean loss {want:.4f} "
                         f"(label_smoothing={ls}, accum_grad={ctx.inputs['k']}, {len(batches)} batches)"}
    return {}


# --- eval_one_epoch --------------------------------------------------------------------------------------------------
def eval_inputs(seed: int, reference) -> dict:
    g = _gen(seed)
    n, bs = _int(g, 2, 5), _int(g, 1, 3)
    return {"transformer": _weights(reference, seed)["transformer"],
            "tokens": torch.randint(0, K, (n * bs, N), generator=g), "batch_size": bs, "lr": 1e-2,
            "ls": round(_uniform(g, 0.05, 0.3), 3)}


def _judge_eval_weights(ctx) -> str:
    obs = ctx.observed
    calls, state = obs.get("calls"), obs.get("transformer")
    if not isinstance(calls, list) or not isinstance(state, dict):
        return _error(ctx)
    if "error" in obs:
        return obs["error"][:300]
    if not calls:
        return "the model was never called"
    if any(not isinstance(c, dict) or c.get("train") is not False for c in calls):
        return "the model was in train mode during eval_one_epoch"
    if any(c.get("grad") is not False for c in calls):
        return "gradient tracking on during eval_one_epoch"
    start = ctx.inputs["transformer"]
    if set(state) != set(start) or any(not torch.equal(state[n], v) for n, v in start.items()):
        return "the transformer's weights changed"
    if obs.get("vqgan_same") is not True or obs.get("stepped") is not False:
        return "the VQGAN's weights changed" if obs.get("vqgan_same") is not True else "the optimizer stepped"
    return ""


def _judge_eval_returns(ctx) -> str:
    obs, ls = ctx.observed, ctx.inputs["ls"]
    calls = obs.get("calls")
    if not isinstance(calls, list) or "loss" not in obs:
        return _error(ctx)
    batches = _batches(ctx.inputs["tokens"], ctx.inputs["batch_size"])
    if len(calls) != len(batches) or any(not isinstance(c, dict) for c in calls):
        return f"{len(calls)} calls of self.model, not {len(batches)} (one per batch)"
    bad = _calls_are_real(ctx, calls, batches, ctx.inputs["transformer"], train=False)
    if bad:
        return bad
    losses, correct, total = [], 0, 0
    for c in calls:
        losses.append(_ce(c["logits"], c["target"], ls))
        m = c["target"] != IGNORE
        correct += (c["logits"].argmax(-1)[m] == c["target"][m]).sum().item()
        total += m.sum().item()
    want_loss, want_acc = sum(losses) / len(losses), correct / total
    loss, acc = _number(obs.get("loss")), _number(obs.get("accuracy"))
    if loss is None or not abs(loss - want_loss) < 1e-4:
        return f"mean validation loss {str(obs.get('loss'))[:40]}, not {want_loss:.4f} (label_smoothing={ls})"
    if acc is None or not abs(acc - want_acc) < 1e-6:
        return f"accuracy {str(obs.get('accuracy'))[:40]}, not {want_acc:.4f} (argmax == target, masked tokens)"
    return ""


def judge_eval(ctx) -> dict[str, str]:
    charged = {}
    _judged(charged, EVAL_WEIGHTS, lambda: _judge_eval_weights(ctx))
    _judged(charged, EVAL_RETURNS, lambda: _judge_eval_returns(ctx))
    return charged


PROBES = [
    Probe("todo2_gamma_hidden", TODO, "the three schedules at fresh r, monotone on [0, 1], another unknown name",
          (VALUES, MONOTONE, UNKNOWN), judge_gamma, "todo2_gamma", gamma_inputs),
    Probe("todo2_encode_hidden", TODO, "encode_to_z on fresh VQGAN weights and another batch size", (ENCODE,),
          judge_encode, "todo2_encode", encode_inputs),
    Probe("todo2_mask_tokens_hidden", TODO, "mask_tokens: counts at fresh ratios, values, generator seeds",
          (COUNTS, MASK_VALUES, GENERATOR), judge_mask, "todo2_mask_tokens", mask_inputs),
    Probe("todo2_forward_hidden", TODO, "forward on fresh weights, a known mask and another ratio", (FORWARD,),
          judge_forward, "todo2_forward", forward_inputs),
    Probe("todo2_configure_hidden", TODO, "configure_optimizers with another learning rate and run length",
          (CONFIG,), judge_configure, "todo2_configure", configure_inputs),
    Probe("todo2_train_lowers_hidden", TODO, "train_one_epoch lowers the loss from fresh weights on fresh data",
          (LOWERS,), judge_lowers, "todo2_train_epochs", lowers_inputs),
    Probe("todo2_accumulate_hidden", TODO, "gradient accumulation with another k and number of batches",
          (ACCUM,), judge_accumulate, "todo2_accumulate", accumulate_inputs),
    Probe("todo2_train_return_hidden", TODO, "train_one_epoch's mean loss with another label smoothing and k",
          (RETURNS,), judge_return, "todo2_train_return", return_inputs),
    Probe("todo2_eval_hidden", TODO, "eval_one_epoch on fresh data: no weight change, loss and accuracy",
          (EVAL_WEIGHTS, EVAL_RETURNS), judge_eval, "todo2_evaluate", eval_inputs),
]
