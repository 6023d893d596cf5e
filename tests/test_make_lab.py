"""Tests for tools/make_lab.py on a small fake solutions tree in tmp_path (never the real solutions/ or lab/)."""
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import tool

REPO = Path(__file__).resolve().parents[1]
make_lab = tool("make_lab")

SOLVED = '''\
"""A fake student module."""
import math


def attention_scale(d_k):
    """Return 1/sqrt(d_k)."""
    # BEGIN SOLUTION TODO1: return the attention scale 1/sqrt(d_k)
    secret_answer = 1.0 / math.sqrt(d_k)
    return secret_answer
    # END SOLUTION


class Model:
    def step(self, x):
        """Double x."""
        if x is not None:
            # BEGIN SOLUTION TODO2: double "x"
            return 2 * x
            # END SOLUTION
        return None


# BEGIN INSTRUCTOR
CKPT = "../checkpoints/transformer.pt"
# ELSE LAB
# CKPT = "transformer_checkpoints/best.pt"
#
#     # indented comment kept
# END INSTRUCTOR
'''

CONFIG = """\
model:
  dim: 16
# BEGIN INSTRUCTOR
  ckpt: ../checkpoints/transformer.pt
# ELSE LAB
#   ckpt: transformer_checkpoints/best.pt
# END INSTRUCTOR
  layers: 2
"""

PNG = bytes(range(256)) * 3  # arbitrary binary content, copied byte for byte


def make_src(root):
    src = root / "solutions"
    (src / "models").mkdir(parents=True)
    (src / "config").mkdir()
    (src / "models" / "layer.py").write_text(SOLVED)
    (src / "models" / "__init__.py").write_text("")
    (src / "config" / "MaskGit.yml").write_text(CONFIG)
    (src / "grade_secret.py").write_text('#!/usr/bin/env python\n# LAB: exclude\nANSWER = 42\n')
    (src / "README.md").write_text("# Lab\nImplement TODO1.\n")
    (src / "sample.png").write_bytes(PNG)
    # outputs a previous run left in solutions/: never copied
    (src / "test_results").mkdir()
    (src / "test_results" / "image_000.png").write_bytes(b"x")
    (src / "models" / "__pycache__").mkdir()
    (src / "models" / "__pycache__" / "layer.cpython-311.pyc").write_bytes(b"x")
    return src


def run(src, dst, *extra):
    return make_lab.main(["--src", str(src), "--dst", str(dst), *extra])


@pytest.fixture
def tree(tmp_path):
    src = make_src(tmp_path)
    dst = tmp_path / "lab"
    assert run(src, dst) == 0
    return src, dst


