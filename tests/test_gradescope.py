"""The Gradescope autograder (tools/make_gradescope.py, maskgit_kit/autograder/gradescope.py): the zip is built
once, unpacked as Gradescope unpacks it, and its run_autograder grades uploads of every kind on a fake
/autograder (AUTOGRADER_ROOT); every run must leave a valid results.json."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_grader import validate_gradescope

from conftest import tool
from maskgit_kit.autograder import gradescope
from maskgit_kit.autograder.todos import load as load_todos
from maskgit_kit.labtree import STUDENT_FILES

REPO = Path(__file__).resolve().parent.parent
LAYER = "models/Transformer/modules/layer.py"
make_lab, make_release = tool("make_lab"), tool("make_release")  # its siblings first (conftest)
make_gradescope = tool("make_gradescope")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """(the unpacked zip, the zip): built by the tool's command line, as `make gradescope` does."""
    tmp = tmp_path_factory.mktemp("gradescope")
    zipped = tmp / "maskgit-gradescope.zip"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "make_gradescope.py"), "--out", str(tmp / "build"),
                           "--zip", str(zipped)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "44 case names calibrated" in proc.stdout or "case names calibrated" in proc.stdout
    source = tmp / "source"
    with zipfile.ZipFile(zipped) as zf:
        zf.extractall(source)
    return source, zipped


def run_autograder(source: Path, root: Path, write_upload) -> dict:
    """Lay out a fake /autograder at ``root`` (source/, submission/), run the bundle's run_autograder there."""
    (root / "submission").mkdir(parents=True)
    (root / "source").symlink_to(source, target_is_directory=True)
    write_upload(root / "submission")
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(source / "run_autograder")], env=env, capture_output=True, text=True,
                          timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((root / "results" / "results.json").read_text())
    validate_gradescope(data)
    assert not [p for p in (root / "results").iterdir() if p.name != "results.json"]  # no temporary left
    return data


