"""Observers of TODO2: gamma_func, encode_to_z, mask_tokens, forward and the training loops (see __init__.py).

Each runs the graded code the way its public check does (the grader's stand-ins for the other TODOs, the tiny
models of ``_tiny``), on the trusted side's weights, tokens and settings, and returns what came back. Every call is
reported on its own (a value or ``{"error": ...}``), so that one failing call costs only the checks that use it.
"""
from __future__ import annotations

from contextlib import contextmanager

MODEL = "models.VQGAN_Transformer"


@contextmanager
def _patched():
    """A monkeypatch undone at the end; the loops' progress bars (stderr) go nowhere (they would fill the trusted
    side's log when the reference is observed)."""
    import contextlib
    import io

    import pytest
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(io.StringIO()):
        yield mp


def _error(exc: BaseException) -> dict:
    return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def _plain(x):
    """A value as plain data: a detached CPU tensor, a number, or its repr (what the judge can read)."""
    import torch
    if torch.is_tensor(x):
        return x.detach().to("cpu").clone()
    if isinstance(x, (bool, int, float)) or x is None:
        return x
    return f"<{type(x).__name__}> {repr(x)[:200]}"


def _pair(result):
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise TypeError(f"expected a tuple of 2 values, got {_plain(result)!r}"[:300])
    return result


def _model(impl, grader, inputs: dict, dropout: bool = True):
    """The tiny MaskGit with the trusted side's transformer (and VQGAN) weights."""
    import torch.nn as nn
    model = grader.module("_tiny").maskgit(impl)
    if "transformer" in inputs:
        model.transformer.load_state_dict(inputs["transformer"])
    if "vqgan" in inputs:
        model.vqgan.load_state_dict(inputs["vqgan"])
    if not dropout:
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
    return model


def _transformer_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.transformer.state_dict().items()}


# --- model side --------------------------------------------------------------------------------------------------
def gamma(impl, grader, inputs: dict) -> dict:
    """gamma_func(mode)(r) for each mode at the given floats; the unknown mode's exception."""
    from ..feedback import TODO_RE
    model = grader.module("_tiny").maskgit(impl)
    values = {}
    for mode in inputs["modes"]:
        try:
            g = model.gamma_func(mode)
            values[mode] = [_plain(g(float(r))) for r in inputs["rs"]]
        except Exception as exc:  # noqa: BLE001 - reported, judged by the trusted side
            values[mode] = _error(exc)
    try:
        model.gamma_func(inputs["unknown"])(0.5)
        unknown = {"raised": None}
    except Exception as exc:  # noqa: BLE001 - the type is what is judged
        unknown = {"raised": type(exc).__name__, "allowed": isinstance(exc, (ValueError, NotImplementedError)),
                   "stub": isinstance(exc, NotImplementedError) and bool(TODO_RE.match(str(exc)))}
    return {"values": values, "unknown": unknown}


def encode(impl, grader, inputs: dict) -> dict:
    """encode_to_z(x) with the trusted side's VQGAN weights."""
    model = _model(impl, grader, inputs)
    z_q, ids = _pair(model.encode_to_z(inputs["x"].clone()))
    return {"z_q": _plain(z_q), "ids": _plain(ids)}


def mask_tokens(impl, grader, inputs: dict) -> dict:
    """mask_tokens with the grader's schedule: each ratio of ``counts``, ratio None on many images, the positions
    case (is z edited in place?), and the generator cases (seed, global seed)."""
    import torch
    standins = grader.module("_standins")
    out = {}
    with _patched() as mp:
        standins.use(mp, impl, "gamma")
        model = grader.module("_tiny").maskgit(impl)

        def call(z, ratio, generator=None):
            try:
                masked, mask = _pair(model.mask_tokens(z, ratio, generator=generator) if generator is not None
                                     else model.mask_tokens(z, ratio))
                return {"masked": _plain(masked), "mask": _plain(mask)}
            except Exception as exc:  # noqa: BLE001
                return _error(exc)

        out["counts"] = [call(inputs["z"].clone(), r) for r in inputs["ratios"]]
        out["none"] = call(inputs["z_many"].clone(), None)
        z = inputs["z_pos"].clone()
        out["positions"] = call(z, inputs["ratio_pos"])
        out["positions"]["z_after"] = z.clone()
        gen = []
        for ratio in inputs["gen_ratios"]:
            for seed, global_seed in inputs["gen_seeds"]:
                torch.manual_seed(global_seed)
                gen.append(call(inputs["z_gen"].clone(), ratio, torch.Generator().manual_seed(seed)))
        out["generator"] = gen
    return out


