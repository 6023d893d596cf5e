"""Hidden forms of the TODO4 checks (the class-conditional extension: ClassConditionalTransformer.class_token_ids
and forward, inpainting.guided_decoding).

As the public checks: the model checks wrap a tiny net (the grader's attention, no dropout) and compare with the
reference's logits on the same inputs; the decoding checks record the calls of the public checks' stand-in step.
Here the sizes (K, N, C), the net's weights, the batch sizes, the labels (with NO_CLASS where the public check has
it), the class-dropout rates, the guidance scales (0 and non-integers), T, the sweet spots and the generators'
seeds are drawn afresh from each submission's seed. Each probe judges only what its public check judges, on inputs
of the kinds that check uses (e.g. no NO_CLASS label where the public check has none).
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from maskgit_kit.autograder.judging import Bad
from maskgit_kit.autograder.judging import judged as _judged
from maskgit_kit.autograder.judging import paired_cases as _cases
from maskgit_kit.autograder.trusted import Probe

TODO = "TODO4"
IDS, DRAWS = "test_class_ids_and_no_class", "test_class_dropout_draws"
APPENDS, NONE, TRAIN_DROP, GUIDANCE = ("test_forward_appends_class_token", "test_forward_labels_none_is_unconditional",
                                       "test_forward_dropout_only_in_training", "test_forward_guidance")
SCHEDULE, SWEET, CONDITIONED, RAMP = ("test_guided_schedule_and_history", "test_guided_sweet_spot",
                                      "test_guided_steps_are_conditioned", "test_guided_ramp")
CLASS_IDS, FORWARD, GUIDED = "todo4_class_ids", "todo4_forward", "todo4_guided"
NO_CLASS = -1  # the documented "no class" label (class_conditional.NO_CLASS)


# --- drawing inputs ----------------------------------------------------------------------------------------------
def _int(g, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _uniform(g, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=g))


def _seed(g) -> int:
    return _int(g, 0, 2**31 - 2)


def _scales(g) -> list[float]:
    """Guidance scales other than 1: 0, one in (0, 1), one in (1, 5), both non-integers."""
    return [0.0, round(_uniform(g, 0.1, 0.9), 3), round(_uniform(g, 1.2, 4.8), 3)]


def _model_inputs(reference, g) -> dict:
    """Sizes (K, N, C) and the reference's ClassConditionalTransformer weights from a drawn seed, with distinct class
    rows (every class moves the image logits, as in the public checks)."""
    K, N, C = _int(g, 8, 24), _int(g, 6, 20), _int(g, 2, 8)
    c = reference.impl.module("models.config")
    cfg = c.TransformerConfig(num_image_tokens=N, num_codebook_vectors=K, dim=32, n_layers=2, hidden_dim=64,
                              num_heads=4, dropout=0.0, attn_dropout=0.0, num_classes=C)
    with torch.random.fork_rng():
        torch.manual_seed(_seed(g))
        model = reference.impl.module("models.Transformer.class_conditional").ClassConditionalTransformer(cfg)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["net.tok_emb.weight"][K + 1:] += torch.randn(C + 1, 32, generator=g)
    return {"sizes": (K, N, C), "state": state}


def _labels(g, batch: int, classes: int, no_class: bool) -> torch.Tensor:
    """(B,) labels in [0, C); with ``no_class``, some NO_CLASS among them (at least one, and one class)."""
    labels = torch.randint(0, classes, (batch,), generator=g)
    if no_class:
        labels[torch.rand(batch, generator=g) < 0.4] = NO_CLASS
        labels[_int(g, 0, batch - 1)] = NO_CLASS
        keep = _int(g, 0, batch - 1)
        if labels[keep] == NO_CLASS:
            labels[keep] = _int(g, 0, classes - 1)
    return labels


def _ids(g, sizes, batch: int) -> torch.Tensor:
    K, N, _ = sizes
    z = torch.randint(0, K, (batch, N), generator=g)
    return z.masked_fill(torch.rand(batch, N, generator=g) < _uniform(g, 0.2, 0.7), K)


def _fwd(g, sizes, batch: int, labels, train=False, guidance=1.0, class_dropout=None, gen=None) -> dict:
    return {"ids": _ids(g, sizes, batch), "labels": labels, "train": train, "guidance": float(guidance),
            "class_dropout": _uniform(g, 0.2, 0.8) if class_dropout is None else float(class_dropout), "gen": gen,
            "global_seed": _seed(g)}


# --- judging helpers ---------------------------------------------------------------------------------------------
def _desc(x) -> str:
    return f"{tuple(x.shape)} {str(x.dtype).replace('torch.', '')}" if isinstance(x, torch.Tensor) else \
        type(x).__name__


def _tensor(x, what: str, shape, dtype=None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or tuple(x.shape) != tuple(shape) or (dtype is not None and x.dtype != dtype):
        raise Bad(f"{what} is {_desc(x)}, not {str(dtype).replace('torch.', '') + ' ' if dtype else ''}"
                  f"{tuple(shape)}")
    return x


def _same_draws(got, want) -> bool:
    return (got is None) == (want is None) and (got is None or (isinstance(got, torch.Tensor) and
                                                                torch.equal(got, want)))


def _short(x) -> str:
    s = str(x.tolist() if isinstance(x, torch.Tensor) else x)
    return s if len(s) <= 120 else s[:117] + "..."


# --- class_token_ids ---------------------------------------------------------------------------------------------
def ids_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs = _model_inputs(reference, g)
    C = inputs["sizes"][2]
    cases = [{"labels": _labels(g, _int(g, 3, 12), C, True), "drop_prob": None, "gen": None, "global_seed": _seed(g)}
             for _ in range(3)]
    cases.append({"labels": torch.arange(C), "drop_prob": None, "gen": None, "global_seed": _seed(g)})
    return {**inputs, "cases": cases}


def _class_ids(ctx) -> None:
    K, _, C = ctx.inputs["sizes"]
    for case, got, want in _cases(ctx):
        ids = _tensor(got.get("ids"), "class_token_ids(labels)", case["labels"].shape, torch.int64)
        if not torch.equal(ids, want["ids"]):
            raise Bad(f"class ids {_short(ids)} for labels {_short(case['labels'])} with K = {K}, C = {C}: not "
                      f"{_short(want['ids'])}")


def draws_inputs(seed: int, reference) -> dict:
    """Rates in (0, 1) from a seeded generator under two global seeds each, and a rate of 0 with a generator."""
    g = torch.Generator().manual_seed(seed)
    inputs = _model_inputs(reference, g)
    C = inputs["sizes"][2]
    cases = []
    for _ in range(2):
        labels, p, gen = _labels(g, _int(g, 8, 16), C, True), round(_uniform(g, 0.2, 0.8), 3), _seed(g)
        cases += [{"labels": labels, "drop_prob": p, "gen": gen, "global_seed": _seed(g)} for _ in range(2)]
    cases.append({"labels": _labels(g, _int(g, 4, 10), C, True), "drop_prob": 0.0, "gen": _seed(g),
                  "global_seed": _seed(g)})
    return {**inputs, "cases": cases}


def _draws(ctx) -> None:
    """The ids of the images with a class (NO_CLASS's id is the other check's) and the generator's advance."""
    for case, got, want in _cases(ctx):
        p, labels = case["drop_prob"], case["labels"]
        ids = _tensor(got.get("ids"), f"class_token_ids(labels, {p}, g)", labels.shape, torch.int64)
        has = labels != NO_CLASS
        where = f"drop_prob {p}, generator seed {case['gen']}, global seed {case['global_seed']}"
        if not torch.equal(ids[has], want["ids"][has]):
            raise Bad(f"class ids {_short(ids)} ({where}): not {_short(want['ids'])}")
        if not _same_draws(got.get("after"), want["after"]):
            raise Bad(f"the generator after the call ({where}): " + ("untouched expected (no draw when drop_prob is "
                      "0)" if p == 0 else "one torch.rand(B, generator=generator) draw expected"))


