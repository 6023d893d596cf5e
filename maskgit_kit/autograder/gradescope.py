"""Gradescope's entry point: grade ``$ROOT/submission`` with the trusted grader, write ``$ROOT/results/results.json``.

    python3 -m maskgit_kit.autograder.gradescope            # what the bundle's run_autograder calls

``ROOT`` is ``/autograder`` (Gradescope's layout: ``source/`` the unpacked bundle of ``tools/make_gradescope.py``,
``submission/`` the student's upload, ``results/``), or ``$AUTOGRADER_ROOT``; ``--root``/``--source`` override both.

The upload may have any folder shape: each of the four student files is found by ``submission.find_student_file``
(``layers.py`` accepted for ``layer.py``). A student file that is missing, ambiguous, too large or not UTF-8 text is
not graded (the lab's stub stands in for it, so its TODOs earn 0) and the output says why; an upload without any
usable student file is not graded at all. results.json is written in every case, atomically: a provisional one
(score 0, "did not finish") first, so that even a grader killed by Gradescope's time or memory limit leaves a
valid file, then the real one; an error of the grading run itself also ends in a score-0 results.json that says so.

The case names (``check[case]`` of every public check) come from ``case_names.json``, written by the bundle's
build after grading the reference; when it is missing or was made for other checks, the reference is graded here
first (``trusted.calibrate``), which costs one more grading run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .. import atomic
from ..labtree import STUDENT_FILES
from . import sandbox, todos, trusted
from .submission import ALIASES, find_student_file

DEFAULT_ROOT = Path("/autograder")
CASE_NAMES = "case_names.json"
MAX_FILE_BYTES = 1 << 20          # a student file is source code: 1 MiB is far more than any solution needs
LISTED = 12                       # files of an unusable upload named in its feedback
# Gradescope's default container: 768 MB memory, 0.5 vCPU, 10 minutes. The container caps the real memory (RSS);
# RLIMIT_AS caps virtual memory, of which torch alone maps about 1.5 GB, so it stays well above 768 MB. The child's
# wall limit leaves about 4 of the 10 minutes to start Python, observe the reference and write the result (an
# endless loop measured 498 s in all with a 420 s limit at 0.5 vCPU: bench/gradescope_profile.py --uploads loop).
# A check or probe of the reference takes at most about 5 s at 0.5 vCPU; 20 s each lets a submission that hangs in
# one TODO still be graded on the others within the wall limit.
LIMITS = sandbox.Limits(memory_mb=4096, cpu_seconds=360, file_mb=64, open_files=256, processes=64,
                        wall_seconds=360.0)
CHECK_TIMEOUT = 20.0
PROBE_TIMEOUT = 20.0


class UploadError(Exception):
    """The upload holds nothing that can be graded; the message tells the student what to upload."""


# --- the upload ----------------------------------------------------------------------------------------------------
def _listing(folder: Path, limit: int = LISTED) -> tuple[list[str], int]:
    """Up to ``limit`` file paths of the upload (relative, sorted) and the total number of files."""
    found: list[str] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            total += 1
            if len(found) < limit:
                found.append((Path(dirpath) / name).relative_to(folder).as_posix())
    return found, total


def _why_not_found(folder: Path, rel: str) -> str:
    names = (Path(rel).name, *ALIASES.get(Path(rel).name, ()))
    matches = sorted(p.relative_to(folder).as_posix() for n in names for p in folder.rglob(n)
                     if "__pycache__" not in p.parts)
    if not matches:
        return f"{rel}: not in the upload"
    return f"{rel}: {len(matches)} files could be it ({', '.join(matches[:4])}); upload exactly one"


def _check_file(path: Path, rel: str, shown: str) -> str | None:
    """Why ``path`` cannot be graded as ``rel`` (None: it can)."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        return f"{rel}: {shown} is {size / (1 << 20):.1f} MB, over the {MAX_FILE_BYTES >> 20} MB a source file may be"
    data = path.read_bytes()
    if b"\0" in data:
        return f"{rel}: {shown} is not a text file (binary data)"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"{rel}: {shown} is not UTF-8 text (byte {exc.start})"
    return None