def load_module(path):
    spec = importlib.util.spec_from_file_location("lab_layer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stub_replaces_solution_with_banner(tree):
    _, dst = tree
    text = (dst / "models" / "layer.py").read_text()
    assert "secret_answer" not in text and "2 * x" not in text
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN INSTRUCTOR", "ELSE LAB", "END INSTRUCTOR"):
        assert marker not in text
    expected = [
        "    # ============================== TODO1 ==============================",
        "    # return the attention scale 1/sqrt(d_k)",
        "    # (contract: see this function's docstring)",
        "    # " + "=" * 67,
        '    raise NotImplementedError("TODO1: return the attention scale 1/sqrt(d_k)")',
    ]
    lines = text.splitlines()
    start = lines.index(expected[0])
    assert lines[start:start + 5] == expected
    assert lines[start - 1] == '    """Return 1/sqrt(d_k)."""'  # the docstring (the contract) is kept
    # the nested stub sits at its marker's indentation and escapes the quotes in the description
    assert '            raise NotImplementedError("TODO2: double \\"x\\"")' in lines


def test_generated_stub_raises_named_todo(tree):
    _, dst = tree
    module = load_module(dst / "models" / "layer.py")
    with pytest.raises(NotImplementedError, match=r"^TODO1: return the attention scale 1/sqrt\(d_k\)$"):
        module.attention_scale(4)
    with pytest.raises(NotImplementedError, match='TODO2: double "x"'):
        module.Model().step(3)
    assert module.Model().step(None) is None  # code outside the block still runs
    assert module.CKPT == "transformer_checkpoints/best.pt"


def test_reference_still_works(tree):
    src, _ = tree
    module = load_module(src / "models" / "layer.py")
    assert module.attention_scale(4) == 0.5 and module.CKPT == "../checkpoints/transformer.pt"


def test_instructor_blocks_in_py_and_yaml(tree):
    _, dst = tree
    text = (dst / "models" / "layer.py").read_text()
    assert text.endswith('\n\nCKPT = "transformer_checkpoints/best.pt"\n\n    # indented comment kept\n')
    assert "../checkpoints" not in text
    config = (dst / "config" / "MaskGit.yml").read_text()
    assert config == "model:\n  dim: 16\n  ckpt: transformer_checkpoints/best.pt\n  layers: 2\n"
    assert yaml.safe_load(config) == {"model": {"dim": 16, "ckpt": "transformer_checkpoints/best.pt", "layers": 2}}


def test_excluded_ignored_and_binary_files(tree):
    src, dst = tree
    assert not (dst / "grade_secret.py").exists()
    assert not (dst / "test_results").exists() and not (dst / "models" / "__pycache__").exists()
    assert (dst / "sample.png").read_bytes() == PNG
    assert (dst / "README.md").read_text() == (src / "README.md").read_text()
    assert (dst / "models" / "__init__.py").exists()
    assert not list(dst.parent.glob(".lab-staging-*"))  # the staging folder is cleaned up


def test_summary_counts_todos(tmp_path, capsys):
    src = make_src(tmp_path)
    (src / "models" / "other.py").write_text(
        "def f():\n    # BEGIN SOLUTION TODO1: f\n    return 1\n    # END SOLUTION\n")
    assert run(src, tmp_path / "lab") == 0
    out = capsys.readouterr().out
    assert "TODO stubs: TODO1=2, TODO2=1" in out and "excluded: grade_secret.py" in out
    assert "6 files generated" in out


def test_check_up_to_date_then_detects_changes(tree, capsys):
    src, dst = tree
    capsys.readouterr()
    assert run(src, dst, "--check") == 0
    assert "is up to date" in capsys.readouterr().out

    layer = dst / "models" / "layer.py"
    layer.write_text(layer.read_text().replace("raise NotImplementedError", "return 0  #"))
    assert run(src, dst, "--check") == 1
    assert f"differs: {layer}" in capsys.readouterr().out

    assert run(src, dst) == 0  # regeneration repairs it
    (dst / "models" / "extra.py").write_text("x = 1\n")
    assert run(src, dst, "--check") == 1
    assert "extra: " in capsys.readouterr().out

    assert run(src, dst) == 0
    assert not (dst / "models" / "extra.py").exists()
    (dst / "config" / "MaskGit.yml").unlink()
    assert run(src, dst, "--check") == 1
    assert "missing: " in capsys.readouterr().out
    assert run(src, dst) == 0 and run(src, dst, "--check") == 0


def test_check_ignores_student_outputs_and_stale_files_get_removed(tree):
    src, dst = tree
    outputs = {dst / "test_results" / "image_000.png": b"student result",
               dst / "transformer_checkpoints" / "best.pt": b"student weights",
               dst / "models" / "__pycache__" / "layer.cpython-311.pyc": b"bytecode"}
    for path, data in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    assert run(src, dst, "--check") == 0  # ignored outputs are not "extra"

    (src / "README.md").unlink()
    (src / "models" / "layer.py").write_text(SOLVED.replace("Double x.", "Return 2 * x."))
    assert run(src, dst) == 0
    assert not (dst / "README.md").exists()
    assert "Return 2 * x." in (dst / "models" / "layer.py").read_text()
    for path, data in outputs.items():
        assert path.read_bytes() == data  # student outputs survive regeneration


BAD_CASES = {
    "unpaired_begin": ("def f():\n    # BEGIN SOLUTION TODO1: f\n    return 1\n", 2, "never closed"),
    "end_without_begin": ("x = 1\n# END SOLUTION\n", 2, "without a matching BEGIN"),
    "nested": ("# BEGIN INSTRUCTOR\n# BEGIN SOLUTION TODO1: f\n# END SOLUTION\n# END INSTRUCTOR\n", 2, "nested"),
    "mismatched_end": ("# BEGIN INSTRUCTOR\nx = 1\n# END SOLUTION\n", 3, "closes the INSTRUCTOR block"),
    "missing_todo_name": ("def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n", 2, "TODO<n>"),
    "missing_description": ("def f():\n    # BEGIN SOLUTION TODO1:\n    return 1\n    # END SOLUTION\n", 2,
                            "TODO<n>: <description>"),
    "else_outside": ("x = 1\n# ELSE LAB\n# y = 2\n", 2, "outside a BEGIN INSTRUCTOR"),
    "else_twice": ("# BEGIN INSTRUCTOR\n# ELSE LAB\n# ELSE LAB\n# END INSTRUCTOR\n", 3, "ELSE LAB"),
    "uncommented_lab_line": ("# BEGIN INSTRUCTOR\nx = 1\n# ELSE LAB\nx = 2\n# END INSTRUCTOR\n", 4,
                             "must be commented"),
    "unknown_marker": ("x = 1\n    # BEGIN HIDDEN\n", 2, "unknown marker"),
    "unknown_end_marker": ("x = 1\n# END OF SOLUTION\n", 2, "unknown marker"),
    "lab_code_does_not_compile": ("# BEGIN INSTRUCTOR\n# ELSE LAB\n# def broken(:\n# END INSTRUCTOR\n", None,
                                  "does not compile"),
    "marker_text_leaks": ('x = "# BEGIN SOLUTION TODO1: x"\n', None, "marker text would leak"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_markers_error_and_leave_dst_untouched(tree, case, capsys):
    src, dst = tree
    before = {p: p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    source, line, message = BAD_CASES[case]
    bad = src / "models" / "bad.py"
    bad.write_text(source)
    capsys.readouterr()
    assert run(src, dst) == 2
    err = capsys.readouterr().err
    assert message in err
    assert f"{bad.as_posix()}:{line}:" in err if line else bad.as_posix() in err
    assert {p: p.read_bytes() for p in dst.rglob("*") if p.is_file()} == before
    assert not list(dst.parent.glob(".lab-staging-*"))


def test_bad_yaml_marker_errors(tmp_path, capsys):
    src = make_src(tmp_path)
    (src / "config" / "MaskGit.yml").write_text("a: 1\n# BEGIN SOLUTION TODO1: x\nb: 2\n# END SOLUTION\n")
    assert run(src, tmp_path / "lab") == 2
    assert "MaskGit.yml:2: SOLUTION blocks are only allowed in .py files" in capsys.readouterr().err
    assert not (tmp_path / "lab").exists()


def test_refuses_dst_overlapping_src(tmp_path, capsys):
    src = make_src(tmp_path)
    assert run(src, src / "lab") == 2
    assert "must not be" in capsys.readouterr().err
    assert not (src / "lab").exists()


@pytest.mark.skipif(make_lab.shutil.which("git") is None, reason="git not installed")
def test_gitignore_patterns_are_honoured(tmp_path):
    import subprocess
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("*.ckpt\nscratch/\n")
    src = make_src(tmp_path)
    (src / "weights.ckpt").write_bytes(b"big")
    (src / "scratch").mkdir()
    (src / "scratch" / "notes.py").write_text("# BEGIN BROKEN\n")  # ignored, so never parsed
    dst = tmp_path / "lab"
    assert run(src, dst) == 0
    assert not (dst / "weights.ckpt").exists() and not (dst / "scratch").exists()
    (dst / "mine.ckpt").write_bytes(b"student")
    assert run(src, dst, "--check") == 0 and run(src, dst) == 0
    assert (dst / "mine.ckpt").read_bytes() == b"student"


# --- the generated parts: the TODO list, the students' TODO table, the grader's tables ----------------------
KIT_SOLVED = '''\
def attention_scale(d_k):
    """Return 1/sqrt(d_k)."""
    # BEGIN SOLUTION TODO1 (scaling): attention_scale: the scale 1/sqrt(d_k)
    return d_k ** -0.5
    # END SOLUTION


class Model:
    def step(self, x):
        """Double x."""
        def inner():
            return x
        # BEGIN SOLUTION TODO2 (doubling): twice: x | x, doubled
        return 2 * inner()
        # END SOLUTION
'''

KIT_CHECKS = '''\
import pytest

from maskgit_kit.autograder.points import points

TODO = "TODO1"


@points(3, "attention_scale")
def test_scale(impl):
    """The scale is 1/sqrt(d_k)."""


@pytest.mark.parametrize("x", [1, 2])
@points(POINTS, "Model.step", todo="TODO2")
def test_step(impl, x):
    """step doubles h*x"""
'''

STUDENTS = "# Guide\n\nProse before.\n<!-- BEGIN GENERATED: todo-table -->\nold table\n" \
           "<!-- END GENERATED: todo-table -->\nProse after.\n"
GRADER_README = "# Grader\n\n## What is checked\n<!-- BEGIN GENERATED: checks -->\n<!-- END GENERATED: checks -->\n" \
                "More prose.\n"


def make_kit(root, points=2):
    """A small kit: solutions/ with two titled TODOs, a grader with the real plugin, the two documents."""
    src = root / "solutions"
    src.mkdir(parents=True)
    (src / "layer.py").write_text(KIT_SOLVED)
    (root / "grader").mkdir()
    (root / "grader" / "conftest.py").write_text((REPO / "grader" / "conftest.py").read_text())
    (root / "grader" / "test_fake.py").write_text(KIT_CHECKS.replace("POINTS", str(points)))
    (root / "docs").mkdir()
    (root / "docs" / "students.md").write_text(STUDENTS)
    (root / "grader" / "README.md").write_text(GRADER_README)
    return src


def run_kit(root, *extra):
    return make_lab.main(["--src", str(root / "solutions"), "--dst", str(root / "lab"), "--parts", str(root), *extra])


def test_blocks_know_their_todo_title_name_and_enclosing_function(tmp_path):
    src = make_src(tmp_path)
    (src / "models" / "kit.py").write_text(KIT_SOLVED)
    _, blocks, _ = make_lab.generate(src)
    got = [(b.file, b.todo, b.title, b.name, b.description, b.function) for b in blocks]
    assert ("models/kit.py", "TODO1", "scaling", "attention_scale", "the scale 1/sqrt(d_k)", "attention_scale") in got
    assert ("models/kit.py", "TODO2", "doubling", "twice", "x | x, doubled", "Model.step") in got  # not inner()
    assert ("models/layer.py", "TODO2", "", "", 'double "x"', "Model.step") in got  # a marker with no name
    # the title is the parts' business: the student's stub and banner are the same as without one
    lab = make_lab.generate(src)[0]["models/kit.py"].decode()
    assert 'raise NotImplementedError("TODO2: twice: x | x, doubled")' in lab
    assert "doubling" not in lab and "scaling" not in lab


def test_parts_are_generated_between_the_markers_only(tmp_path, capsys):
    src = make_kit(tmp_path)
    assert run_kit(tmp_path) == 0
    assert "generated parts: 3, 3 written" in capsys.readouterr().out
    students = (tmp_path / "docs" / "students.md").read_text()
    assert students.startswith("# Guide\n\nProse before.\n<!-- BEGIN GENERATED: todo-table -->\n")
    assert students.endswith("<!-- END GENERATED: todo-table -->\nProse after.\n") and "old table" not in students
    assert "| TODO1 (scaling) | `lab/layer.py` | `attention_scale` | the scale 1/sqrt(d_k) |" in students
    assert "| TODO2 (doubling) | `lab/layer.py` | `Model.step` | twice: x \\| x, doubled |" in students
    readme = (tmp_path / "grader" / "README.md").read_text()
    assert readme.endswith("<!-- END GENERATED: checks -->\nMore prose.\n")
    assert "| TODO1 | scaling | 1 | 3 |" in readme and "| TODO2 | doubling | 1 (2 cases) | 2 |" in readme
    assert "| **total** | | 2 (3 cases) | **5** |" in readme
    assert "| `test_step` | step doubles h\\*x (2 cases, 1 each) | 2 |" in readme
    assert "| `test_scale` | The scale is 1/sqrt(d_k) | 3 |" in readme
    todos = json.loads((tmp_path / "maskgit_kit" / "autograder" / "todos.json").read_text())
    assert todos["todos"]["TODO2"] == {"title": "doubling", "parts": [
        {"file": "layer.py", "function": "Model.step", "name": "twice", "description": "x | x, doubled"}]}
    assert todos["checks"]["test_step"] == {"todo": "TODO2", "points": 2, "where": "Model.step",
                                            "title": "step doubles h*x", "file": "test_fake.py", "cases": 2}
    assert (src / "layer.py").read_text() == KIT_SOLVED  # the reference is only read
    assert run_kit(tmp_path, "--check") == 0


def test_check_names_each_stale_part_and_keeps_the_lab_messages(tmp_path, capsys):
    make_kit(tmp_path)
    assert run_kit(tmp_path) == 0
    students = tmp_path / "docs" / "students.md"
    students.write_text(students.read_text().replace("the scale 1/sqrt(d_k)", "the scale"))
    (tmp_path / "grader" / "test_fake.py").write_text(KIT_CHECKS.replace("POINTS", "4"))  # points changed
    capsys.readouterr()
    assert run_kit(tmp_path, "--check") == 1
    out, err = capsys.readouterr()
    assert f"{tmp_path / 'lab'} is up to date" in out  # the lab tree itself is fine
    for stale in (students, tmp_path / "grader" / "README.md", tmp_path / "maskgit_kit" / "autograder" / "todos.json"):
        assert f"stale: {stale}" in out
    assert "generated parts are out of date" in err and "run python tools/make_lab.py" in err
    assert run_kit(tmp_path) == 0 and run_kit(tmp_path, "--check") == 0
    assert "| TODO2 | doubling | 1 (2 cases) | 4 |" in (tmp_path / "grader" / "README.md").read_text()


@pytest.mark.parametrize("case,message", [
    ("no_title", "TODO1: exactly one of its markers must give its title"),
    ("two_titles", "TODO2: exactly one of its markers must give its title"),
    ("outside_function", "sits outside any function"),
    ("wrong_where", "where to look 'Model.step' is not a function of TODO1"),
    ("unchecked_function", "TODO2: no check of the grader points to Model.other"),
    ("unknown_todo", "declared for TODO7, which no solution marker has"),
])
def test_catalogue_cross_checks_markers_and_checks(case, message):
    Block, Check = make_lab.Block, make_lab.Check
    blocks = [Block("TODO1", "scaling", "scale: the scale", "a.py", 3, "attention_scale"),
              Block("TODO2", "doubling", "twice: doubled", "a.py", 10, "Model.step")]
    checks = [Check("test_scale", "TODO1", 3, "attention_scale"), Check("test_step", "TODO2", 2, "Model.step")]
    if case == "no_title":
        blocks[0] = Block("TODO1", "", "scale: the scale", "a.py", 3, "attention_scale")
    elif case == "two_titles":
        blocks.append(Block("TODO2", "again", "other: more", "a.py", 20, "Model.step"))
    elif case == "outside_function":
        blocks.append(Block("TODO2", "", "top: level", "a.py", 30, ""))
    elif case == "wrong_where":
        checks[0] = Check("test_scale", "TODO1", 3, "Model.step")
    elif case == "unchecked_function":
        blocks.append(Block("TODO2", "", "other: more", "a.py", 20, "Model.other"))
    elif case == "unknown_todo":
        checks.append(Check("test_new", "TODO7", 1, "attention_scale"))
    with pytest.raises(make_lab.LabError, match=re.escape(message)):
        make_lab.catalogue(blocks, checks)
    if case == "wrong_where":  # "X and something else" points to X
        checks[0] = Check("test_scale", "TODO1", 3, "attention_scale and run")
        assert make_lab.catalogue(blocks[:2], checks).points_by_todo() == {"TODO1": 3, "TODO2": 2}


@pytest.mark.parametrize("text,found", [
    ("no markers\n", "(found 0 and 0)"),
    ("<!-- END GENERATED: t -->\n<!-- BEGIN GENERATED: t -->\n", "(found 1 and 1)"),
    ("<!-- BEGIN GENERATED: t -->\n<!-- BEGIN GENERATED: t -->\n<!-- END GENERATED: t -->\n", "(found 2 and 1)"),
])
def test_region_markers_missing_or_out_of_order_are_one_clear_error(text, found):
    expected = "docs/x.md: needs one line '<!-- BEGIN GENERATED: t -->'"
    with pytest.raises(make_lab.LabError, match=re.escape(expected)) as err:
        make_lab.replace_region(text, "t", ["new"], "docs/x.md")
    assert found in str(err.value)
    assert make_lab.replace_region("a\n<!-- BEGIN GENERATED: t -->\nold\n<!-- END GENERATED: t -->\nb", "t",
                                   ["new", "rows"], "x") == \
        "a\n<!-- BEGIN GENERATED: t -->\nnew\nrows\n<!-- END GENERATED: t -->\nb"


def test_a_broken_grader_fails_generation_and_writes_nothing(tmp_path, capsys):
    make_kit(tmp_path)
    (tmp_path / "grader" / "test_fake.py").write_text(KIT_CHECKS.replace("POINTS", "2").replace(
        '@points(3, "attention_scale")\n', ""))  # test_scale has no points
    assert run_kit(tmp_path) == 2
    err = capsys.readouterr().err
    assert "collecting the checks failed" in err and "no points declared for test_scale" in err
    assert not (tmp_path / "lab").exists() and not (tmp_path / "maskgit_kit").exists()
    assert (tmp_path / "docs" / "students.md").read_text() == STUDENTS
