"""What the observers share: a returned tensor made plain, and a call whose exception becomes a reported error."""
from __future__ import annotations


def plain(x):
    """A tensor returned by student code, as a plain CPU tensor (anything else is an error)."""
    import torch
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"returned a {type(x).__name__}, not a tensor")
    return x.detach().to("cpu").clone().as_subclass(torch.Tensor)


def guarded(fn, *args) -> dict:
    """``fn(*args)``, or ``{"error": ...}`` when it raises (the trusted side judges the error)."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - reported, judged by the trusted side
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}