# --- forward -----------------------------------------------------------------------------------------------------
def _logits(case, got, want, sizes, what: str, rows=None) -> None:
    K, N, _ = sizes
    B = len(case["ids"])
    out = _tensor(got.get("logits"), f"forward(masked_ids) ({what})", (B, N, K + 1))
    sel = slice(None) if rows is None else rows
    diff = float((out[sel].double() - want["logits"][sel].double()).abs().max()) if out[sel].numel() else 0.0
    tol = 1e-4 * max(1.0, abs(case["guidance"]))
    if not diff <= tol:
        raise Bad(f"logits differ by {diff:.3g} from the expected ({what}, B = {B}, K = {K}, N = {N})")


def appends_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs = _model_inputs(reference, g)
    s = inputs["sizes"]
    cases = [_fwd(g, s, b, _labels(g, b, s[2], False)) for b in (_int(g, 1, 3), _int(g, 4, 8))]
    return {**inputs, "cases": cases}


def _appends(ctx) -> None:
    for case, got, want in _cases(ctx):
        _logits(case, got, want, ctx.inputs["sizes"], f"eval mode, guidance 1, labels {_short(case['labels'])}")


def none_inputs(seed: int, reference) -> dict:
    """labels None, and labels with NO_CLASS among them (only those images judged: unconditional too)."""
    g = torch.Generator().manual_seed(seed)
    inputs = _model_inputs(reference, g)
    s = inputs["sizes"]
    b = _int(g, 3, 8)
    cases = [_fwd(g, s, _int(g, 1, 6), None), _fwd(g, s, b, _labels(g, b, s[2], True))]
    return {**inputs, "cases": cases}


