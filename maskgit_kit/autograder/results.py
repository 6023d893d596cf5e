"""Results of one grading run: per-check records, the summary table and Gradescope's results.json.

Gradescope fields (its autograder specification): top level ``score``, ``execution_time``, ``output``,
``visibility``, ``stdout_visibility``, ``tests``; per test ``name``, ``score``, ``max_score``, ``status``,
``output``, ``tags``, ``visibility``, ``number``.

The extension pool (``todos.py``: TODO4) is reported beside the core score, never inside it: ``total()``, the
TOTAL row and Gradescope's ``score`` are the core pool's; the table adds an EXTENSION row, and each extension test
carries the tag ``extension``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_json as _atomic_write_json
from .feedback import Feedback
from .todos import CORE

INCOMPLETE = "GRADING INCOMPLETE: the run stopped (crash, kill or interrupt) before every check had run; " \
             "checks not run score 0"


@dataclass
class Record:
    check: str              # test function name
    case: str               # parametrization id ("" when none)
    title: str              # what is checked (the test's docstring, first line)
    max_score: float
    status: str = "not run"  # passed | failed | not run
    feedback: Feedback | None = None
    todo: str = ""          # the check's TODO and the function to look at (its @points declaration)
    where: str = ""
    pool: str = CORE        # "core" or "extension" (its file's POOL)

    @property
    def score(self) -> float:
        return self.max_score if self.status == "passed" else 0.0

    @property
    def check_id(self) -> str:
        return self.check + (f"[{self.case}]" if self.case else "")

    @property
    def label(self) -> str:
        return self.title + (f" [{self.case}]" if self.case else "")


@dataclass
class Results:
    impl: str
    titles: dict[str, str] = field(default_factory=dict)  # TODO -> its title, in order (todos.json)
    start: float = field(default_factory=time.time)
    records: dict[str, Record] = field(default_factory=dict)  # by pytest node id
    notes: list[str] = field(default_factory=list)  # run-level problems (collection errors, ...)

    def add(self, nodeid: str, record: Record) -> None:
        self.records[nodeid] = record

    def total(self, pool: str = CORE) -> tuple[float, float]:
        """(earned, possible) of one pool (the core pool: the course's score)."""
        recs = [r for r in self.records.values() if r.pool == pool]
        return sum(r.score for r in recs), sum(r.max_score for r in recs)

    # -- text ---------------------------------------------------------------------------------------------
    def failure_lines(self) -> list[str]:
        """Each failed check in one or two lines; a TODO that is not implemented once, however many checks."""
        lines, missing, unimportable, not_run = [], {}, {}, []
        for r in self.records.values():
            if r.status == "passed":
                continue
            if r.status == "not run":
                not_run.append(r)
                continue
            fb = r.feedback
            if fb is not None and fb.kind == "missing" and fb.blocker == r.todo:
                stubs, checks = missing.setdefault(r.todo, ({}, []))
                stubs[fb.stub] = True
                checks.append(r)
                continue
            if fb is not None and fb.kind == "import":  # one line per import error, however many checks
                files, checks = unimportable.setdefault(fb.blocker, ({}, []))
                files[fb.stub] = True
                checks.append(r)
                continue
            lines.append(f"FAIL [{r.todo}] {r.check_id}: {fb.text if fb else 'failed'}")
            if fb and fb.hint:
                lines.append(f"     hint: {fb.hint}")
        head = [f"{todo} not implemented yet (stub{'s' if len(stubs) > 1 else ''}: {', '.join(stubs)}) -- "
                f"{_count(checks)}, {_num(sum(r.max_score for r in checks))} points to earn"
                for todo, (stubs, checks) in sorted(missing.items())]
        for reason, (files, checks) in unimportable.items():
            todos = sorted({r.todo for r in checks})
            head.append(f"FAIL {', '.join(files)} cannot be imported: {reason} -- {_count(checks)} of "
                        f"{', '.join(todos)} fail")
        if not_run:
            lines.append(f"NOT RUN: {_count(not_run)} (the run stopped before them), "
                         f"{_num(sum(r.max_score for r in not_run))} points")
        return [*self.notes, *head, *lines]

    def table(self) -> list[str]:
        """Per TODO of the core pool, the TOTAL row (the score); then the extension's TODOs and EXTENSION row."""
        groups = {}
        for pool in dict.fromkeys([CORE, *(r.pool for r in self.records.values())]):
            rows = []
            for todo, title in self.titles.items():
                recs = [r for r in self.records.values() if r.todo == todo and r.pool == pool]
                if recs:
                    passed = sum(r.status == "passed" for r in recs)
                    rows.append((todo, title, f"{passed}/{len(recs)}",
                                 f"{_num(sum(r.score for r in recs))}/{_num(sum(r.max_score for r in recs))}"))
            recs = [r for r in self.records.values() if r.pool == pool]
            if not recs and (pool != CORE or len(self.records)):  # e.g. --todo TODO4: no core TOTAL row
                continue
            earned, possible = self.total(pool)
            passed = sum(r.status == "passed" for r in recs)
            rows.append(("TOTAL" if pool == CORE else pool.upper(), "" if pool == CORE else "(not in the total)",
                         f"{passed}/{len(recs)}", f"{_num(earned)}/{_num(possible)}"))
            groups[pool] = rows
        header = ("TODO", "part", "checks", "points")
        widths = [max(len(str(row[i])) for row in [header, *(r for g in groups.values() for r in g)])
                  for i in range(4)]
        fmt = "{:<%d}  {:<%d}  {:>%d}  {:>%d}" % tuple(widths)
        rule = fmt.format(*("-" * w for w in widths))
        out = [fmt.format(*header), rule]
        for i, rows in enumerate(groups.values()):
            if i:
                out.append("")
            out += [fmt.format(*row) for row in rows[:-1]]
            out += [rule, fmt.format(*rows[-1])]
        return out

    def summary(self) -> str:
        lines = [f"MaskGIT lab grader -- graded folder: {self.impl}"]
        failures = self.failure_lines()
        if failures:
            lines += ["", *failures]
        lines += ["", *self.table()]
        return "\n".join(lines)

    # -- Gradescope --------------------------------------------------------------------------------------
    def gradescope(self, final: bool = True) -> dict:
        """``final=False``: a progress snapshot, marked incomplete in case the run dies before the end."""
        tests, per_todo = [], {}
        for r in self.records.values():
            per_todo[r.todo] = per_todo.get(r.todo, 0) + 1
            if r.status == "passed":
                output = "passed"
            elif r.feedback is None:
                output = "not run (the grader stopped before this check)"
            else:
                output = r.feedback.text + (f"\nhint: {r.feedback.hint}" if r.feedback.hint else "")
            tests.append({"name": f"{r.todo} {r.label}", "score": round(r.score, 4),
                          "max_score": round(r.max_score, 4), "status": "passed" if r.status == "passed" else "failed",
                          "output": output, "tags": [r.todo, r.check_id, *([r.pool] if r.pool != CORE else [])],
                          "visibility": "visible",
                          "number": f"{r.todo[4:]}.{per_todo[r.todo]}"})
        earned, _ = self.total()
        complete = final and all(r.status != "not run" for r in self.records.values())
        output = self.summary() if complete else f"{INCOMPLETE}\n\n{self.summary()}"
        return {"score": round(earned, 4), "execution_time": round(time.time() - self.start, 2),
                "output": output, "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def _count(checks: list) -> str:
    return f"{len(checks)} check{'s' if len(checks) != 1 else ''}"


def _num(x: float) -> str:
    return f"{x:g}" if abs(x - round(x)) < 1e-9 else f"{x:.2f}"


def write_json(path: Path, data: dict) -> None:
    """Atomic: a reader never sees half a file, even if the run dies."""
    _atomic_write_json(path, data, allow_nan=True)
