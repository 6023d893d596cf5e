"""Tests for tools/make_lab.py on a small fake solutions tree in tmp_path (never the real solutions/ or lab/)."""
import importlib.util
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