def _none(ctx) -> None:
    for case, got, want in _cases(ctx):
        labels = case["labels"]
        if labels is None:
            _logits(case, got, want, ctx.inputs["sizes"], "labels None")
        else:
            _logits(case, got, want, ctx.inputs["sizes"], f"the NO_CLASS images of labels {_short(labels)}",
                    rows=labels == NO_CLASS)


def train_drop_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs = _model_inputs(reference, g)
    s = inputs["sizes"]
    b, p, gen = _int(g, 6, 12), round(_uniform(g, 0.25, 0.75), 3), _seed(g)
    labels = _labels(g, b, s[2], False)
    ids = _ids(g, s, b)
    cases = [{**_fwd(g, s, b, labels, train=True, class_dropout=p, gen=gen), "ids": ids} for _ in range(2)]
    b = _int(g, 3, 8)
    cases.append(_fwd(g, s, b, _labels(g, b, s[2], False), class_dropout=p, gen=_seed(g)))  # eval mode
    return {**inputs, "cases": cases}


def _train_drop(ctx) -> None:
    for case, got, want in _cases(ctx):
        mode = "training" if case["train"] else "eval"
        what = (f"{mode} mode, class_dropout {case['class_dropout']}, generator seed {case['gen']}, global seed "
                f"{case['global_seed']}")
        _logits(case, got, want, ctx.inputs["sizes"], what)
        if not _same_draws(got.get("after"), want["after"]):
            raise Bad(f"self.generator after forward ({what}): " + (
                "one class-dropout draw expected" if case["train"] else "untouched expected (no draw in eval mode)"))


def guidance_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs = _model_inputs(reference, g)
    s = inputs["sizes"]
    b = _int(g, 2, 6)
    labels, ids = _labels(g, b, s[2], False), _ids(g, s, b)
    cases = [{**_fwd(g, s, b, labels, guidance=w), "ids": ids} for w in [*_scales(g), 1.0]]
    cases.append({**_fwd(g, s, b, labels, train=True, guidance=round(_uniform(g, 1.5, 4.5), 3), class_dropout=0.0),
                  "ids": ids})
    return {**inputs, "cases": cases}


