"""Observers: what the trusted grader asks a confined child to do with the student's code.

An observer calls the graded functions with inputs the trusted side chose (weights, tensors, seeds) and returns
what they gave back: plain data (tensors, numbers, strings, lists, dicts) that crosses the process boundary via
``torch.save`` / ``torch.load(weights_only=True)``. It judges nothing: the same observer runs on the reference in
the trusted process, and the hidden checks (``hidden_checks/``, instructor-only) compare the two. A student who
reads this code learns what is called, never what is expected.

``OBSERVERS`` maps a name to ``fn(impl, grader, inputs) -> dict``; ``grader`` loads the public check helpers
(``_tiny``, ``_standins``, ``test_*``) from the grader folder given to the child.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


class Grader:
    """The public grader folder's helper modules, loaded by path (``_tiny``, ``_standins``, a ``test_*`` file).

    The check files import ``_tiny`` and ``_standins`` by top-level name; these are registered under those names
    first (as pytest would find them), so loading a check file here and pytest's own import agree."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def module(self, name: str):
        if name in sys.modules and Path(getattr(sys.modules[name], "__file__", "") or "").parent == self.folder:
            return sys.modules[name]
        for dep in ("_tiny", "_standins"):
            if dep != name and name.startswith("test_") and dep not in sys.modules:
                self.module(dep)
        spec = importlib.util.spec_from_file_location(name, self.folder / f"{name}.py")
        if spec is None or spec.loader is None:
            raise ImportError(f"{self.folder / name}.py: not found")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return mod


def _registry() -> dict:
    from . import todo1, todo2, todo3, todo4, todo5
    found = {}
    for mod in (todo1, todo2, todo3, todo4, todo5):
        found.update(getattr(mod, "OBSERVERS", {}))
    return found


def observer(name: str):
    table = _registry()
    if name not in table:
        raise KeyError(f"unknown observer {name!r} (known: {', '.join(sorted(table))})")
    return table[name]
