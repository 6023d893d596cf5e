"""The autograder's plumbing: the points table, how it is started, bad input, and batch-mode file handling.
(That its checks catch real bugs is shown in test_grader_mutations.py.)"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tool
from maskgit_kit.autograder.todos import load as load_todos

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
        if t["max_score"] > 0:  # a 0-point test (a hidden check's verdict) only informs
            assert (t["score"] == t["max_score"]) == (t["status"] == "passed")
    core = [t for t in data["tests"] if "extension" not in t["tags"]]  # the extension pool is reported apart
    assert abs(data["score"] - sum(t["score"] for t in core)) < 1e-6


def pytest_run(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "pytest", *args, *LEAN], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def collected_checks(grader: Path, tmp_path: Path) -> dict:
    """The checks the grader's plugin collects from ``grader`` (its @points declarations), by name."""
    out = tmp_path / "checks.json"
    proc = pytest_run(str(grader), "--collect-only", "-q", "--list-checks", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


def test_declared_points_cover_every_check_and_add_up_to_100(tmp_path):
    """Every test function of the grader is collected with its points; the core points add up to 100 (30/35/35),
    the extension pool's (TODO4) are apart; the generated list of known checks (todos.json, read by batch_grade.py
    and the plugin) is the same."""
    checks = collected_checks(GRADER, tmp_path)
    tests = set()
    for path in GRADER.glob("test_*.py"):
        tree = ast.parse(path.read_text())
        tests |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    assert set(checks) == tests
    per_todo, pools = {}, {}
    for c in checks.values():
        per_todo[c["todo"]] = per_todo.get(c["todo"], 0) + c["points"]
        pools.setdefault(c["pool"], {}).setdefault(c["todo"], 0)
        pools[c["pool"]][c["todo"]] += c["points"]
    assert pools["core"] == {"TODO1": 30, "TODO2": 35, "TODO3": 35}  # the course's 100 points
    assert sum(pools["core"].values()) == 100
    assert pools["extension"] == {"TODO4": 25, "TODO5": 20}  # reported beside the 100, never added to them
    assert set(pools) == {"core", "extension"}
    assert checks["test_attention_output_shape"]["cases"] == 4  # 4 points, 1 per case
    known = load_todos()
    assert {name: vars(c) | {"name": name} for name, c in known.checks.items()} == \
        {name: c | {"name": name} for name, c in checks.items()}, "todos.json is stale: run python tools/make_lab.py"
    assert known.points_by_todo() == per_todo


def test_extension_pool_is_reported_beside_the_core_score_never_in_it():
    """TODO4's points (the extension pool) show as their own EXTENSION row and tag; the TOTAL row, total() and
    Gradescope's score are the core pool's alone."""
    from maskgit_kit.autograder.results import Record, Results
    from maskgit_kit.autograder.todos import Catalogue, TodosError
    res = Results(impl="x", titles={"TODO1": "attention", "TODO4": "class-conditional extension"})
    res.add("a", Record("test_a", "", "a", 30.0, "passed", todo="TODO1", where="f"))
    res.add("b", Record("test_b", "", "b", 20.0, "passed", todo="TODO4", where="g", pool="extension"))
    res.add("c", Record("test_c", "", "c", 5.0, "failed", todo="TODO4", where="g", pool="extension"))
    assert res.total() == (30.0, 30.0) and res.total("extension") == (20.0, 25.0)
    table = "\n".join(res.table())
    assert [line.split()[-1] for line in res.table() if line.startswith(("TOTAL", "EXTENSION"))] == ["30/30", "20/25"]
    assert "(not in the total)" in table
    data = res.gradescope()
    validate_gradescope(data)
    assert data["score"] == 30 and [t["tags"][2:] for t in data["tests"]] == [[], ["extension"], ["extension"]]
    known = load_todos()
    assert {t.id for t in known.todos.values() if t.pool == "extension"} == {"TODO4", "TODO5"}
    assert {t.pool for t in known.todos.values() if t.id not in ("TODO4", "TODO5")} == {"core"}
    with pytest.raises(TodosError, match="unknown pool 'bonus'"):
        Catalogue.from_json({"todos": {"TODO1": {"title": "t", "parts": [], "pool": "bonus"}}, "checks": {}})


FAKE_CHECKS = """\
from maskgit_kit.autograder.points import points

TODO = "TODO1"


@points(1, "MultiHeadAttention.forward")
def test_declared(impl):
    \"\"\"declared\"\"\"


{second}
def test_second(impl):
    \"\"\"the check under test\"\"\"
"""


@pytest.mark.parametrize("decorator,message", [
    ("", "no points declared for test_second"),
    ('@points(2, "MaskGit.forward", todo="TODO9")', "test_second is declared for TODO9, which is not a TODO"),
    ('@points(2, "f")\n@points(3, "f")', "test_second declares its points 2 times"),
    ('@points(0, "MaskGit.forward")', "points must be a positive integer, got 0"),
])
def test_a_check_without_valid_points_is_a_collection_error_naming_it(tmp_path, decorator, message):
    grader = tmp_path / "grader"
    grader.mkdir()
    shutil.copyfile(GRADER / "conftest.py", grader / "conftest.py")
    (grader / "test_fake.py").write_text(FAKE_CHECKS.format(second=decorator))
    proc = pytest_run(str(grader), "--impl", str(REPO / "solutions"), "--collect-only", "-q", cwd=tmp_path)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


@pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning")  # the grader's plugin registers the mark
def test_points_decorator_refuses_bad_declarations():
    from maskgit_kit.autograder.points import points
    for args, kwargs in (((0, "f"), {}), ((True, "f"), {}), ((2.5, "f"), {}), ((1, " "), {}),
                         ((1, "f"), {"todo": "todo1"})):
        with pytest.raises(ValueError, match="@points"):
            points(*args, **kwargs)
    mark = points(3, "MaskGit.forward", todo="TODO2").mark
    assert (mark.name, mark.args, mark.kwargs) == ("points", (3, "MaskGit.forward"), {"todo": "TODO2"})


def test_grader_runs_from_inside_its_folder_and_writes_gradescope_json(tmp_path):
    out = tmp_path / "results.json"
    proc = pytest_run("--impl", "solutions", "--todo", "TODO1", "-k", "output_shape", "--gradescope", str(out),
                      cwd=GRADER)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TOTAL" in proc.stdout and "4/4" in proc.stdout
    data = json.loads(out.read_text())
    validate_gradescope(data)
    assert data["score"] == 4 and len(data["tests"]) == 4 and str(REPO / "solutions") in data["output"]


def test_student_code_runs_in_a_scratch_folder_not_the_callers(tmp_path):
    """A TODO that writes a relative file (as a course eval writes val_results/) leaves the caller's folder as it
    was; each check runs in its own scratch folder, resolved after --impl/--gradescope, and removed at the end."""
    caller, scratch_root, marks = tmp_path / "caller", tmp_path / "tmp", tmp_path / "marks.txt"
    shutil.copytree(REPO / "solutions", caller / "my_lab", ignore=shutil.ignore_patterns("__pycache__"))
    scratch_root.mkdir()
    layer = caller / "my_lab" / "models" / "Transformer" / "modules" / "layer.py"
    old = "        B, N, C = x.shape\n"
    text = layer.read_text()
    assert text.count(old) == 1
    layer.write_text(text.replace(old, old + "        import os\n"
                                  "        os.makedirs('val_results', exist_ok=True)\n"
                                  "        open('val_results/x.txt', 'w').write('written by the student')\n"
                                  f"        open({str(marks)!r}, 'a').write(os.getcwd() + '\\n')\n"))

    def tree():
        return sorted(p.relative_to(caller).as_posix() for p in caller.rglob("*") if "__pycache__" not in p.parts)

    before = tree()
    env = {**os.environ, "TMPDIR": str(scratch_root)}
    proc = subprocess.run([sys.executable, "-m", "pytest", str(GRADER), "--impl", "my_lab", "--gradescope",
                           "results.json", "--todo", "TODO1", "-k", "bidirectional or output_shape", *LEAN,
                           "-p", "no:benchmark"],  # pytest-benchmark's .benchmarks/ is not student code
                          cwd=caller, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((caller / "results.json").read_text())["score"] == 8  # the checks ran and passed
    assert tree() == sorted([*before, "results.json"])  # no val_results/ in the caller's folder
    cwds = set(marks.read_text().split())
    assert len(cwds) == 5 and all(Path(c).parent.parent == scratch_root for c in cwds)  # one folder per check
    assert list(scratch_root.iterdir()) == []  # the scratch folders are gone


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


def test_batch_takes_the_course_layers_py_for_layer_py(batch, tmp_path):
    """The course's file name ``layers.py`` counts as ``layer.py`` (at its lab path or unique anywhere), but a
    ``layer.py`` wins; both tools use the one finder."""
    rel = "models/Transformer/modules/layer.py"
    course = tmp_path / "course" / "lab5"
    (course / "models" / "Transformer" / "modules").mkdir(parents=True)
    (course / "models" / "Transformer" / "modules" / "layers.py").write_text("x = 1\n")
    (course / "layers.py").write_text("x = 0\n")  # a stray copy elsewhere: the lab path decides
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "layers.py").write_text("x = 2\n")
    both = tmp_path / "both"
    both.mkdir()
    (both / "layers.py").write_text("x = 3\n")
    (both / "layer.py").write_text("x = 4\n")
    assert batch.find_student_file(tmp_path / "course", rel) == course / "models/Transformer/modules/layers.py"
    assert batch.find_student_file(flat, rel) == flat / "layers.py"
    assert batch.find_student_file(both, rel) == both / "layer.py"
    assert batch.find_student_file(flat, "inpainting.py") is None  # the alias is only for layer.py
    dest = tmp_path / "graded"
    assert batch.prepare(flat, REPO / "lab", dest) == [r for r in batch.STUDENT_FILES if r != rel]
    assert (dest / rel).read_text() == "x = 2\n"
    assert tool("similarity").find_student_file is batch.find_student_file


@pytest.mark.parametrize("case,message", [
    ("no_folder", "submissions folder not found"),
    ("no_subfolders", "no submission subfolders found"),
    ("out_is_a_folder", "exists and is not a file"),
    ("bad_base", "--base"),
])
def test_batch_bad_input_is_one_clear_error(tmp_path, case, message):
    subs, out = tmp_path / "subs", tmp_path / "grades.csv"
    args = [str(subs), "--out", str(out), "--base", str(REPO / "lab")]
    if case != "no_folder":
        subs.mkdir()
    if case in ("out_is_a_folder", "bad_base"):
        (subs / "alice").mkdir()
    if case == "out_is_a_folder":
        out.mkdir()
    if case == "bad_base":
        args[-1] = str(tmp_path / "nowhere")
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "batch_grade.py"), *args], capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode != 0 and message in proc.stderr
    if case == "out_is_a_folder":
        assert out.is_dir() and not any(out.iterdir())