def _guidance(ctx) -> None:
    for case, got, want in _cases(ctx):
        w, B = case["guidance"], len(case["ids"])
        mode = "training mode, class_dropout 0" if case["train"] else "eval mode"
        _logits(case, got, want, ctx.inputs["sizes"], f"guidance {w}, {mode}")
        rows = got.get("rows")
        if w == 1.0 and not case["train"] and (not isinstance(rows, list) or sum(rows) != B):
            raise Bad(f"guidance 1: {rows} rows through the net, not one conditional pass over the {B} images")


# --- guided_decoding ---------------------------------------------------------------------------------------------
def _decode_case(g, classes: int, total: int, sweet=None, guidance=None, ramp=False, no_class=True) -> dict:
    """Ids and a mask of the tiny MaskGit's size, labels (NO_CLASS among them where B > 1), options."""
    batch = _int(g, 1, 3)
    N, K = 256, 16  # the tiny MaskGit of the public checks (_tiny)
    z = torch.randint(0, K, (batch, N), generator=g)
    fractions = [_uniform(g, 0.1, 0.9) for _ in range(batch)]
    mask = torch.stack([torch.rand(N, generator=g) < f for f in fractions])
    mask[:, 0] = True
    guidance = _scales(g)[_int(g, 0, 2)] if guidance is None else guidance
    return {"z": z, "mask": mask, "labels": _labels(g, batch, classes, no_class and batch > 1), "total": total,
            "sweet_spot": sweet, "guidance": float(guidance), "ramp": ramp,
            "gens": [_seed(g) for _ in range(batch)], "temperature": round(_uniform(g, 0.5, 6), 2),
            "sample": bool(_int(g, 0, 1))}


def _decode_inputs(seed: int, make) -> dict:
    g = torch.Generator().manual_seed(seed)
    classes = _int(g, 2, 8)
    return {"classes": classes, "cases": make(g, classes)}


def _recorded(ctx, case, got) -> tuple[list, list]:
    """The recorded calls, and what the recording stand-in returned for each (recomputed here from each call's
    recorded inputs)."""
    calls = got.get("calls")
    if not isinstance(calls, list):
        raise Bad("no record of the step calls")
    rec = ctx.grader.module("test_todo4_class_conditional").StepRecorder(
        SimpleNamespace(transformer=SimpleNamespace(labels=None, guidance=1.0)))
    for c in calls:
        if not isinstance(c, dict) or not isinstance(c.get("z"), torch.Tensor) or \
                not isinstance(c.get("mask"), torch.Tensor) or c["z"].shape != case["z"].shape or \
                c["mask"].shape != case["mask"].shape or c["mask"].dtype != torch.bool or \
                not isinstance(c.get("n0"), torch.Tensor) or not isinstance(c.get("ratio"), float):
            raise Bad("a step got ids or a mask of another shape or type")
        rec(c["z"], c["mask"], c["n0"], c["ratio"])
    return calls, rec.returned


def _z_final(got, case) -> torch.Tensor:
    return _tensor(got.get("z_final"), "z_final", case["z"].shape, torch.int64)


def _history_equal(history, returned) -> bool:
    return isinstance(history, list) and len(history) == len(returned) and all(
        isinstance(h, (list, tuple)) and len(h) == 2 and all(isinstance(x, torch.Tensor) for x in h)
        and h[0].shape == r[0].shape and h[1].shape == r[1].shape and torch.equal(h[0], r[0])
        and torch.equal(h[1], r[1]) for h, r in zip(history, returned, strict=False))


