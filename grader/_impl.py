"""Import the graded implementation (lab/, solutions/ or a student folder) in isolation.

Why: the lab's modules have generic top-level names (``models``, ``utils``, ...). If another copy was imported
first, or sits elsewhere on ``sys.path``, a check could silently run someone else's code. So the chosen folder
goes first on ``sys.path``, other implementation folders are taken off it, previously imported modules of those
names are purged, and every imported module is verified to come from the chosen folder.
"""
from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

TOP_LEVEL = ("models", "utils", "inpainting", "training_transformer", "token_cache")
STUDENT_FILES = ("models/Transformer/modules/layer.py", "models/VQGAN_Transformer.py", "training_transformer.py",
                 "inpainting.py")
REQUIRED = (*STUDENT_FILES, "utils.py", "models/config.py", "models/checkpoint.py")
GRADER_DIR = Path(__file__).resolve().parent
REPO_ROOT = GRADER_DIR.parent


class ImplError(Exception):
    """The implementation folder is unusable (missing, incomplete)."""


class ImportFailure(Exception):
    """A module of the implementation cannot be imported; the message says which file and why."""


def resolve_impl(value: str | None, cwd: Path | None = None, flag: str = "--impl") -> Path:
    """``--impl`` value -> folder. Relative paths are tried from the working directory, then from the repo root
    (so ``--impl solutions`` also works from inside grader/)."""
    value = value or "lab"
    cwd = Path.cwd() if cwd is None else cwd
    candidates = [Path(value)] if Path(value).is_absolute() else [cwd / value, REPO_ROOT / value]
    for c in candidates:
        if c.is_dir():
            root = c.resolve()
            missing = [f for f in REQUIRED if not (root / f).is_file()]
            if missing:
                raise ImplError(f"{flag} {value}: {root} is not a lab folder; missing {', '.join(missing)}")
            return root
    raise ImplError(f"{flag} {value}: folder not found (tried {', '.join(str(c) for c in candidates)})")


def purge_modules(names=TOP_LEVEL) -> None:
    for mod in list(sys.modules):
        if mod.split(".")[0] in names:
            del sys.modules[mod]


def _is_other_impl(entry: str, root: Path) -> bool:
    try:
        p = Path(entry or ".").resolve()
    except OSError:
        return False
    return p != root and ((p / "models" / "VQGAN_Transformer.py").is_file() or (p / "inpainting.py").is_file())


def activate(root: Path) -> None:
    """Make ``root`` the only implementation importable in this process."""
    purge_modules()
    sys.path[:] = [e for e in sys.path if not _is_other_impl(e, root)]
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()


def _where(exc: BaseException, root: Path) -> str:
    """'file:line' of the deepest traceback frame inside the implementation, or of a SyntaxError."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{_rel(exc.filename, root)}:{exc.lineno}"
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if _inside(frame.filename, root):
            return f"{_rel(frame.filename, root)}:{frame.lineno}"
    return ""


def _inside(filename: str, root: Path) -> bool:
    try:
        Path(filename).resolve().relative_to(root)
        return True
    except (ValueError, OSError):
        return False


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
            mod = importlib.import_module(name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SyntaxError, SystemExit, anything raised at import time
            where = _where(exc, self.root)
            file = name.replace(".", "/") + ".py"
            failure = ImportFailure(f"{file} cannot be imported: {type(exc).__name__}: {exc}"
                                    + (f" (at {where})" if where else ""))
            failure.__cause__ = exc
            return failure
        origin = getattr(mod, "__file__", None)
        if origin is None or not _inside(origin, self.root):
            return ImportFailure(f"module {name} came from {origin}, not from the graded folder {self.root}")
        return mod

    def where(self, exc: BaseException) -> str:
        return _where(exc, self.root)

    def rel(self, filename: str) -> str:
        return _rel(filename, self.root)
