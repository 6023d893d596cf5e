"""Grading an extension pool's mutants with the public grader, shared by test_grader_todo4.py and
test_grader_todo5.py: a fresh lab per change, the change's own TODO's checks only (the reference and the stubs:
every check), two at a time."""
from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mutation_kit import write_submission
from test_grader import LEAN, validate_gradescope

from conftest import tool

REPO = Path(__file__).resolve().parent.parent


def grade(tree: Path, out: Path, *args: str) -> dict:
    """The public grader's results.json for the lab at ``tree`` (checked against Gradescope's format)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "grader"), "--impl", str(tree), "-q",
                           "--gradescope", str(out), *args, *LEAN], cwd=tree.parent, capture_output=True, text=True,
                          timeout=600)
    assert out.is_file(), proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    validate_gradescope(data)
    return data


def grade_changes(root: Path, todo: str, changes) -> dict[str, dict]:
    """results.json by name: "reference", "lab_stubs" (all checks) and each change (``todo``'s checks only)."""
    trees = {}
    for name, change in [("reference", None), ("lab_stubs", False), *((c.name, c) for c in changes)]:
        tree = root / name / "lab"
        assert tool("make_lab").main(["--dst", str(tree), "--no-parts"]) == 0
        if change is not False:
            write_submission(tree, change)
        trees[name] = tree
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(lambda item: (item[0], grade(item[1], item[1].parent / "results.json", *(
            [] if item[0] in ("reference", "lab_stubs") else ["--todo", todo]))), trees.items()))