def _where(case) -> str:
    return (f"T = {case['total']}, sweet_spot = {case['sweet_spot']}, B = {len(case['z'])}, guidance "
            f"{case['guidance']}, ramp {case['ramp']}")


def schedule_inputs(seed: int, reference) -> dict:
    return _decode_inputs(seed, lambda g, c: [_decode_case(g, c, _int(g, 3, 9), ramp=r) for r in (False, True)])


def _schedule(ctx) -> None:
    for case, got, _ in _cases(ctx):
        calls, returned = _recorded(ctx, case, got)
        total, where = case["total"], _where(case)
        ratios = [c["ratio"] for c in calls]
        if len(ratios) != total or not all(math.isclose(r, (t + 1) / total) for t, r in enumerate(ratios)):
            raise Bad(f"ratios {[round(r, 3) for r in ratios]}, not (t + 1) / T ({where})")
        n0 = case["mask"].sum(1)
        for t, c in enumerate(calls):
            if c["n0"].numel() != n0.numel() or not torch.equal(c["n0"].reshape(-1).long(), n0):
                raise Bad(f"num_unknown_start at step {t} is not the unknown count before step 0 ({where})")
            prev_z, prev_mask = (case["z"], case["mask"]) if t == 0 else returned[t - 1]
            if not torch.equal(c["mask"], prev_mask) or not torch.equal(c["z"][~c["mask"]], prev_z[~c["mask"]]):
                raise Bad(f"the ids and mask passed at step {t} are not the previous step's (z_pred, new_mask) "
                          f"({where})")
            if c["generators"] != "same" or c["temperature"] != case["temperature"] or \
                    c["sample"] is not case["sample"]:
                raise Bad(f"options at step {t}: generators {c['generators']}, choice_temperature "
                          f"{c['temperature']}, sample {c['sample']}; not those given ({where})")
        if not _history_equal(got.get("history"), returned):
            raise Bad(f"history is not the (z_pred, new_mask) of each step, in order ({where})")
        if not torch.equal(_z_final(got, case), returned[-1][0]):
            raise Bad(f"z_final is not z_pred of the last step ({where})")


def sweet_inputs(seed: int, reference) -> dict:
    def make(g, classes):
        total = _int(g, 5, 10)
        return [_decode_case(g, classes, total, sweet=_int(g, 2, total - 1))]
    return _decode_inputs(seed, make)


def _sweet(ctx) -> None:
    for case, got, _ in _cases(ctx):
        calls, returned = _recorded(ctx, case, got)
        total, sweet = case["total"], case["sweet_spot"]
        ratios = [c["ratio"] for c in calls]
        history = got.get("history")
        if len(ratios) != sweet or not all(math.isclose(r, (t + 1) / total) for t, r in enumerate(ratios)) or \
                not isinstance(history, list) or len(history) != sweet:
            steps = len(history) if isinstance(history, list) else "no"
            raise Bad(f"ratios {[round(r, 4) for r in ratios]} and {steps} history entries with total_iter = "
                      f"{total}, sweet_spot = {sweet}: not "
                      f"{[round((t + 1) / total, 4) for t in range(sweet)]}")
        if not torch.equal(_z_final(got, case), returned[-1][0]):
            raise Bad(f"z_final is not z_pred of step {sweet} (T = {total})")


def conditioned_inputs(seed: int, reference) -> dict:
    return _decode_inputs(seed, lambda g, c: [_decode_case(g, c, _int(g, 3, 7), guidance=w) for w in _scales(g)[:2]])