def forward(impl, grader, inputs: dict) -> dict:
    """forward(z, ratio=r) with the grader's attention and a known mask_tokens; what reached the transformer."""
    import torch
    standins = grader.module("_standins")
    mod = impl.module(MODEL)
    calls, seen = [], []
    pattern = inputs["mask"]

    def known_mask_tokens(self, z_indices, ratio=None, generator=None):
        calls.append(_plain(ratio))
        if tuple(z_indices.shape) != tuple(pattern.shape):
            raise ValueError(f"mask_tokens got ids of shape {tuple(z_indices.shape)}, not {tuple(pattern.shape)}")
        return torch.where(pattern, self.mask_token_id, z_indices), pattern.clone()

    with _patched() as mp:
        standins.use(mp, impl, "attention")
        mp.setattr(mod.MaskGit, "mask_tokens", known_mask_tokens)
        model = _model(impl, grader, inputs)
        model.transformer.register_forward_pre_hook(lambda module, args: seen.append(_plain(args[0])))
        try:
            logits, target = _pair(model(inputs["z"].clone(), ratio=inputs["ratio"]))
            result = {"logits": _plain(logits), "target": _plain(target)}
        except Exception as exc:  # noqa: BLE001
            result = _error(exc)
    return {**result, "calls": calls, "seen": seen, "ignore": _plain(getattr(mod, "IGNORE_INDEX", None))}


# --- training side -----------------------------------------------------------------------------------------------
def _loader(tokens, batch_size: int):
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    return DataLoader(TensorDataset(tokens.clone()), batch_size=batch_size, shuffle=False,
                      collate_fn=lambda rows: torch.stack([r[0] for r in rows]).long())


def _trainer(impl, grader, mp, inputs: dict, *, dropout: bool = True, optimizer: bool = True):
    """The tiny model (grader attention, recording forward, fixed mask) and a trainer with the inputs' settings;
    ``optimizer``: with the grader's known-good configure_optimizers."""
    checks = grader.module("test_todo2_training")
    if optimizer:
        grader.module("_standins").use(mp, impl, "optimizer")
    model = checks.tiny_model(impl, mp, dropout=dropout)
    model.transformer.load_state_dict(inputs["transformer"])
    trainer = checks.make_trainer(impl, model, lr=inputs["lr"], accum_grad=inputs.get("k", 1),
                                  epochs=inputs.get("epochs", 1), steps_per_epoch=inputs.get("steps", 4),
                                  label_smoothing=inputs.get("ls", 0.1))
    model.grader_calls = []
    return model, trainer


def _calls(model, logits: bool = True) -> list:
    return [{"train": bool(train), "grad": bool(grad), **({"logits": lg, "target": tg} if logits else {})}
            for train, grad, lg, tg in model.grader_calls]


def configure(impl, grader, inputs: dict) -> dict:
    """configure_optimizers(): the optimizer's groups (parameter names) and lrs, the scheduler's binding."""
    import torch
    with _patched() as mp:
        model, trainer = _trainer(impl, grader, mp, inputs, optimizer=False)
        opt, sched = _pair(trainer.configure_optimizers())
        names = {id(p): f"transformer:{n}" for n, p in model.transformer.named_parameters()}
        names.update({id(p): f"vqgan:{n}" for n, p in model.vqgan.named_parameters()})
        out = {"optimizer": isinstance(opt, torch.optim.Optimizer), "type": type(opt).__name__}
        if out["optimizer"]:
            out["groups"] = [[names.get(id(p), "other") for p in g["params"]] for g in opt.param_groups]
            out["lrs"] = [_plain(g.get("initial_lr", g.get("lr"))) for g in opt.param_groups]
        out["scheduler"] = isinstance(sched, (torch.optim.lr_scheduler.LRScheduler,
                                              torch.optim.lr_scheduler.ReduceLROnPlateau))
        out["bound"] = getattr(sched, "optimizer", None) is opt
        out["all"] = sorted(names.values())
    return out


