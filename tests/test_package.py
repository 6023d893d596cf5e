"""The shared package's promises: it imports no lab or solution module, no file edits sys.path, atomic writes
leave the old file on a crash, and the lab loader resolves exactly the tree it was given."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from maskgit_kit import atomic, labtree

PACKAGE = REPO / "maskgit_kit"


def lab_names() -> set[str]:
    return labtree.top_level_names(REPO / "solutions") | labtree.top_level_names(REPO / "lab")


def imported_modules(path: Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            found.append((str(node.args[0].value), node.lineno))
    return found


def test_the_package_imports_no_lab_or_solution_module():
    names = lab_names()
    assert {"models", "utils", "inpainting", "training_transformer"} <= names  # the scan knows what to look for
    bad = [f"{path.relative_to(REPO)}:{line} imports {mod}"
           for path in PACKAGE.rglob("*.py") for mod, line in imported_modules(path) if mod.split(".")[0] in names]
    assert not bad, bad


def test_the_scan_would_see_such_an_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom models.config import load_maskgit_config\n")
    assert ("models.config", 2) in imported_modules(probe)


SYS_PATH_EDIT = re.compile(r"sys\.path\s*(\.\s*(insert|append|extend|remove)\s*\(|\[[^\]]*\]\s*=|\+=|=)")


def test_no_file_edits_sys_path():
    """The course layout finds its own folder by Python's rules; everything else goes through the package."""
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "*.py"], capture_output=True, text=True,
                             check=True).stdout.split()
    offenders = []
    for rel in tracked:
        text = (REPO / rel).read_text()
        code = "\n".join(line.split("#")[0] for line in text.splitlines())
        if SYS_PATH_EDIT.search(code) and rel != "tests/test_package.py":
            offenders.append(rel)
    assert not offenders, offenders


def test_sys_path_rule_catches_an_edit():
    assert SYS_PATH_EDIT.search('sys.path.insert(0, "x")') and SYS_PATH_EDIT.search("sys.path[:] = []")
    assert not SYS_PATH_EDIT.search("print(sys.path)")


def test_atomic_write_keeps_the_old_file_on_a_crash(tmp_path):
    target = tmp_path / "results.json"
    atomic.write_json(target, {"score": 1})
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        tmp.write_text("half a file")
        raise RuntimeError("killed mid-way")
    assert target.read_text() == '{\n  "score": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary left behind
    with pytest.raises(ValueError):
        atomic.write_json(target, {"fid": float("nan")})  # strict JSON: nothing half-written either
    assert target.read_text().startswith("{")


def test_replacing_dirs_swaps_only_when_complete(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.png").write_text("old")
    with pytest.raises(RuntimeError), atomic.replacing_dirs(tmp_path, ["out"]) as staging:
        (staging / "out").mkdir()
        (staging / "out" / "new.png").write_text("new")
        raise RuntimeError("crash")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["old.png"]
    with atomic.replacing_dirs(tmp_path, ["out"]) as staging:
        (staging / "out").mkdir()
        (staging / "out" / "new.png").write_text("new")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["new.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_labtree_resolves_the_given_tree_only(tmp_path):
    """In a fresh process: another copy first on sys.path never wins, and switching trees drops the old modules."""
    script = f"""
import sys
from pathlib import Path
from maskgit_kit import labtree
sys.path.insert(0, {str(REPO / 'lab')!r})  # a decoy copy where a plain import would look first
tree = labtree.activate({str(REPO / 'solutions')!r})
import models.VQGAN_Transformer as m
assert Path(m.__file__).is_relative_to({str(REPO / 'solutions')!r}), m.__file__
assert labtree.activate({str(REPO / 'solutions')!r}).module("models.VQGAN_Transformer") is m  # idempotent
labtree.activate({str(REPO / 'lab')!r})
import models.VQGAN_Transformer as m2
assert m2 is not m and Path(m2.__file__).is_relative_to({str(REPO / 'lab')!r}), m2.__file__
try:
    labtree.activate({str(tmp_path)!r})
except labtree.LabTreeError as exc:
    assert "is not a lab folder; missing" in str(exc), exc
else:
    raise AssertionError("an empty folder was accepted")
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
