"""The student release (tools/make_release.py), built into tmp_path and used as a student would use it.

Every use runs in a FRESH process inside the release, with PYTHONPATH=<release root> so that the release's own
maskgit_kit is imported. Each process records the files of all the modules it loaded (AUDIT below), and the
tests assert that none lies in this repository: nothing of solutions/ (or of the repo's maskgit_kit) can run.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from conftest import tool
from maskgit_kit import fid_weights

REPO = Path(__file__).resolve().parents[1]
make_lab = tool("make_lab")
make_release = tool("make_release")

# Runs a module (RELEASE_RUN=pytest) or a script (RELEASE_RUN=inpainting.py, from the working directory) as
# `python -m` / `python script.py` would, then writes the file of every loaded module to $RELEASE_AUDIT.
AUDIT = """\
import atexit, json, os, runpy, sys
def _audit():
    files = sorted({str(getattr(m, "__file__", None) or "") for m in list(sys.modules.values())} - {""})
    with open(os.environ["RELEASE_AUDIT"], "w") as f:
        json.dump(files, f)
atexit.register(_audit)
target = os.environ["RELEASE_RUN"]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""
needs_weights = pytest.mark.skipif(not fid_weights.weights_path().is_file(),
                                   reason=f"FID Inception weights not at {fid_weights.weights_path()} "
                                          "(run python -m maskgit_kit.fid_weights); no downloads in unit tests")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The release as `make release` builds it (no transformer), and its zip."""
    out = tmp_path_factory.mktemp("dist") / "student"
    assert make_release.main(["--out", str(out)]) == 0
    version = make_release.kit_version()
    return {"root": out, "zip": out.parent / f"maskgit-lab-{version}-student.zip", "version": version}


def run_in_release(root: Path, cwd: Path, target: str, *args: str, timeout: float = 300):
    """Run ``target`` in a fresh interpreter inside the release; returns (completed process, loaded module files)."""
    with tempfile.TemporaryDirectory(prefix="release-audit-") as tmp:  # outside the release
        audit = Path(tmp) / "modules.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
        env.update(PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1", RELEASE_RUN=target, RELEASE_AUDIT=str(audit))
        proc = subprocess.run([sys.executable, "-c", AUDIT, *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        return proc, json.loads(audit.read_text()) if audit.is_file() else []


def inside(path: str | Path, root: Path) -> bool:
    return Path(path).resolve().is_relative_to(root.resolve())


def assert_isolated(modules: list[str], root: Path) -> None:
    """The process imported the release's maskgit_kit and nothing from this repository."""
    assert modules, "the process recorded no modules"
    from_repo = [m for m in modules if Path(m).is_absolute() and inside(m, REPO)]  # (torch has "_ops.py")
    assert not from_repo, f"modules loaded from the repository, not the release: {from_repo[:5]}"
    kit = [m for m in modules if Path(m).parent.name == "maskgit_kit" and Path(m).name == "__init__.py"]
    assert kit and all(inside(m, root) for m in kit), f"maskgit_kit came from {kit}, not from {root}"


def unwrapped(help_text: str) -> str:
    """argparse's help without its line breaks (it also breaks paths after a hyphen): all whitespace removed."""
    return "".join(help_text.split())


def release_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------------------------------
# (a) the grader grades the stubs at 0/100
# ----------------------------------------------------------------------------------------------------

def test_grader_grades_the_stubs_at_zero(release):
    root = release["root"]
    proc, modules = run_in_release(root, root, "pytest", "grader/", "-q", "-p", "no:cacheprovider")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]  # 1 = checks failed; 2/3/4 = interrupted, internal or usage error
    assert f"graded folder: {(root / 'lab').resolve()}" in out, out[-3000:]
    todos = sorted({block.todo for block in make_lab.generate(REPO / "solutions")[1]})
    assert todos, "the solutions declare no TODOs"
    for todo in todos:
        assert re.search(rf"^{todo} not implemented yet \(stubs?: ", out, re.M), f"no stub line for {todo}:\n{out}"
    assert re.search(r"^TOTAL\s+0/\d+\s+0/100\s*$", out, re.M), out[-3000:]
    for bad in ("INTERNALERROR", "ERROR collecting", "error during collection", "Traceback"):
        assert bad not in out, f"{bad!r} in the grader's output:\n{out[-3000:]}"
    assert_isolated(modules, root)


# ----------------------------------------------------------------------------------------------------
# (b) the scoring command scores a folder
# ----------------------------------------------------------------------------------------------------

