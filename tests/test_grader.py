"""The autograder's plumbing: the points table, how it is started, bad input, and batch-mode file handling.
(That its checks catch real bugs is shown in test_grader_mutations.py.)"""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tool

REPO = Path(__file__).resolve().parent.parent
GRADER = REPO / "grader"
LEAN = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def validate_gradescope(data: dict) -> None:
    """The results.json fields of Gradescope's autograder specification, with types and consistent scores."""
    for key, kind in (("score", (int, float)), ("execution_time", (int, float)), ("output", str),
                      ("visibility", str), ("stdout_visibility", str), ("tests", list)):
        assert isinstance(data.get(key), kind), f"top-level {key}: {data.get(key)!r}"
    assert data["visibility"] in VISIBILITY and data["stdout_visibility"] in VISIBILITY
    for t in data["tests"]:
        for key, kind in (("name", str), ("score", (int, float)), ("max_score", (int, float)), ("status", str),
                          ("output", str), ("tags", list), ("visibility", str), ("number", str)):
            assert isinstance(t.get(key), kind), f"test {t.get('name')}: {key} = {t.get(key)!r}"
        assert t["status"] in ("passed", "failed") and t["visibility"] in VISIBILITY
        assert 0 <= t["score"] <= t["max_score"]
        assert (t["score"] == t["max_score"]) == (t["status"] == "passed")
    assert abs(data["score"] - sum(t["score"] for t in data["tests"])) < 1e-6


def pytest_run(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "pytest", *args, *LEAN], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_points_table_covers_every_check_and_adds_up_to_100():
    from maskgit_kit.autograder import points
    tests = set()
    for path in GRADER.glob("test_*.py"):
        tree = ast.parse(path.read_text())
        tests |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    assert tests == set(points.CHECKS)
    assert sum(p for _, p, _ in points.CHECKS.values()) == 100
    assert points.points_by_todo() == {"TODO1": 30, "TODO2": 35, "TODO3": 35}


def test_grader_runs_from_inside_its_folder_and_writes_gradescope_json(tmp_path):
    out = tmp_path / "results.json"
    proc = pytest_run("--impl", "solutions", "--todo", "TODO1", "-k", "output_shape", "--gradescope", str(out),
                      cwd=GRADER)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TOTAL" in proc.stdout and "4/4" in proc.stdout
    data = json.loads(out.read_text())
    validate_gradescope(data)
    assert data["score"] == 4 and len(data["tests"]) == 4 and str(REPO / "solutions") in data["output"]


def test_bad_impl_is_one_clear_error_and_still_writes_results(tmp_path):
    out = tmp_path / "results.json"
    proc = pytest_run("grader", "--impl", str(tmp_path / "nowhere"), "--gradescope", str(out))
    assert proc.returncode == 4
    assert "nowhere: folder not found" in proc.stderr
    data = json.loads(out.read_text())
    validate_gradescope(data)
    assert data["score"] == 0 and "folder not found" in data["output"]


def test_grader_refuses_to_share_a_run_with_other_tests():
    proc = pytest_run("grader", "tests/test_make_lab.py", "--collect-only", "-q")
    assert proc.returncode == 4 and "run the grader on its own" in proc.stderr


def test_plain_pytest_at_the_root_leaves_the_grader_out(tmp_path):
    """`pytest` with no path (the project's own tests) must not grade lab/."""
    shutil.copytree(GRADER, tmp_path / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_ok.py").write_text("def test_ok():\n    pass\n")
    proc = pytest_run("--collect-only", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tests/test_ok.py::test_ok" in proc.stdout and "grader/" not in proc.stdout


@pytest.fixture
def batch():
    return tool("batch_grade")


def test_batch_finds_student_files_nested_or_flattened(batch, tmp_path):
    nested = tmp_path / "nested" / "my-lab"
    (nested / "models" / "Transformer" / "modules").mkdir(parents=True)
    (nested / "models" / "Transformer" / "modules" / "layer.py").write_text("x = 1\n")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "inpainting.py").write_text("x = 2\n")
    twice = tmp_path / "twice"
    for d in ("a", "b"):
        (twice / d).mkdir(parents=True)
        (twice / d / "inpainting.py").write_text("x = 3\n")
    assert batch.find_student_file(tmp_path / "nested", "models/Transformer/modules/layer.py") == \
        nested / "models" / "Transformer" / "modules" / "layer.py"
    assert batch.find_student_file(flat, "inpainting.py") == flat / "inpainting.py"
    assert batch.find_student_file(flat, "training_transformer.py") is None
    assert batch.find_student_file(twice, "inpainting.py") is None  # ambiguous: the lab stub is kept


@pytest.mark.parametrize("case,message", [
    ("no_folder", "submissions folder not found"),
    ("no_subfolders", "no submission subfolders found"),
    ("out_exists", "already exists; pass --overwrite"),
    ("bad_base", "--base"),
])
def test_batch_bad_input_is_one_clear_error(tmp_path, case, message):
    subs, out = tmp_path / "subs", tmp_path / "grades.csv"
    args = [str(subs), "--out", str(out), "--base", str(REPO / "lab")]
    if case != "no_folder":
        subs.mkdir()
    if case in ("out_exists", "bad_base"):
        (subs / "alice").mkdir()
    if case == "out_exists":
        out.write_text("keep me\n")
    if case == "bad_base":
        args[-1] = str(tmp_path / "nowhere")
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "batch_grade.py"), *args], capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode != 0 and message in proc.stderr
    if case == "out_exists":
        assert out.read_text() == "keep me\n"
