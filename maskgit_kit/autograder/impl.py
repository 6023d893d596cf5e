"""The graded implementation (lab/, solutions/ or a student folder), imported through ``maskgit_kit.labtree``.

Why: the lab's modules have generic top-level names (``models``, ``utils``, ...). If another copy was imported
first, or sits elsewhere on ``sys.path``, a check could silently run someone else's code. The loader resolves
those names to the chosen folder only, and every imported module is verified to come from it.
"""
from __future__ import annotations

import traceback
from pathlib import Path

from .. import labtree
from ..labtree import REQUIRED, STUDENT_FILES  # noqa: F401  (STUDENT_FILES: for the batch tools)
from ..paths import KIT_ROOT


class ImplError(Exception):
    """The implementation folder is unusable (missing, incomplete)."""


class ImportFailure(Exception):
    """A module of the implementation cannot be imported; the message says which file and why."""


def resolve_impl(value: str | None, cwd: Path | None = None, flag: str = "--impl") -> Path:
    """``--impl`` value -> folder. Relative paths are tried from the working directory, then from the kit's root
    (so ``--impl solutions`` also works from inside grader/)."""
    value = value or "lab"
    cwd = Path.cwd() if cwd is None else cwd
    candidates = [Path(value)] if Path(value).is_absolute() else [cwd / value, KIT_ROOT / value]
    for c in candidates:
        if c.is_dir():
            root = c.resolve()
            missing = [f for f in REQUIRED if not (root / f).is_file()]
            if missing:
                raise ImplError(f"{flag} {value}: {root} is not a lab folder; missing {', '.join(missing)}")
            return root
    raise ImplError(f"{flag} {value}: folder not found (tried {', '.join(str(c) for c in candidates)})")


def _where(exc: BaseException, root: Path) -> str:
    """'file:line' of the deepest traceback frame inside the implementation, or of a SyntaxError."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{_rel(exc.filename, root)}:{exc.lineno}"
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if labtree.inside(frame.filename, root):
            return f"{_rel(frame.filename, root)}:{frame.lineno}"
    return ""


def _rel(filename: str, root: Path) -> str:
    try:
        return Path(filename).resolve().relative_to(root).as_posix()
    except (ValueError, OSError):
        return str(filename)


class Implementation:
    """The graded folder. ``module(name)`` imports lazily (inside a check, so its timeout and output capture
    apply) and caches the module or the failure."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.tree = labtree.activate(self.root)
        self._cache: dict[str, object] = {}

    def module(self, name: str):
        if name not in self._cache:
            self._cache[name] = self._import(name)
        found = self._cache[name]
        if isinstance(found, ImportFailure):  # a fresh exception per check; -v shows the original traceback
            raise ImportFailure(str(found)) from found.__cause__
        return found

    def _import(self, name: str):
        try:
            return self.tree.module(name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SyntaxError, SystemExit, anything raised at import time
            where = _where(exc, self.root)
            file = name.replace(".", "/") + ".py"
            failure = ImportFailure(f"{file} cannot be imported: {type(exc).__name__}: {exc}"
                                    + (f" (at {where})" if where else ""))
            failure.__cause__ = exc
            return failure

    def where(self, exc: BaseException) -> str:
        return _where(exc, self.root)

    def rel(self, filename: str) -> str:
        return _rel(filename, self.root)
