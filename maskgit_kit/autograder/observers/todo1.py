"""Observers of TODO1, MultiHeadAttention.forward (see __init__.py)."""
from __future__ import annotations

from contextlib import contextmanager

LAYER = "models.Transformer.modules.layer"


def _fixed_dropout(p: float, multiplier):
    """Stands in for self.attn_drop: multiplies by the trusted side's 0-or-1/(1-p) tensor instead of drawing one,
    so that a train-mode output is reproducible outside this process."""
    import torch.nn as nn

    class FixedDropout(nn.Dropout):
        def forward(self, a):
            self.seen.append(tuple(a.shape))
            if not self.training:
                return a
            if tuple(a.shape[-2:]) != tuple(multiplier.shape):
                raise ValueError(f"self.attn_drop got a tensor of shape {tuple(a.shape)}, not (..., N, N) weights")
            return a * multiplier

    d = FixedDropout(p)
    d.seen = []
    return d


@contextmanager
def _functional_dropout_fixed(p: float, multiplier):
    """F.dropout(attn, self.attn_drop.p, self.training) draws the same fixed multiplier (a dropout on the weights
    written with the functional form is as good as self.attn_drop)."""
    import torch.nn.functional as F
    original = F.dropout

    def dropout(a, p_=0.5, training=True, inplace=False):
        if training and abs(float(p_) - p) < 1e-12 and tuple(a.shape[-2:]) == tuple(multiplier.shape):
            return a * multiplier
        return original(a, p_, training, inplace)

    F.dropout = dropout
    try:
        yield
    finally:
        F.dropout = original


def attention(impl, grader, inputs: dict) -> dict:
    """Each case: MultiHeadAttention(dim, heads, p) with the given weights, output for x in eval or train mode
    (train: a fixed dropout multiplier); with ``trace``, also the built-in attention kernels the calls reached."""
    import torch
    layer = impl.module(LAYER)
    checks = grader.module("test_todo1_attention")
    outputs = []
    for case in inputs["cases"]:
        try:
            m = layer.MultiHeadAttention(case["dim"], num_heads=case["heads"], attn_drop=case["p"])
            m.load_state_dict(case["state"])
            x = case["x"]
            if case["train"]:
                m.train()
                m.attn_drop = _fixed_dropout(case["p"], case["drop"])
                with torch.no_grad(), _functional_dropout_fixed(case["p"], case["drop"]):
                    out = m(x)
                outputs.append({"out": _tensor(out), "dropout_inputs": [list(s) for s in m.attn_drop.seen]})
            else:
                with torch.no_grad():
                    out = m.eval()(x)
                outputs.append({"out": _tensor(out)})
        except Exception as exc:  # noqa: BLE001 - reported, judged by the trusted side
            outputs.append({"error": f"{type(exc).__name__}: {exc}"[:500]})
    result = {"cases": outputs}
    if inputs.get("trace"):
        try:
            m = layer.MultiHeadAttention(16, num_heads=4, attn_drop=0.1)
            x = torch.randn(2, 5, 16)
            with torch.no_grad():
                _, used = checks._run_traced(lambda: m.eval()(x))
            trained, used_train = checks._run_traced(lambda: m.train()(x))
            result["builtin"] = sorted({*used, *used_train, *checks._builtin(checks._autograd_nodes(trained))})
        except Exception as exc:  # noqa: BLE001
            result["builtin_error"] = f"{type(exc).__name__}: {exc}"[:500]
    return result


def _tensor(x):
    import torch
    if not torch.is_tensor(x):
        raise TypeError(f"the forward returned {type(x).__name__}, not a tensor")
    return x.detach().to("cpu").clone()


OBSERVERS = {"attention": attention}
