"""The watchdog of ``pytest grader/`` (maskgit_kit/autograder/watchdog.py): a check whose code defeats the
in-process time limit, or ends the grader process, cuts the run with a non-zero exit code and a summary that says
so, instead of hanging it or ending it with exit code 0 and no summary.

Each test grades a copy of solutions/ whose TODO3 ``inpainting_step`` starts with hostile code, in a real
``python -m pytest grader/`` process, on three checks: a TODO1 check that passes (4 points), then the hostile
check (3 points), then one more (3 points).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from grader_mutants import STEP_BODY
from mutation_kit import MODEL, SOLUTIONS
from test_grader import LEAN, validate_gradescope

REPO = Path(__file__).resolve().parent.parent
GRADER = REPO / "grader"
CHECKS = "test_attention_is_bidirectional or test_step_keeps_known_tokens or test_loop_fills_every_token"
CUT = "grader/test_todo3_step.py::test_step_keeps_known_tokens"  # its node id (rootdir: the repo)
LIMIT = 3  # --check-timeout: the watchdog allows 3 + 5 s of grace
CATCH_ALL = """\
while True:
    try:
        while True:
            pass
    except BaseException:  # swallows pytest-timeout's exception, and Ctrl-C
        pass
"""
NO_ALARM = """\
import signal
signal.setitimer(signal.ITIMER_REAL, 0)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
while True:
    pass
"""


def hostile_copy(tmp_path: Path, body: str) -> Path:
    copy = tmp_path / "submission"
    shutil.copytree(SOLUTIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    model = copy / MODEL
    text = model.read_text()
    assert text.count(STEP_BODY) == 1, "the reference changed: update STEP_BODY in grader_mutants.py"
    model.write_text(text.replace(STEP_BODY, textwrap.indent(body, " " * 8) + STEP_BODY))
    return copy


def grade(tmp_path: Path, impl: Path, *args: str, env=None, embedded: bool = False, watched: bool = True):
    """(process, seconds, results.json) of a grader run in ``tmp_path`` with its own TMPDIR (for the scratch
    folders, which the grader process, or when it was cut the watchdog, removes)."""
    out, scratch = tmp_path / "results.json", tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    pytest_args = [str(GRADER), "--impl", str(impl), "--gradescope", str(out), *args, *LEAN, "-p", "no:benchmark"]
    cmd = [sys.executable, "-m", "pytest", *pytest_args]
    if embedded:  # pytest.main called by another program: the grader must not fork a supervisor there
        cmd = [sys.executable, "-c", f"import sys, pytest; sys.exit(pytest.main({pytest_args!r}))"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "TMPDIR": str(scratch), **(env or {})})
    seconds = time.monotonic() - t0
    left = list(scratch.glob("maskgit-grader-*"))
    assert not left if watched else left, "the scratch folders were left behind" if watched else "no scratch?"
    return proc, seconds, json.loads(out.read_text())


def by_check(data: dict) -> dict:
    return {t["tags"][1]: (t["status"], t["output"]) for t in data["tests"]}


def assert_cut(proc, data: dict, reason: str, feedback: str, code: int = 3) -> None:
    log = proc.stdout + proc.stderr
    assert proc.returncode == code, log
    assert "grader run cut short" in proc.stdout and f"grader run cut short: {reason}" in proc.stdout, log
    assert "graded so far: 1 of 3 checks finished, 4/10 points" in proc.stdout, log
    assert "TOTAL" in proc.stdout.split("grader run cut short")[-1], log  # the table comes after the cut line
    validate_gradescope(data)
    assert data["output"].startswith("GRADING INCOMPLETE") and reason in data["output"]
    assert data["score"] == 4
    checks = by_check(data)
    assert checks["test_attention_is_bidirectional"] == ("passed", "passed")  # graded before the cut: kept
    assert checks["test_step_keeps_known_tokens"][0] == "failed"
    assert feedback in checks["test_step_keeps_known_tokens"][1], checks
    assert checks["test_loop_fills_every_token"] == ("failed", "not run (the grader stopped before this check)")


@pytest.mark.parametrize("body", [CATCH_ALL, NO_ALARM], ids=["catches_BaseException", "cancels_the_alarm"])
def test_a_check_the_in_process_limit_cannot_stop_is_cut_from_outside(tmp_path, body):
    proc, seconds, data = grade(tmp_path, hostile_copy(tmp_path, body), "--check-timeout", str(LIMIT), "-k", CHECKS)
    assert seconds < 120, f"the run took {seconds:.0f} s"  # 3 + 5 s for the cut check, plus start-up
    assert_cut(proc, data, f"{CUT} did not finish within 8 s", "the in-process time limit could not stop it")


@pytest.mark.parametrize(("body", "code", "reason"), [
    ("import os\nos._exit(0)\n", 3, "the grader process ended early (exit code 0"),
    ("import os\nos._exit(7)\n", 7, "the grader process ended early (exit code 7"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", 3, "the grader process was killed by SIGKILL"),
], ids=["os_exit_0", "os_exit_7", "sigkill"])
def test_a_grader_process_that_ends_during_a_check_is_reported_as_cut(tmp_path, body, code, reason):
    proc, _, data = grade(tmp_path, hostile_copy(tmp_path, body), "-k", CHECKS)
    assert_cut(proc, data, reason, "during this check", code)
    assert f"during {CUT}" in proc.stdout.split("grader run cut short")[-1]


@pytest.mark.parametrize("how", ["switched_off", "embedded"])
def test_no_watchdog_when_switched_off_or_when_pytest_is_embedded(tmp_path, how):
    """MASKGIT_GRADER_WATCHDOG=0, or pytest.main called by a program: the in-process behaviour (here: os._exit(0)
    ends the run with exit code 0 and no summary, which is what the watchdog is for)."""
    env = {"MASKGIT_GRADER_WATCHDOG": "0"} if how == "switched_off" else None
    impl = hostile_copy(tmp_path, "import os\nos._exit(0)\n")
    proc, _, data = grade(tmp_path, impl, "-k", CHECKS, env=env, embedded=how == "embedded", watched=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "grader run cut short" not in proc.stdout and "TOTAL" not in proc.stdout
    assert data["output"].startswith("GRADING INCOMPLETE")  # the last progress snapshot


def test_a_correct_copy_passes_through_the_watchdog_unchanged(tmp_path):
    proc, _, data = grade(tmp_path, SOLUTIONS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cut short" not in proc.stdout + proc.stderr
    assert "100/100" in proc.stdout
    assert re.fullmatch(r"=+ [0-9]+ passed in [0-9.]+s =+", proc.stdout.rstrip().splitlines()[-1])  # only passes, last
    validate_gradescope(data)
    assert data["score"] == 100 and not data["output"].startswith("GRADING INCOMPLETE")


def test_pytests_exit_code_is_passed_through(tmp_path):
    """Failed checks: pytest's exit code 1, and the grader's summary, as without the watchdog."""
    proc, _, data = grade(tmp_path, REPO / "lab", "-k", "test_attention_is_bidirectional")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cut short" not in proc.stdout and "TODO1 not implemented yet" in proc.stdout
    assert data["score"] == 0 and not data["output"].startswith("GRADING INCOMPLETE")