def collect(folder: Path) -> tuple[dict[str, Path], list[str], list[str]]:
    """The gradable student files of the upload ({lab path: file}), why each other one is not graded, and
    warnings (a file that does not compile is graded: its checks fail). ``UploadError`` when none can be graded."""
    if not folder.is_dir():
        raise UploadError(f"no upload found ({folder} is missing)")
    files: dict[str, Path] = {}
    problems: list[str] = []
    warnings: list[str] = []
    for rel in STUDENT_FILES:
        path = find_student_file(folder, rel)
        if path is None:
            problems.append(_why_not_found(folder, rel))
            continue
        shown = path.relative_to(folder).as_posix()
        why = _check_file(path, rel, shown)
        if why:
            problems.append(why)
            continue
        try:
            compile(path.read_text(encoding="utf-8"), shown, "exec")  # compiles only, runs nothing
        except SyntaxError as exc:
            warnings.append(f"{rel}: {shown} line {exc.lineno}: SyntaxError: {exc.msg} (its checks fail)")
        files[rel] = path
    if not files:
        listed, total = _listing(folder)
        wanted = ", ".join(STUDENT_FILES)
        held = (f"Your upload holds {total} file(s): {', '.join(listed)}" + (", ..." if total > len(listed) else "")
                if total else "Your upload is empty.")
        hint = ""
        if any(Path(p).suffix.lower() in (".zip", ".tar", ".gz", ".tgz", ".7z", ".rar") for p in listed):
            hint = ("\nAn archive inside the upload is not unpacked: upload the .py files themselves (or one zip "
                    "of them, which Gradescope unpacks).")
        raise UploadError(f"No student file could be graded. Upload these files (any folder layout; layers.py is "
                          f"accepted for layer.py): {wanted}.\n" + "\n".join(problems) + f"\n{held}{hint}")
    return files, problems, warnings