@needs_weights
def test_scoring_command_scores_ground_truth_at_fid_zero(release, tmp_path):
    root = release["root"]
    data = root / "data" / "fashion64"
    gt, masks = tmp_path / "gt", tmp_path / "mask64"
    gt.mkdir()
    masks.mkdir()
    for i in range(20):  # a small copy of the release's split keeps the test fast
        shutil.copy(data / "ground_truth" / f"image_{i:03d}.png", gt)
        shutil.copy(data / "mask64" / f"mask_{i:03d}.png", masks)
    result = tmp_path / "score.json"
    proc, modules = run_in_release(root, root, "maskgit_kit.scoring.score", "--predicted-path", str(gt),
                                   "--gt-path", str(gt), "--mask-path", str(masks), "--dims", "64", "--no-cache",
                                   "--json", str(result))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    numbers = json.loads(result.read_text())
    assert numbers["n"] == 20 and numbers["fid_dims"] == 64
    assert numbers["fid"] == pytest.approx(0, abs=1e-6)
    assert numbers["ssim"] == 1.0 and numbers["ssim_hole"] == 1.0
    assert "Scored 20 images" in proc.stdout
    assert_isolated(modules, root)


# ----------------------------------------------------------------------------------------------------
# (c) the student scripts run up to their TODOs
# ----------------------------------------------------------------------------------------------------

def test_inpainting_runs_up_to_a_todo(release, tmp_path):
    root = release["root"]
    lab = root / "lab"
    out = tmp_path / "inpainted"
    proc, modules = run_in_release(root, lab, "inpainting.py", "--random-init", "--output-dir", str(out),
                                   "--batch-size", "4", "--device", "cpu")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    # one line naming the TODO and the stub's raise, not a traceback through the given code
    match = re.fullmatch(r"error: (TODO\d+) is not implemented yet: \w+ \(raised at ([\w.]+):(\d+)\); "
                         r".*--todo \1`", last)
    assert match, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    hits = [p for p in lab.rglob(match.group(2))]
    assert len(hits) == 1 and inside(hits[0], lab), hits
    line = hits[0].read_text().splitlines()[int(match.group(3)) - 1]
    assert 'raise NotImplementedError("TODO' in line, line
    assert not (out / "test_results").exists(), "a failed run must not leave results"
    assert_isolated(modules, root)


