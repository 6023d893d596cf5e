"""Load a lab-layout tree (``lab/``, ``solutions/``, a student's folder) by path: the kit's one explicit loader.

Why: the course's files import each other by generic top-level names (``models``, ``utils``, ``inpainting``,
...). A tool, the benchmark or the grader that needs those modules must say *which* tree it means, and must
never run another copy that happens to sit on ``sys.path``. ``activate(root)`` installs an import finder, first
in ``sys.meta_path``, that resolves exactly the top-level modules and packages found in ``root`` to ``root``;
modules of those names imported earlier (from any tree) are dropped. ``sys.path`` is not touched.

    tree = activate("solutions")
    MaskGit = tree.module("models.VQGAN_Transformer").MaskGit      # or: from models.VQGAN_Transformer import ...
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from pathlib import Path
from types import ModuleType

STUDENT_FILES = ("models/Transformer/modules/layer.py", "models/VQGAN_Transformer.py", "training_transformer.py",
                 "inpainting.py", "models/Transformer/class_conditional.py",  # TODO4 (an extension)
                 "models/TiTok/titok.py")  # TODO5 (an extension)
REQUIRED = (*STUDENT_FILES, "utils.py", "models/config.py", "models/checkpoint.py")


class LabTreeError(Exception):
    """The folder is not a lab-layout tree (missing, or without the course's files)."""


def top_level_names(root: Path) -> set[str]:
    """The importable top-level names a tree provides: its ``*.py`` files and folders with ``__init__.py``."""
    names = {p.stem for p in root.glob("*.py")}
    names |= {p.parent.name for p in root.glob("*/__init__.py")}
    return names


def check_tree(root: str | Path, flag: str = "folder") -> Path:
    """``root`` resolved, or ``LabTreeError`` naming what is missing."""
    path = Path(root)
    if not path.is_dir():
        raise LabTreeError(f"{flag} {root}: folder not found")
    path = path.resolve()
    missing = [f for f in REQUIRED if not (path / f).is_file()]
    if missing:
        raise LabTreeError(f"{flag} {root}: {path} is not a lab folder; missing {', '.join(missing)}")
    return path


class _TreeFinder(importlib.abc.MetaPathFinder):
    def __init__(self, root: Path, names: set[str]):
        self.root, self.names = root, names

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.names:  # submodules resolve through their package's __path__ (inside root)
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [str(self.root)])


def _purge(names: set[str]) -> None:
    for mod in list(sys.modules):
        if mod.split(".")[0] in names:
            del sys.modules[mod]


def inside(filename: str | None, root: Path) -> bool:
    if not filename:
        return False
    try:
        Path(filename).resolve().relative_to(root)
        return True
    except (ValueError, OSError):
        return False


class LabTree:
    """An activated tree: ``module(name)`` imports ``name`` from it and checks where the module came from."""

    def __init__(self, root: Path, names: set[str]):
        self.root, self.names = root, names

    def module(self, name: str) -> ModuleType:
        mod = importlib.import_module(name)
        origin = getattr(mod, "__file__", None)
        if not inside(origin, self.root):
            raise ImportError(f"module {name} came from {origin}, not from the lab tree {self.root}")
        return mod


def deactivate() -> None:
    """Remove the finder and every module it loaded."""
    for finder in [f for f in sys.meta_path if isinstance(f, _TreeFinder)]:
        sys.meta_path.remove(finder)
        _purge(finder.names)
    importlib.invalidate_caches()


def activate(root: str | Path, flag: str = "folder") -> LabTree:
    """Make ``root`` the one lab tree importable in this process (replacing any tree activated before)."""
    path = check_tree(root, flag)
    active = [f for f in sys.meta_path if isinstance(f, _TreeFinder)]
    if active and active[0].root == path:  # already the active tree: keep its modules (and their classes)
        return LabTree(path, active[0].names)
    deactivate()
    names = top_level_names(path)
    _purge(names)
    sys.meta_path.insert(0, _TreeFinder(path, names))
    importlib.invalidate_caches()
    return LabTree(path, names)