# --- case names ------------------------------------------------------------------------------------------------------
def checks_digest(source: Path) -> str:
    """A digest of what the case names depend on: the public checks and the catalogue."""
    h = hashlib.sha256()
    for path in sorted((source / "grader").glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update((source / "maskgit_kit" / "autograder" / "todos.json").read_bytes())
    return h.hexdigest()


def write_case_names(source: Path, names: list[tuple[str, str]], path: Path | None = None) -> Path:
    path = path or source / CASE_NAMES
    atomic.write_json(path, {"digest": checks_digest(source), "names": [list(n) for n in names]})
    return path


def read_case_names(source: Path) -> list[tuple[str, str]] | None:
    """The precomputed case names, or None when missing, unreadable or made for other checks."""
    path = source / CASE_NAMES
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("digest") != checks_digest(source):
            return None
        return [(str(check), str(case)) for check, case in data["names"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


class Kit:
    """The trusted side of the bundle at ``source``: catalogue, hidden checks, reference, base lab."""

    def __init__(self, source: Path):
        self.source = source
        self.catalogue = todos.load()
        self.hidden = trusted.load_hidden(source / "hidden_checks", catalogue=self.catalogue)
        self.reference = trusted.Reference(source / "solutions", grader_dir=source / "grader")
        self.base = source / "lab"

    def calibrate(self, work: Path, limits: sandbox.Limits = LIMITS) -> list[tuple[str, str]]:
        return trusted.calibrate(self.reference, self.base, work, self.hidden, self.catalogue,
                                 {rel: self.source / "solutions" / rel for rel in STUDENT_FILES}, limits=limits,
                                 check_timeout=CHECK_TIMEOUT, probe_timeout=PROBE_TIMEOUT)

    def grade(self, files: dict[str, Path], work: Path, names: list[tuple[str, str]],
              limits: sandbox.Limits = LIMITS) -> trusted.Grade:
        return trusted.grade_submission(files, base=self.base, work=work, hidden=self.hidden,
                                        reference=self.reference, catalogue=self.catalogue, case_names=names,
                                        limits=limits, check_timeout=CHECK_TIMEOUT, probe_timeout=PROBE_TIMEOUT)


# --- results.json ----------------------------------------------------------------------------------------------------
def failure(message: str, seconds: float = 0.0) -> dict:
    """A valid score-0 results.json that says what went wrong."""
    return {"score": 0.0, "execution_time": round(seconds, 2), "output": message, "visibility": "visible",
            "stdout_visibility": "hidden", "tests": []}


def number_tests(tests: list[dict]) -> None:
    """Give each test without a ``number`` (the hidden checks) the next one of its TODO ("1.12" after "1.11"), so
    that Gradescope lists every test of a TODO together."""
    last: dict[str, int] = {}
    for t in tests:
        todo, _, n = str(t.get("number", "")).partition(".")
        if n.isdigit():
            last[todo] = max(last.get(todo, 0), int(n))
    for t in tests:
        if "number" not in t:
            todo = str((t.get("tags") or ["TODO0"])[0]).removeprefix("TODO")
            last[todo] = last.get(todo, 0) + 1
            t["number"] = f"{todo}.{last[todo]}"


def _log_tail(work: Path, chars: int = 2000) -> str:
    log = work / "run" / "log.txt"
    if not log.is_file():
        return ""
    with open(log, "rb") as f:
        f.seek(max(0, log.stat().st_size - chars))
        return f.read().decode("utf-8", errors="replace")


def grade_upload(root: Path, source: Path, limits: sandbox.Limits = LIMITS) -> dict:
    """results.json for ``root/submission`` (raises only on an error of the grader itself)."""
    t0 = time.time()
    try:
        files, problems, warnings = collect(root / "submission")
    except UploadError as exc:
        return failure(f"status: not graded\n{exc}", time.time() - t0)
    kit = Kit(source)
    with tempfile.TemporaryDirectory(prefix="maskgit-gradescope-") as tmp:
        names = read_case_names(source)
        if names is None:
            names = kit.calibrate(Path(tmp) / "calibration", limits)
        work = Path(tmp) / "submission"
        grade = kit.grade(files, work, names, limits)
        data = grade.gradescope(kit.hidden, grade.public_summary)
        number_tests(data["tests"])
        tail = _log_tail(work) if grade.status != "ok" else ""
    found = [f"{rel} <- {path.relative_to(root / 'submission').as_posix()}" for rel, path in files.items()]
    head = ["Graded files: " + "; ".join(found)]
    if problems:
        head += ["Not graded (the lab's stub stands in, so what it holds earns 0):", *(f"  {p}" for p in problems)]
    head += [f"Warning: {w}" for w in warnings]
    data["output"] = "\n".join(head) + "\n" + data["output"] + \
        (f"\n\n--- the end of the graded run's log ---\n{tail}" if tail else "")
    data["execution_time"] = round(time.time() - t0, 2)
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(os.environ.get("AUTOGRADER_ROOT", DEFAULT_ROOT)),
                    help="Gradescope's folder (submission/, results/, source/); default $AUTOGRADER_ROOT or "
                         "/autograder")
    ap.add_argument("--source", type=Path, default=None, help="the unpacked bundle (default ROOT/source)")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    source = (args.source or root / "source").resolve()
    results = root / "results" / "results.json"
    t0 = time.time()
    atomic.write_json(results, failure("status: the grading did not finish (the grader was stopped by a time or "
                                       "memory limit, or crashed); score 0. Ask your instructor."))
    try:
        data = grade_upload(root, source)
        code = 0
    except Exception:  # noqa: BLE001 - the grader's own error: still a valid results.json, and the trace in stdout
        trace = traceback.format_exc()
        print(trace, file=sys.stderr)
        data = failure("status: the autograder itself failed (not your submission's fault); score 0. Ask your "
                       f"instructor.\n{trace.strip().splitlines()[-1][:500]}", time.time() - t0)
        code = 1
    atomic.write_json(results, data)
    print(f"score {data['score']} in {time.time() - t0:.1f} s -> {results}")
    return code


if __name__ == "__main__":
    sys.exit(main())
