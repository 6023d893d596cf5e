"""Turn whatever ended a check into short feedback a student can act on.

Kinds: ``check`` (a wrong result, with expected/found), ``missing`` (a stub's ``NotImplementedError("TODOn: ...")``:
reported once per TODO, not as a crash), ``import`` (a file does not import), ``timeout`` and ``crash`` (the
student's code raised; the message points at the line in their file).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .impl import ImportFailure

TODO_RE = re.compile(r"^\s*(TODO\d+)\b")


@dataclass
class Feedback:
    kind: str          # check | missing | import | timeout | crash
    text: str          # one line
    hint: str = ""     # second line (may be empty)
    blocker: str = ""  # for kind "missing": the TODO whose stub was hit
    stub: str = ""     # ... and the stubbed function


def is_timeout(exc: BaseException) -> bool:
    return type(exc).__name__ in ("Failed", "CheckTimeout") and "Timeout" in str(exc)


def describe(exc: BaseException, todo: str, where_to_look: str, impl) -> Feedback:
    """``todo``/``where_to_look``: the check's TODO and function (its @points); ``impl``: the Implementation."""
    from .check import CheckFailure  # imports torch: not needed before the first check

    see = f"see {todo}: {where_to_look}"
    if isinstance(exc, CheckFailure):
        return Feedback("check", exc.line(), f"{exc.hint} ({see})" if exc.hint else see)
    if isinstance(exc, NotImplementedError) and TODO_RE.match(str(exc)):
        blocker = TODO_RE.match(str(exc)).group(1)
        parts = [p.strip() for p in str(exc).split(":")]
        stub = parts[1] if len(parts) > 2 else str(exc).strip()  # "TODO2: mask_tokens: ..." -> "mask_tokens"
        text = f"{blocker} not implemented yet ({stub} raises NotImplementedError)"
        if blocker != todo:
            text = f"needs {blocker} first: {text}"
        return Feedback("missing", text, "", blocker, stub)
    if isinstance(exc, ImportFailure):
        file, _, reason = str(exc).partition(" cannot be imported: ")
        return Feedback("import", str(exc), see, blocker=reason or str(exc), stub=file)
    if is_timeout(exc):
        return Feedback("timeout", f"did not finish in time ({str(exc).strip().splitlines()[0]}); an endless loop?",
                        see)
    where = impl.where(exc) if impl is not None else ""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__ + (f": {message}" if message else "")
    if where:
        return Feedback("crash", f"your code raised {name} (at {where})", see)
    return Feedback("crash", f"the check could not use what your code returned: {name}", see)
