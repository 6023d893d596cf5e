"""How a check states a failure: what was checked, what was expected, what was found, and a hint.

Checks raise ``CheckFailure`` (an ``AssertionError``) through ``expect``; the report turns it into the
student's one- or two-line feedback.
"""
from __future__ import annotations

import torch


class CheckFailure(AssertionError):
    def __init__(self, what: str, expected, found, hint: str = ""):
        self.what, self.expected, self.found, self.hint = what, expected, found, hint
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.what}: expected {self.expected}, found {self.found}"


def expect(ok, what: str, expected, found, hint: str = "") -> None:
    """Fail the check with a readable message unless ``ok``."""
    if not ok:
        raise CheckFailure(what, expected, found, hint)


def short(x, limit: int = 80) -> str:
    """A compact description of a value for a failure message."""
    if isinstance(x, torch.Tensor):
        text = f"tensor {tuple(x.shape)} {str(x.dtype).replace('torch.', '')}"
        if x.numel() <= 8:
            text += f" {x.tolist()}"
        return text
    if isinstance(x, tuple):
        return "(" + ", ".join(short(v, limit) for v in x) + ")"
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expect_tensor(x, what: str, shape=None, dtype=None, hint: str = "") -> None:
    expect(isinstance(x, torch.Tensor), what, "a torch.Tensor", short(x), hint)
    if shape is not None:
        expect(tuple(x.shape) == tuple(shape), f"{what} shape", tuple(shape), tuple(x.shape), hint)
    if dtype is not None:
        expect(x.dtype == dtype, f"{what} dtype", str(dtype).replace("torch.", ""),
               str(x.dtype).replace("torch.", ""), hint)


def unpack(result, n: int, what: str, hint: str = ""):
    """``result`` must be a tuple/list of ``n`` items (the documented return value)."""
    expect(isinstance(result, (tuple, list)) and len(result) == n, what, f"a tuple of {n} values", short(result),
           hint)
    return tuple(result)


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.detach().double() - b.detach().double()).abs().max().item()