def _conditioned(ctx) -> None:
    for case, got, _ in _cases(ctx):
        calls, _ = _recorded(ctx, case, got)
        labels, w, where = case["labels"], case["guidance"], _where(case)
        if not calls:
            raise Bad(f"no step run ({where})")
        for t, c in enumerate(calls):
            seen = c.get("labels")
            if not isinstance(seen, torch.Tensor) or seen.numel() != labels.numel() or \
                    not torch.equal(seen.reshape(-1).long(), labels):
                raise Bad(f"the model's labels during step {t}: {_short(seen)}, not {_short(labels)} ({where})")
            if not isinstance(c.get("guidance"), float) or not math.isclose(c["guidance"], w, abs_tol=1e-9):
                raise Bad(f"the model's guidance during step {t}: {c.get('guidance')}, not {w} ({where})")
        after = got.get("after")
        if not isinstance(after, dict) or after.get("labels") is not None or after.get("guidance") != 1.0:
            raise Bad(f"the model after guided_decoding: {after}, not unconditioned again (labels None, guidance 1)")


def ramp_inputs(seed: int, reference) -> dict:
    def make(g, classes):
        total = _int(g, 4, 9)
        return [_decode_case(g, classes, _int(g, 3, 8), guidance=_scales(g)[2], ramp=True),
                _decode_case(g, classes, total, sweet=_int(g, 2, total - 1), guidance=_scales(g)[_int(g, 0, 1)],
                             ramp=True)]
    return _decode_inputs(seed, make)


def _ramp(ctx) -> None:
    for case, got, _ in _cases(ctx):
        calls, _ = _recorded(ctx, case, got)
        total, w = case["total"], case["guidance"]
        want = [1 + (w - 1) * (t + 1) / total for t in range(case["sweet_spot"] or total)]
        found = [c.get("guidance") for c in calls]
        if len(found) != len(want) or not all(isinstance(f, float) and math.isclose(f, x, abs_tol=1e-6)
                                              for f, x in zip(found, want, strict=True)):
            raise Bad(f"guidance per step {[round(f, 4) if isinstance(f, float) else f for f in found]}, not "
                      f"{[round(x, 4) for x in want]} ({_where(case)})")


PROBES = [
    Probe("class_ids_hidden", TODO, "class ids and the \"no class\" id, other K, C and labels", (IDS,),
          _judged(IDS, _class_ids), CLASS_IDS, ids_inputs),
    Probe("class_dropout_draws_hidden", TODO, "class dropout drawn from the generator, other rates and seeds",
          (DRAWS,), _judged(DRAWS, _draws), CLASS_IDS, draws_inputs),
    Probe("forward_appends_hidden", TODO, "the class token after the image tokens, other sizes and weights",
          (APPENDS,), _judged(APPENDS, _appends), FORWARD, appends_inputs),
    Probe("forward_labels_none_hidden", TODO, "labels None and NO_CLASS images are unconditional", (NONE,),
          _judged(NONE, _none), FORWARD, none_inputs),
    Probe("forward_dropout_hidden", TODO, "class dropout in training mode only, other rates and generators",
          (TRAIN_DROP,), _judged(TRAIN_DROP, _train_drop), FORWARD, train_drop_inputs),
    Probe("forward_guidance_hidden", TODO, "classifier-free guidance, other scales (0 and non-integers)",
          (GUIDANCE,), _judged(GUIDANCE, _guidance), FORWARD, guidance_inputs),
    Probe("guided_schedule_hidden", TODO, "guided_decoding's schedule, chaining, options and history, other T",
          (SCHEDULE,), _judged(SCHEDULE, _schedule), GUIDED, schedule_inputs),
    Probe("guided_sweet_spot_hidden", TODO, "guided_decoding stops at the sweet spot, other T and sweet spot",
          (SWEET,), _judged(SWEET, _sweet), GUIDED, sweet_inputs),
    Probe("guided_conditioned_hidden", TODO, "every step conditioned on the labels and scale, reset after",
          (CONDITIONED,), _judged(CONDITIONED, _conditioned), GUIDED, conditioned_inputs),
    Probe("guided_ramp_hidden", TODO, "the ramped guidance per step, other scales, T and sweet spots", (RAMP,),
          _judged(RAMP, _ramp), GUIDED, ramp_inputs),
]