def copy_files(src_root: Path, rename=None, change=None):
    def write(sub: Path) -> None:
        for rel in STUDENT_FILES:
            dest = sub / "hw3" / "code" / (rename or {}).get(rel, rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            text = (src_root / rel).read_text()
            dest.write_text(change(rel, text) if change else text)
    return write


def inpainting_py_points() -> float:
    """TODO3's points of the checks of ``iterative_decoding`` (inpainting.py); the rest is MaskGit's step."""
    checks = load_todos().checks.values()
    return sum(c.points for c in checks if c.todo == "TODO3" and not c.where.startswith("MaskGit."))


def todo4_inpainting_py_points() -> float:
    """TODO4's points of the checks of ``guided_decoding`` (inpainting.py); the rest is the class transformer's."""
    checks = load_todos().checks.values()
    return sum(c.points for c in checks if c.todo == "TODO4" and not c.where.startswith("ClassConditional"))


def per_todo(data: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for t in data["tests"]:
        out[t["tags"][0]] = out.get(t["tags"][0], 0) + t["score"]
    return out


def test_the_zip_holds_what_gradescope_runs(bundle):
    """setup.sh and run_autograder at the root (executable), the trusted grader's trees (hidden checks and the
    reference included), the lab generated from solutions/, pinned requirements, calibrated case names."""
    source, zipped = bundle
    with zipfile.ZipFile(zipped) as zf:
        names = set(zf.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
    for name in ("setup.sh", "run_autograder"):
        assert name in names and modes[name] & 0o111
    for tree in ("maskgit_kit", "grader", "hidden_checks", "solutions", "lab"):
        assert any(n.startswith(tree + "/") for n in names), tree
    assert {"pyproject.toml", "README.md", "requirements-gradescope.txt", "case_names.json"} <= names
    assert "hidden_checks/todo1.py" in names and "maskgit_kit/autograder/gradescope.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    generated = make_lab.generate(REPO / "solutions")[0]
    assert all((source / "lab" / rel).read_bytes() == data for rel, data in generated.items())
    assert "NotImplementedError" in (source / "lab" / LAYER).read_text()
    pins = (source / "requirements-gradescope.txt").read_text()
    for name in make_gradescope.PINNED:
        assert re.search(rf"^{re.escape(name)}==[0-9][^\s]*$", pins, re.M), name
    assert re.search(r"^torch==[0-9.]+\+cpu$", pins, re.M) and "download.pytorch.org/whl/cpu" in pins
    names_file = gradescope.read_case_names(source)
    assert names_file is not None and len(names_file) == 64  # 44 core cases + 10 of TODO4 + 10 of TODO5 (the extension)


def test_the_student_release_still_never_ships_the_hidden_checks():
    """The Gradescope zip holds hidden_checks/ and solutions/; the student release's plan holds neither."""
    items, _ = make_release.plan(REPO / "solutions", REPO / "docs" / "students.md", False)
    assert not [rel for rel in items if rel.split("/")[0] in ("hidden_checks", "solutions")]
    assert "maskgit_kit/autograder/gradescope.py" in items  # it needs hidden_checks/, which only the bundle has


def test_case_names_are_ignored_when_the_checks_changed(bundle, tmp_path):
    source, _ = bundle
    copy = tmp_path / "source"
    shutil.copytree(source, copy)
    assert gradescope.read_case_names(copy) is not None
    with open(copy / "grader" / "test_todo1_attention.py", "a") as f:
        f.write("\n# changed\n")
    assert gradescope.read_case_names(copy) is None


def test_a_correct_upload_in_a_nested_folder_with_layers_py_earns_100(bundle, tmp_path):
    data = run_autograder(bundle[0], tmp_path / "ag", copy_files(REPO / "solutions", rename={
        LAYER: "models/Transformer/modules/layers.py"}))
    assert data["score"] == 100 and all(t["status"] == "passed" for t in data["tests"])
    assert "layer.py <- hw3/code/models/Transformer/modules/layers.py" in data["output"]
    assert "status: ok" in data["output"]
    hidden = [t for t in data["tests"] if " hidden: " in t["name"]]
    assert hidden and all(t["visibility"] == "after_due_date" for t in hidden)
    assert len({t["number"] for t in data["tests"]}) == len(data["tests"])


def test_the_lab_stubs_earn_0(bundle, tmp_path):
    data = run_autograder(bundle[0], tmp_path / "ag", copy_files(REPO / "lab"))
    assert data["score"] == 0 and data["tests"] and all(t["status"] == "failed" for t in data["tests"])


def test_a_file_that_ends_the_process_at_import_costs_only_what_it_breaks(bundle, tmp_path):
    """inpainting.py (TODO3's loop) calls os._exit when imported: still a valid results.json; TODO1, TODO2 and
    TODO3's step (in VQGAN_Transformer.py), whose files are correct, keep their points; the loop's checks fail."""
    def change(rel, text):
        return "import os\nos._exit(7)\n" + text if rel == "inpainting.py" else text
    data = run_autograder(bundle[0], tmp_path / "ag", copy_files(REPO / "solutions", change=change))
    scores = per_todo(data)
    assert scores == {"TODO1": 30, "TODO2": 35, "TODO3": 35 - inpainting_py_points(),
                      "TODO4": 25 - todo4_inpainting_py_points(), "TODO5": 20}, scores  # TODO4-5: the extension
    assert 0 < inpainting_py_points() < 35 and 0 < todo4_inpainting_py_points() < 25


def test_an_upload_without_student_files_gets_0_and_says_what_to_upload(bundle, tmp_path):
    def junk(sub: Path) -> None:
        (sub / "notes.txt").write_text("my homework")
        with zipfile.ZipFile(sub / "hw3.zip", "w") as zf:
            zf.writestr("layer.py", "x = 1\n")
        (sub / "blob.bin").write_bytes(os.urandom(4096))
    data = run_autograder(bundle[0], tmp_path / "ag", junk)
    assert data["score"] == 0 and data["tests"] == []
    out = data["output"]
    assert "No student file could be graded" in out and "layers.py is accepted" in out
    assert "hw3.zip" in out and "archive inside the upload is not unpacked" in out
    assert all(rel in out for rel in STUDENT_FILES)


def test_binary_and_oversized_student_files_are_not_graded_and_named(bundle, tmp_path):
    """layer.py binary, inpainting.py over 1 MiB: both named in the output, the lab's stubs stand in (what they
    hold earns 0, the other files are graded as usual)."""
    def write(sub: Path) -> None:
        copy_files(REPO / "solutions")(sub)
        code = sub / "hw3" / "code"
        (code / LAYER).write_bytes(b"\x7fELF\0\0binary" * 100)
        (code / "inpainting.py").write_text("# padding\n" * 120_000)
    data = run_autograder(bundle[0], tmp_path / "ag", write)
    out = data["output"]
    assert f"{LAYER}: hw3/code/{LAYER} is not a text file" in out
    assert "inpainting.py: hw3/code/inpainting.py is 1.1 MB, over the 1 MB" in out
    scores = per_todo(data)
    assert scores == {"TODO1": 0, "TODO2": 35, "TODO3": 35 - inpainting_py_points(),
                      "TODO4": 25 - todo4_inpainting_py_points(), "TODO5": 20}, scores


def test_a_broken_bundle_still_writes_a_score_0_results_json(bundle, tmp_path):
    """The grader's own failure (here: the hidden checks missing) is reported as such, never as a crash."""
    source = tmp_path / "source"
    shutil.copytree(bundle[0], source)
    shutil.rmtree(source / "hidden_checks")
    data = run_autograder(source, tmp_path / "ag", copy_files(REPO / "solutions"))
    assert data["score"] == 0 and "the autograder itself failed" in data["output"]
    assert "hidden checks not found" in data["output"]


def test_collect_names_ambiguous_and_uncompilable_files(tmp_path):
    """Without grading: two candidates for one file are refused by name; a file that does not compile is graded
    (its checks fail) with a warning giving its line."""
    copy_files(REPO / "solutions")(tmp_path)
    (tmp_path / "old").mkdir()
    shutil.copyfile(REPO / "solutions" / "training_transformer.py", tmp_path / "old" / "training_transformer.py")
    inpainting = tmp_path / "hw3" / "code" / "inpainting.py"
    inpainting.write_text("def f(:\n")
    files, problems, warnings = gradescope.collect(tmp_path)
    assert "training_transformer.py" not in files and set(files) == set(STUDENT_FILES) - {"training_transformer.py"}
    assert problems == ["training_transformer.py: 2 files could be it (hw3/code/training_transformer.py, "
                        "old/training_transformer.py); upload exactly one"]
    assert len(warnings) == 1 and warnings[0].startswith("inpainting.py: hw3/code/inpainting.py line 1: SyntaxError")
