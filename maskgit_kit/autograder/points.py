"""Points are declared beside each check, and the plugin reads them when pytest collects the grader.

    TODO = "TODO2"                                  # at the top of grader/test_todo2_*.py: the checks' TODO

    @points(3, "MaskGit.mask_tokens")               # 3 points; where the student should look when it fails
    def test_mask_tokens_counts(impl): ...

``@points(n, where, todo="TODO3")`` overrides the module's TODO; ``POOL = "extension"`` at the top of a file
puts its checks in the extension pool (reported beside the core 100, never inside it; see ``todos.py``). A
parametrized check's points are shared evenly between its cases. A check with no points (or two declarations) is a
collection error naming it. The core total (100: TODO1 30, TODO2 35, TODO3 35) is enforced by
``tests/test_grader.py``; ``python tools/make_lab.py`` turns the declarations into ``todos.json`` and the tables of
grader/README.md.
"""
from __future__ import annotations

import re

import pytest

from .todos import CORE, POOLS, Check

MARK = "points"
MARK_HELP = "points(n, where, todo=None): what a grader check is worth and the function to look at when it fails"
TODO_ID = re.compile(r"TODO\d+")


class PointsError(Exception):
    """A check's points are missing or malformed; the message names the check."""


def _problem(value, where, todo) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"points must be a positive integer, got {value!r}"
    if not isinstance(where, str) or not where.strip():
        return f"'where' must name the function to look at, got {where!r}"
    if todo is not None and not (isinstance(todo, str) and TODO_ID.fullmatch(todo)):
        return f"todo must look like 'TODO1', got {todo!r}"
    return ""


def points(value: int, where: str, *, todo: str | None = None):
    """Decorator: the check is worth ``value`` points; ``where`` is the TODO function its feedback points to."""
    problem = _problem(value, where, todo)
    if problem:
        raise ValueError(f"@points({value!r}, {where!r}): {problem}")
    return getattr(pytest.mark, MARK)(value, where, todo=todo)


def check_of(item) -> Check:
    """The declaration of a collected check (a pytest Function item)."""
    name = getattr(item, "originalname", item.name)
    marks = list(item.iter_markers(MARK))
    if not marks:
        raise PointsError(f"{item.nodeid}: no points declared for {name}: put @points(n, \"function to look at\") "
                          "(from maskgit_kit.autograder.points import points) above it")
    if len(marks) > 1:
        raise PointsError(f"{item.nodeid}: {name} declares its points {len(marks)} times; keep one @points")
    mark = marks[0]
    if len(mark.args) != 2 or set(mark.kwargs) - {"todo"}:
        raise PointsError(f"{item.nodeid}: {name}: expected @points(n, where[, todo=...]), got "
                          f"args {mark.args!r}, kwargs {mark.kwargs!r}")
    value, where = mark.args
    todo = mark.kwargs.get("todo") or getattr(item.module, "TODO", None)
    problem = _problem(value, where, todo)
    if problem:
        raise PointsError(f"{item.nodeid}: {name}: {problem}")
    if todo is None:
        raise PointsError(f"{item.nodeid}: {name}: which TODO? set TODO = \"TODOn\" at the top of "
                          f"{item.path.name} or pass todo= to @points")
    pool = getattr(item.module, "POOL", CORE)
    if pool not in POOLS:
        raise PointsError(f"{item.nodeid}: {name}: POOL = {pool!r} in {item.path.name}: expected one of "
                          f"{', '.join(POOLS)}")
    doc = (item.function.__doc__ or name).strip().splitlines()[0].rstrip(".")
    return Check(name, todo, value, where.strip(), doc, item.path.name, pool=pool)