def train_epochs(impl, grader, inputs: dict) -> dict:
    """train_one_epoch run ``epochs`` times: the calls' modes, the transformer's weights after, the VQGAN's."""
    with _patched() as mp:
        model, trainer = _trainer(impl, grader, mp, inputs)
        vqgan = {k: v.clone() for k, v in model.vqgan.state_dict().items()}
        data = _loader(inputs["tokens"], inputs["batch_size"])
        for epoch in range(1, inputs["epochs"] + 1):
            grader.module("test_todo2_training").run_loop(trainer.train_one_epoch, data, epoch)
        same = all(k in vqgan and v.shape == vqgan[k].shape and bool((v == vqgan[k]).all())
                   for k, v in model.vqgan.state_dict().items())
        return {"calls": _calls(model, logits=False), "transformer": _transformer_state(model), "vqgan_same": same}


def accumulate(impl, grader, inputs: dict) -> dict:
    """One epoch with accum_grad k, stale gradients before it: when the optimizer and the scheduler stepped (in
    model calls), the bias gradient at each step, the transformer's weights at the start and after each step."""
    import torch
    with _patched() as mp:
        model, trainer = _trainer(impl, grader, mp, inputs, dropout=False)
        opt, sched = trainer.optim, trainer.scheduler
        weight = model.transformer.bias
        steps, sched_steps, grads, states = [], [], [], [_transformer_state(model)]
        original = sched.step

        def before_step(optimizer, args, kwargs):
            steps.append(len(model.grader_calls))
            grads.append(None if weight.grad is None else weight.grad.detach().clone())

        def after_step(optimizer, args, kwargs):
            states.append(_transformer_state(model))

        def sched_step(*args, **kwargs):
            sched_steps.append(len(model.grader_calls))
            return original(*args, **kwargs)

        opt.register_step_pre_hook(before_step)
        opt.register_step_post_hook(after_step)
        sched.step = sched_step
        for p in model.transformer.parameters():
            p.grad = torch.full_like(p, float(inputs["stale"]))
        try:
            grader.module("test_todo2_training").run_loop(trainer.train_one_epoch,
                                                          _loader(inputs["tokens"], inputs["batch_size"]), 1)
            error = None
        except Exception as exc:  # noqa: BLE001
            error = _error(exc)["error"]
        return {"steps": steps, "sched_steps": sched_steps, "grads": grads, "states": states[:8],
                "calls": len(model.grader_calls), "loop_error": error}


def train_return(impl, grader, inputs: dict) -> dict:
    """What one train_one_epoch returns, and every model call's (mode, logits, target)."""
    with _patched() as mp:
        model, trainer = _trainer(impl, grader, mp, inputs, dropout=False)
        got = grader.module("test_todo2_training").run_loop(trainer.train_one_epoch,
                                                            _loader(inputs["tokens"], inputs["batch_size"]), 1)
        return {"returned": _plain(got), "calls": _calls(model)}


def evaluate(impl, grader, inputs: dict) -> dict:
    """eval_one_epoch: what it returns, every model call, the weights after it, whether the optimizer stepped."""
    with _patched() as mp:
        model, trainer = _trainer(impl, grader, mp, inputs)
        vqgan = {k: v.clone() for k, v in model.vqgan.state_dict().items()}
        stepped = []
        trainer.optim.register_step_pre_hook(lambda *args: stepped.append(1))
        try:
            result = _pair(grader.module("test_todo2_training").run_loop(
                trainer.eval_one_epoch, _loader(inputs["tokens"], inputs["batch_size"]), 1))
            out = {"loss": _plain(result[0]), "accuracy": _plain(result[1])}
        except Exception as exc:  # noqa: BLE001
            out = _error(exc)
        same = all(k in vqgan and v.shape == vqgan[k].shape and bool((v == vqgan[k]).all())
                   for k, v in model.vqgan.state_dict().items())
        return {**out, "calls": _calls(model), "transformer": _transformer_state(model), "vqgan_same": same,
                "stepped": bool(stepped)}


OBSERVERS = {"todo2_gamma": gamma, "todo2_encode": encode, "todo2_mask_tokens": mask_tokens,
             "todo2_forward": forward, "todo2_configure": configure, "todo2_train_epochs": train_epochs,
             "todo2_accumulate": accumulate, "todo2_train_return": train_return, "todo2_evaluate": evaluate}