def test_training_script_help(release):
    root = release["root"]
    proc, modules = run_in_release(root, root / "lab", "training_transformer.py", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:") and "--epochs" in proc.stdout and "--checkpoint-path" in proc.stdout
    # the release's maskgit_kit.paths: the defaults (data, and so the scoring's ground truth) are the release's
    assert str(root.resolve() / "data" / "fashion64" / "train") in unwrapped(proc.stdout)
    assert_isolated(modules, root)


# ----------------------------------------------------------------------------------------------------
# (d) no line of a solution block ships
# ----------------------------------------------------------------------------------------------------

def solution_keys(src: Path) -> dict[str, str]:
    """Non-trivial lines of the solution blocks (make_release's documented rule: line_key, TRIVIAL_CHARS)."""
    keys, block = {}, None
    for path in sorted(src.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.match(r"\s*#\s*BEGIN SOLUTION\b", line):
                block = path
            elif re.match(r"\s*#\s*END SOLUTION\b", line):
                block = None
            elif block and len(make_release.line_key(line)) >= make_release.TRIVIAL_CHARS:
                keys.setdefault(make_release.line_key(line), f"{path.relative_to(REPO)}:{no}")
    return keys


def leaks(name: str, data: bytes, keys: dict[str, str]) -> list[str]:
    if b"\0" in data:
        return []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return []
    return [f"{name}:{no} = {keys[k]}" for no, line in enumerate(text.splitlines(), 1)
            if (k := make_release.line_key(line)) in keys]


def test_no_line_of_a_solution_block_ships(release):
    keys = solution_keys(REPO / "solutions")
    assert len(keys) >= 30, f"only {len(keys)} solution lines found: the scan would prove nothing"
    # the scan finds them where they are (in solutions/): it is not blind
    found = [hit for p in (REPO / "solutions").rglob("*.py") for hit in leaks(str(p), p.read_bytes(), keys)]
    assert len(found) >= len(keys)
    root = release["root"]
    shipped = [hit for rel in release_files(root) for hit in leaks(rel, (root / rel).read_bytes(), keys)]
    assert not shipped, "solution lines in the release:\n" + "\n".join(shipped[:20])
    with zipfile.ZipFile(release["zip"]) as zf:
        zipped = [hit for n in zf.namelist() for hit in leaks(n, zf.read(n), keys)]
    assert not zipped, "solution lines in the zip:\n" + "\n".join(zipped[:20])


def test_the_build_refuses_a_grader_that_copies_a_solution_line(tmp_path, capsys):
    """make_release's own guard: a solution line that also sits in a shipped file fails the build."""
    fake = copy_solutions(tmp_path / "solutions")
    standin = (REPO / "grader" / "_standins.py").read_text().splitlines()
    line = next(s for s in standin if "self.out_proj(" in s)  # a line of the grader's attention stand-in
    layer = fake / "models" / "Transformer" / "modules" / "layer.py"
    text = layer.read_text()
    assert "# END SOLUTION" in text
    layer.write_text(text.replace("# END SOLUTION", f"# END SOLUTION\n{' ' * 8}# BEGIN SOLUTION TODO1: x\n"
                                  f"{line}\n{' ' * 8}# END SOLUTION", 1))
    out = tmp_path / "dist" / "student"
    assert make_release.main(["--src", str(fake), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "grader/_standins.py:" in err and f"{layer.as_posix()}:" in err, err
    assert not out.parent.exists() or not any(out.parent.iterdir()), "a refused build left files behind"


# ----------------------------------------------------------------------------------------------------
# (e) what is left out, --with-transformer, bad input
# ----------------------------------------------------------------------------------------------------

def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_release_holds_the_hand_out_and_nothing_else(release):
    root = release["root"]
    files = release_files(root)
    tops = {f.split("/")[0] for f in files}
    expected = {"README.md", "pyproject.toml", "requirements.txt", "lab", "grader", "maskgit_kit", "data",
                "checkpoints"} | ({"LICENSE"} if (REPO / "LICENSE").is_file() else set())
    assert tops == expected
    assert (root / "README.md").read_bytes() == (REPO / "docs" / "students.md").read_bytes()
    generated = make_lab.generate(REPO / "solutions")[0]
    assert {f[4:] for f in files if f.startswith("lab/")} == set(generated)
    assert all((root / "lab" / rel).read_bytes() == data for rel, data in generated.items())
    assert (root / "checkpoints" / "vqgan.pt").read_bytes() == (REPO / "checkpoints" / "vqgan.pt").read_bytes()
    assert sorted(f for f in files if f.startswith("checkpoints/")) == ["checkpoints/README.md",
                                                                       "checkpoints/classifier.pt",
                                                                       "checkpoints/vqgan.pt"]
    for split in ("masked_image", "mask64", "ground_truth"):
        assert len(list((root / "data" / "fashion64" / split).glob("*.png"))) == 747
    names = {Path(f).name for f in files}
    for word in ("solutions", "hidden_checks", "tests", "bench", "tools", "docs", ".ci", "__pycache__", "test_results",
                 "token_cache", ".cache", "transformer_checkpoints", "vqgan_checkpoints", "train", "val"):
        assert not [f for f in files if word in f.split("/")[:-1]], f"a {word}/ folder ships"
    assert not names & {"make_lab.py", "make_release.py", "batch_grade.py", "train_vqgan.py", "eval_vqgan.py",
                        "similarity.py", "grader_mutants.py", "transformer.pt"}
    # by content: no file of the instructor's folders, no reference file with solutions, no solution-derived data
    shipped = {digest((root / f).read_bytes()) for f in files}
    secret = [p for d in ("tests", "bench", "tools", "docs", ".ci", "hidden_checks") for p in (REPO / d).rglob("*")
              if p.is_file()]
    secret += [REPO / "solutions" / rel for rel in make_lab.managed_files(REPO / "solutions")
               if generated.get(rel) != (REPO / "solutions" / rel).read_bytes()]
    secret += [p for p in (REPO / "checkpoints").iterdir()
               if p.is_file() and p.name not in ("vqgan.pt", "classifier.pt", "README.md")]
    guide = digest((REPO / "docs" / "students.md").read_bytes())
    copied = [str(p.relative_to(REPO)) for p in secret if p.stat().st_size
              and digest(p.read_bytes()) in shipped - {guide}]
    assert not copied, f"instructor files in the release: {copied[:10]}"
    # the hidden checks: not as files, and not their names or their own lines inside another shipped file
    public = {line.strip() for d in ("grader", "maskgit_kit", "lab") for p in (REPO / d).rglob("*.py")
              for line in p.read_text().splitlines()}  # a line the public code has anyway says nothing hidden
    hidden_lines = {line.strip() for p in (REPO / "hidden_checks").glob("*.py") for line in p.read_text().splitlines()
                    if len(line.strip()) >= 40 and not line.strip().startswith(("#", "from ", "import "))} - public
    text = "\n".join((root / f).read_text(errors="replace") for f in files if f.endswith((".py", ".md", ".yml")))
    leaked = [line for line in hidden_lines if line in text]
    assert not leaked, f"hidden-check lines in the release: {leaked[:5]}"
    assert "_hidden\"" not in text and "hidden_checks/todo" not in text
    with zipfile.ZipFile(release["zip"]) as zf:
        prefix = f"maskgit-lab-{release['version']}-student/"
        assert sorted(zf.namelist()) == [prefix + f for f in files]
        assert zf.testzip() is None
        assert zf.read(prefix + "lab/inpainting.py") == (root / "lab" / "inpainting.py").read_bytes()


def test_release_installs_with_pip_install_e(release, tmp_path):
    """`pip install -e .` from the release root (offline: dependencies from this environment, no build isolation)."""
    copy = tmp_path / "student"
    shutil.copytree(release["root"], copy, ignore=shutil.ignore_patterns("data", "checkpoints", "lab"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                          "--no-build-isolation", "--no-index", "-e", "."], cwd=copy, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    probe = subprocess.run([str(python), "-c", "import maskgit_kit; print(maskgit_kit.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=120, check=False)
    assert probe.returncode == 0, probe.stderr
    assert inside(probe.stdout.strip(), copy), probe.stdout
    assert (venv / "bin" / "maskgit-score").is_file()


def copy_solutions(dest: Path) -> Path:
    """A copy of the reference's managed files (no ignored outputs), to break on purpose."""
    for rel in make_lab.managed_files(REPO / "solutions"):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "solutions" / rel, dest / rel)
    return dest


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_with_transformer_and_bad_input(tmp_path, capsys):
    dist = tmp_path / "dist"
    out = dist / "student"
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("a student's notes")
    zip_path = dist / f"maskgit-lab-{make_release.kit_version()}-student.zip"

    # a non-empty target without --force: one clear error, nothing touched
    assert make_release.main(["--out", str(out), "--with-transformer"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "--force" in err[0], err
    assert snapshot(out) == {"notes.txt": b"a student's notes"} and sorted(dist.iterdir()) == [out]

    # --force replaces it; --with-transformer adds the transformer and the command to use it
    assert make_release.main(["--out", str(out), "--with-transformer", "--force"]) == 0
    assert not (out / "notes.txt").exists()
    for name in make_release.HANDED_OUT:  # the transformers and the TiTok track's models
        assert (out / "checkpoints" / name).read_bytes() == (REPO / "checkpoints" / name).read_bytes(), name
    note = (out / "checkpoints" / "README.md").read_text()
    assert "--load-transformer-ckpt-path ../checkpoints/transformer.pt" in note
    with zipfile.ZipFile(zip_path) as zf:
        assert f"{zip_path.stem}/checkpoints/transformer.pt" in zf.namelist()
    assert sorted(p.name for p in dist.iterdir()) == sorted([out.name, zip_path.name]), "staging left behind"

    # an unpaired solution marker: the error names file:line, and even with --force nothing is touched
    before, zip_before = snapshot(out), zip_path.read_bytes()
    fake = copy_solutions(tmp_path / "fake-solutions")
    utils = fake / "utils.py"
    text = utils.read_text()
    line = len(text.splitlines()) + 1  # last, so that no later marker is met first
    utils.write_text(text + "# BEGIN SOLUTION TODO9: a block never closed\n")
    assert make_release.main(["--src", str(fake), "--out", str(out), "--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{utils.as_posix()}:{line}:" in err[0] and "never closed" in err[0], err
    assert snapshot(out) == before and zip_path.read_bytes() == zip_before
    assert sorted(p.name for p in dist.iterdir()) == sorted([out.name, zip_path.name])

    # no students' guide: one error naming it
    assert make_release.main(["--guide", str(tmp_path / "students.md"), "--out", str(out), "--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{tmp_path / 'students.md'}: the students' guide is missing" in err[0], err
    assert snapshot(out) == before and zip_path.read_bytes() == zip_before

    # an existing zip is not replaced without --force either
    shutil.rmtree(out)
    assert make_release.main(["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(zip_path) in err[0] and "--force" in err[0], err
    assert not out.exists() and zip_path.read_bytes() == zip_before
