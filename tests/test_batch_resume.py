"""tools/batch_grade.py resumes: a re-run grades only new or changed submissions (keyed by the content of their
student files and of the grader), keeps the other rows as they were, and --regrade grades everything again."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from mutation_kit import write_submission

REPO = Path(__file__).resolve().parent.parent
SELECT = ["--", "-k", "test_attention_is_bidirectional or test_gamma_values"]  # a small public selection: fast


def run(subs: Path, out: Path, *extra: str) -> tuple[str, dict]:
    cmd = [sys.executable, str(REPO / "tools" / "batch_grade.py"), str(subs), "--out", str(out), "--base",
           str(REPO / "lab"), "--seed", "5", *extra, *SELECT]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out, newline="") as f:
        return proc.stdout, {r["submission"]: r for r in csv.DictReader(f)}


def test_rerun_grades_only_what_changed(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "grades.csv"
    write_submission(subs / "alice")
    (subs / "bob").mkdir()  # the stubs
    first, rows = run(subs, out)
    assert "0 unchanged since their kept results, 2 to grade" in first
    assert float(rows["alice"]["score"]) > 0 and float(rows["bob"]["score"]) == 0
    again, rows_again = run(subs, out)
    assert "2 unchanged since their kept results, 0 to grade" in again
    assert rows_again == rows  # the very same rows, seconds and seeds included
    write_submission(subs / "bob")  # bob hands in the reference: only bob is graded again
    changed, rows_changed = run(subs, out)
    assert "1 unchanged since their kept results, 1 to grade" in changed
    assert rows_changed["alice"] == rows["alice"] and rows_changed["bob"]["score"] == rows["alice"]["score"]
    _, regraded = run(subs, out, "--regrade")
    assert regraded["alice"]["key"] == rows["alice"]["key"] and regraded["alice"]["score"] == rows["alice"]["score"]
    kept = tmp_path / "grades-results"
    assert (kept / "alice.json").is_file() and (kept / "bob.log").is_file()
