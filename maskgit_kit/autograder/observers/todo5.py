"""Observers of TODO5 (the TiTok 1D tokenizer extension): TiTok.encode_latents, decoder_input and proxy_code_loss
(see __init__.py).

One observer calls the three methods on a tiny TiTok of the sizes and weights the trusted side chose (the grader's
attention in its blocks, eval mode), one call per case, and returns what came back, the case's inputs as they were
after the call, and which parameters the call changed.
"""
from __future__ import annotations

from .common import guarded as _guarded
from .common import plain as _plain

TITOK = "models.TiTok"


def _changed(model, state: dict) -> list[str]:
    import torch
    return [k for k, v in model.state_dict().items() if k in state and not torch.equal(v.detach().cpu(), state[k])]


def calls(impl, grader, inputs: dict) -> dict:
    """Each case: ``encode_latents(x)``, ``decoder_input(x)`` or ``proxy_code_loss(x, codes)`` (``x`` float, or
    bfloat16, with a gradient when ``grad``) on the student's TiTok with ``inputs["state"]``; the output(s), the
    inputs after the call, the parameters changed, and for ``grad`` the gradient of the loss w.r.t. ``x``."""
    import pytest
    import torch
    with pytest.MonkeyPatch.context() as mp:
        grader.module("_standins").use(mp, impl, "attention")
        mod = impl.module(TITOK)
        model = mod.TiTok(mod.TiTokConfig(**inputs["config"])).eval()
        model.load_state_dict(inputs["state"])

        def one(case):
            model.load_state_dict(case.get("state") or inputs["state"])
            x = case["x"].clone().requires_grad_(bool(case.get("grad")))
            out = {}
            if case["call"] == "loss":
                codes = case["codes"].clone()
                result = model.proxy_code_loss(x, codes)
                if not isinstance(result, (tuple, list)) or len(result) != 2:
                    raise TypeError(f"proxy_code_loss returned {type(result).__name__}, not (loss, logits)")
                loss, logits = result
                out = {"loss": _plain(loss), "loss_dtype": str(getattr(loss, "dtype", "")),
                       "logits": _plain(logits), "codes_after": _plain(codes)}
                if case.get("grad"):
                    out["requires_grad"] = bool(getattr(loss, "requires_grad", False))
                    if out["requires_grad"] and loss.numel() == 1:
                        loss.backward()
                    out["grad"] = None if x.grad is None else _plain(x.grad)
            else:
                with torch.no_grad():
                    fn = model.encode_latents if case["call"] == "encode" else model.decoder_input
                    out = {"out": _plain(fn(x)).float()}
            out["x_after"] = _plain(x)
            out["changed"] = _changed(model, case.get("state") or inputs["state"])
            return out
        return {"cases": [_guarded(one, case) for case in inputs["cases"]]}


OBSERVERS = {"todo5_calls": calls}
