"""Proof that the autograder works: it fails each common bug in the right TODO only, with feedback that names the
bug; the generated lab stubs score 0 and the reference 100; its Gradescope JSON stays valid whatever the student
code does (raises at import, sys.exit, prints, loops forever, kills the process).

All submissions are graded by one ``tools/batch_grade.py`` run (one child process each, two at a time), the way
an instructor grades a class; only those the selected tests need (each mutant and variant is marked with its TODO):

    python -m pytest tests/test_grader_mutations.py -k "todo4 or reference or stubs"

grades the TODO4 mutants and variants, the reference and the stubs only (a few minutes, not 15+); ``-k todo5``
the TiTok extension's.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from grader_mutants import ENDLESS_LOOP, HARD_EXIT, IMPORT_ERROR, MUTANTS, NOISY_EXIT, VARIANTS, write_submission
from test_grader import validate_gradescope

from conftest import tool

REPO = Path(__file__).resolve().parent.parent
make_lab = tool("make_lab")
POINTS = {"TODO1": 30.0, "TODO2": 35.0, "TODO3": 35.0, "TODO4": 25.0, "TODO5": 20.0}
EXTENSIONS = ("TODO4", "TODO5")  # the extension pool, not in "score"


def run_batch(lab: Path, subs: Path, out: Path, *pytest_args: str, env=None) -> tuple[dict, Path]:
    results = out / "results"
    cmd = [sys.executable, str(REPO / "tools" / "batch_grade.py"), str(subs), "--out", str(out / "grades.csv"),
           "--base", str(lab), "--jobs", "2", "--timeout", "300", "--results-dir", str(results), "--", *pytest_args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=env)  # ~140 submissions
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out / "grades.csv", newline="") as f:
        rows = {r["submission"]: r for r in csv.DictReader(f)}
    return rows, results


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    dst = tmp_path_factory.mktemp("lab") / "lab"
    assert make_lab.main(["--dst", str(dst)]) == 0
    return dst


def by_todo(changes) -> list:
    """Parameters named after each change, marked with its TODO (``-k todo4`` selects TODO4's)."""
    return [pytest.param(c, id=c.name, marks=getattr(pytest.mark, c.todo.lower())) for c in changes]


def needed(request) -> set[str]:
    """The submissions the selected tests of this file use (every one in a whole run)."""
    names = set()
    for item in request.session.items:
        if item.module is not request.module:
            continue
        names |= {v.name for v in getattr(getattr(item, "callspec", None), "params", {}).values() if hasattr(v, "name")}
        names |= {m.name for m, test in ((NOISY_EXIT, test_student_prints_and_sys_exit_do_not_break_the_results),
                                         (IMPORT_ERROR, test_import_error_is_a_clear_failure_not_a_crash))
                  if item.name == test.__name__}
    return names


@pytest.fixture(scope="module")
def graded(lab, tmp_path_factory, request):
    """Every mutant the selected tests need, the reference and the bare stubs, graded with solutions/ on
    PYTHONPATH (it must not leak in)."""
    root = tmp_path_factory.mktemp("grading")
    subs = root / "submissions"
    write_submission(subs / "reference")
    (subs / "lab_stubs").mkdir()  # no student files: the lab's stubs are graded
    wanted = needed(request)
    for m in [*MUTANTS, *VARIANTS, NOISY_EXIT, IMPORT_ERROR]:
        if m.name in wanted:
            write_submission(subs / m.name, m)
    env = {**os.environ, "PYTHONPATH": str(REPO / "solutions")}
    return run_batch(lab, subs, root, env=env)


def load(results: Path, name: str) -> dict:
    """A kept result, validated; ``tests``: the public checks' cases, ``hidden``: the hidden checks' verdicts."""
    data = json.loads((results / f"{name}.json").read_text())
    validate_gradescope(data)
    data["hidden"] = [t for t in data["tests"] if t["max_score"] == 0]
    data["tests"] = [t for t in data["tests"] if t["max_score"] > 0]
    return data


def assert_only_todo_lost(row: dict, todo: str) -> None:
    assert float(row[todo]) < POINTS[todo], row
    core = sum(v for t, v in POINTS.items() if t not in EXTENSIONS)
    assert float(row["score"]) == (core if todo in EXTENSIONS else core - POINTS[todo] + float(row[todo])), row
    for other, full in POINTS.items():
        if other != todo:
            assert float(row[other]) == full, f"{other} lost points for a {todo} bug: {row}"


@pytest.mark.parametrize("mutant", by_todo(MUTANTS))
def test_grader_fails_mutant_in_its_todo_with_a_telling_message(graded, mutant):
    rows, results = graded
    row = rows[mutant.name]
    assert row["status"] == "ok", row
    assert_only_todo_lost(row, mutant.todo)
    failed = [t for t in load(results, mutant.name)["tests"] if t["status"] == "failed"]
    assert failed and all(t["tags"][0] == mutant.todo for t in failed)
    outputs = [t["output"] for t in failed]
    assert any(mutant.message in o for o in outputs), f"no feedback mentions {mutant.message!r}: {outputs}"
    assert all(f"see {mutant.todo}" in o for o in outputs), outputs


# Mutants whose hidden checks fail a check that their public checks pass: {name: {check: why}} (none so far).
KNOWN_DIFFERENCES: dict[str, dict[str, str]] = {}


HIDDEN = "failed the hidden form of this check"


@pytest.mark.parametrize("change", by_todo([*MUTANTS, *VARIANTS]))
def test_public_grader_predicts_the_hidden_score(graded, change):
    """A hidden check fails only a check whose public form fails too (students can trust their own run), except
    where listed. A charged check loses all its cases: a case the public run passed then says so."""
    rows, results = graded
    tests = load(results, change.name)["tests"]
    failed_publicly = {t["tags"][1].split("[")[0] for t in tests if t["status"] == "failed"
                       and not t["output"].startswith(HIDDEN)}
    charged = {t["tags"][1].split("[")[0] for t in tests if t["output"].startswith(HIDDEN)}
    assert charged - failed_publicly <= set(KNOWN_DIFFERENCES.get(change.name, {})), [
        t["output"] for t in tests if t["output"].startswith(HIDDEN)]


@pytest.mark.parametrize("mutant", by_todo([m for m in MUTANTS if m.todo in EXTENSIONS]))
def test_hidden_forms_alone_catch_each_extension_bug(graded, mutant):
    """The extension's hidden forms catch every TODO4 and TODO5 bug themselves: a child that forged a passing public
    report would still lose those extension points."""
    rows, results = graded
    caught = [h["tags"][1] for h in load(results, mutant.name)["hidden"]
              if h["tags"][0] == mutant.todo and h["status"] == "failed"]
    assert caught, f"no {mutant.todo} hidden form catches {mutant.name}"


def test_hidden_checks_pass_the_reference_and_fail_the_stubs(graded):
    rows, results = graded
    assert load(results, "reference")["hidden"] and all(h["status"] == "passed"
                                                          for h in load(results, "reference")["hidden"])
    assert all(h["status"] == "failed" for h in load(results, "lab_stubs")["hidden"])


@pytest.mark.parametrize("variant", by_todo(VARIANTS))
def test_correct_code_written_differently_scores_100(graded, variant):
    """... and the whole extension pool (a hidden form that charged it would cost TODO4 or TODO5 points)."""
    rows, results = graded
    row = rows[variant.name]
    failed = [f"{t['name']}: {t['output']}" for t in load(results, variant.name)["tests"] if t["status"] != "passed"]
    assert row["status"] == "ok" and float(row["score"]) == 100.0, "\n".join(failed) or row
    assert all(float(row[t]) == POINTS[t] for t in EXTENSIONS), "\n".join(failed) or row


def test_reference_scores_100(graded):
    rows, results = graded
    assert rows["reference"]["status"] == "ok"
    assert float(rows["reference"]["score"]) == 100.0
    data = load(results, "reference")
    core = [t for t in data["tests"] if "extension" not in t["tags"]]
    assert data["score"] == 100 and sum(t["max_score"] for t in core) == pytest.approx(100)
    assert all(float(rows["reference"][t]) == POINTS[t] for t in EXTENSIONS)  # reported beside the 100
    assert all(t["status"] == "passed" for t in data["tests"])


def test_lab_stubs_score_0_reported_once_per_todo(graded):
    rows, results = graded
    row = rows["lab_stubs"]
    assert float(row["score"]) == 0 and row["status"] == "ok"  # PYTHONPATH=solutions did not leak in
    data = load(results, "lab_stubs")
    assert all("not implemented yet" in t["output"] for t in data["tests"])
    summary = data["output"]
    for todo in POINTS:
        assert summary.count(f"{todo} not implemented yet") == 1, summary
    assert "FAIL [" not in summary  # no per-check crash lines for a TODO that is simply not done


def test_student_prints_and_sys_exit_do_not_break_the_results(graded):
    rows, results = graded
    row = rows[NOISY_EXIT.name]
    assert row["status"] == "ok"
    assert_only_todo_lost(row, "TODO1")
    assert float(row["TODO1"]) == 0
    data = load(results, NOISY_EXIT.name)
    assert "STUDENT NOISE" not in json.dumps(data)
    assert any("raised SystemExit" in t["output"] and "layer.py:" in t["output"] for t in data["tests"])
    log = (results / f"{NOISY_EXIT.name}.log").read_text()
    assert "TOTAL" in log.split("grader summary")[-1]


def test_import_error_is_a_clear_failure_not_a_crash(graded):
    rows, results = graded
    row = rows[IMPORT_ERROR.name]
    assert row["status"] == "ok"
    assert (float(row["TODO1"]), float(row["TODO2"]), float(row["TODO3"])) == (30, 0, 0)
    data = load(results, IMPORT_ERROR.name)
    failed = [t["output"] for t in data["tests"] if t["status"] == "failed"]
    assert all("cannot be imported: RuntimeError: broken at import (at models/VQGAN_Transformer.py:" in o
               for o in failed)
    assert data["output"].count("cannot be imported") == 1  # one summary line, not one per check


@pytest.fixture(scope="module")
def crashed(lab, tmp_path_factory):
    root = tmp_path_factory.mktemp("crashing")
    for m in (ENDLESS_LOOP, HARD_EXIT):
        write_submission(root / "submissions" / m.name, m)
    return run_batch(lab, root / "submissions", root, "--check-timeout", "10", "-k",
                     "test_attention_is_bidirectional or test_step_keeps_known_tokens or test_loop_fills_every_token")


def test_endless_loop_fails_only_that_check(crashed):
    rows, results = crashed
    assert rows[ENDLESS_LOOP.name]["status"] == "ok"
    data = load(results, ENDLESS_LOOP.name)
    status = {t["tags"][1]: (t["status"], t["output"]) for t in data["tests"]}
    assert status["test_attention_is_bidirectional"][0] == "passed"
    assert status["test_step_keeps_known_tokens"][0] == "passed"
    assert status["test_loop_fills_every_token"][0] == "failed"
    assert ENDLESS_LOOP.message in status["test_loop_fills_every_token"][1]


def test_killed_run_still_leaves_valid_results(crashed):
    rows, results = crashed
    assert rows[HARD_EXIT.name]["status"] == "crashed (exit 7)"
    data = load(results, HARD_EXIT.name)
    assert data["output"].startswith("GRADING INCOMPLETE")
    status = {t["tags"][1]: t["status"] for t in data["tests"]}
    assert status == {"test_attention_is_bidirectional": "passed", "test_step_keeps_known_tokens": "failed",
                      "test_loop_fills_every_token": "failed"}
    assert data["score"] == float(rows[HARD_EXIT.name]["score"]) == 4
