"""Instructor mode: grade a folder of submissions with the trusted grader into one CSV; no submission can forge
its score or touch another's.

    python tools/batch_grade.py SUBMISSIONS --out grades.csv [--jobs 2] [--results-dir DIR] [--regrade]
                                [--seed N] [--timeout S] [--memory-mb MB] [-- PYTEST_ARGS]

Each subfolder of SUBMISSIONS is one submission: a whole lab tree, or only the student files anywhere in it
(found at their lab path or by a unique file name; the course's ``layers.py`` counts as ``layer.py``), copied over a
fresh copy of the base lab. A missing file keeps the lab stub (0 points for its TODO).

Each submission's code runs only in a confined child (``maskgit_kit/autograder/sandbox.py``: its own PID and
network namespaces, Landlock, resource limits, a wall-clock limit). The verdict is computed here
(``maskgit_kit/autograder/trusted.py``): the hidden checks judge what the child's calls returned against the
reference run in this process, with a fresh seed for the run (``--seed`` to repeat one); the child's own report
can only take points away. First the reference itself is graded the same way: it must earn every point, or the
run stops with the reason.

Written by this process only, atomically, after every submission (a crash loses nothing already graded):
``--out`` (one row each) and, in ``--results-dir`` (default: ``<out>-results/``), each submission's Gradescope-style
``<name>.json`` and the child's ``<name>.log``. Re-running resumes: a submission whose student files (and the
grader) are unchanged since its kept result is not graded again (``--regrade`` grades everything).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from maskgit_kit.atomic import replacing, write_json
from maskgit_kit.autograder import sandbox, trusted
from maskgit_kit.autograder.impl import STUDENT_FILES, ImplError, resolve_impl
from maskgit_kit.autograder.submission import find_student_file
from maskgit_kit.autograder.todos import TodosError
from maskgit_kit.autograder.todos import load as load_todos
from maskgit_kit.autograder.zygote import Zygote
from maskgit_kit.paths import KIT_ROOT

try:
    KNOWN = load_todos()
except TodosError as exc:
    raise SystemExit(f"error: {exc}") from None
TODOS = list(KNOWN.todos)
COLUMNS = ["submission", "score", *TODOS, "status", "seconds", "missing_files", "failed_checks", "hidden_failed",
           "seed", "key"]
LOG_LIMIT = 1 << 20  # bytes of a child's log kept
# children forked from a pre-loaded zygote (Linux; macOS cannot fork safely after loading frameworks)
USE_ZYGOTE = sys.platform.startswith("linux") and os.environ.get("MASKGIT_GRADER_ZYGOTE", "1") != "0"
PROBE_TIMEOUT = 15.0  # seconds per hidden check's observation (each takes well under a second on the reference)


def pytest_check_timeout(pytest_args: list[str], default: float) -> float:
    """The public checks' time limit: --check-timeout, or the same option given to pytest after ``--``."""
    for i, a in enumerate(pytest_args):
        value = a.split("=", 1)[1] if a.startswith("--check-timeout=") else (
            pytest_args[i + 1] if a == "--check-timeout" and i + 1 < len(pytest_args) else None)
        if value is not None:
            try:
                return float(value)
            except ValueError:
                raise SystemExit(f"error: --check-timeout {value!r}: expected seconds") from None
    return default


def student_files(submission: Path) -> tuple[dict[str, Path], list[str]]:
    """The submission's student files (lab path -> file) and the missing ones."""
    files, missing = {}, []
    for rel in STUDENT_FILES:
        found = find_student_file(submission, rel)
        if found is None:
            missing.append(rel)
        else:
            files[rel] = found
    return files, missing


def prepare(submission: Path, base: Path, dest: Path) -> list[str]:
    """Fresh copy of the base lab at ``dest`` with the submission's student files; returns the missing ones."""
    files, missing = student_files(submission)
    trusted.prepare_impl(files, base, dest)
    return missing


def grader_fingerprint(base: Path, pytest_args: list[str]) -> str:
    """What a kept result depends on besides the submission: the checks (public and hidden), the base lab, the
    reference and the options."""
    h = hashlib.sha256(json.dumps(pytest_args).encode())
    for folder in (KIT_ROOT / "grader", trusted.HIDDEN_DIR, KIT_ROOT / "maskgit_kit" / "autograder", base,
                   KIT_ROOT / "solutions"):
        for path in sorted(folder.rglob("*.py")) + sorted(folder.rglob("*.json")) + sorted(folder.rglob("*.yml")):
            if "__pycache__" not in path.parts:
                h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def content_key(files: dict[str, Path], fingerprint: str) -> str:
    h = hashlib.sha256(fingerprint.encode())
    for rel in STUDENT_FILES:
        h.update(rel.encode() + b"\0" + (files[rel].read_bytes() if rel in files else b"<missing>") + b"\0")
    return h.hexdigest()[:32]


def safe_name(name: str) -> str:
    """A file name for a submission's kept results (folder names can hold anything)."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80].lstrip(".") or "submission"
    return clean if clean == name else f"{clean}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def row_of(name: str, grade: trusted.Grade, missing: list[str], key: str) -> dict:
    per_todo = grade.per_todo(TODOS)
    return {"submission": name, "score": round(grade.score, 2), **{t: round(per_todo[t], 2) for t in TODOS},
            "status": grade.status, "seconds": round(grade.seconds, 1), "missing_files": ";".join(missing),
            "failed_checks": ";".join(grade.failed_checks()),
            "hidden_failed": ";".join(p.name for p in grade.probes if not p.passed), "seed": grade.seed, "key": key}


def kept_row(results_dir: Path, name: str, key: str) -> dict | None:
    """The row of a kept result written by an earlier run for the same content, if any."""
    path = results_dir / f"{safe_name(name)}.json"
    try:
        row = json.loads(path.read_text()).get("maskgit_row") if path.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    return row if isinstance(row, dict) and row.get("key") == key and set(COLUMNS) <= set(row) else None


def write_csv(path: Path, rows: list[dict]) -> None:
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


class Batch:
    def __init__(self, base: Path, results_dir: Path, args: argparse.Namespace, pytest_args: list[str]):
        self.base, self.results_dir, self.args, self.pytest_args = base, results_dir, args, pytest_args
        # first, before the hidden checks or the reference are loaded here: the children are forked from it
        self.zygote = Zygote() if USE_ZYGOTE else None
        self.hidden = trusted.load_hidden(catalogue=KNOWN)
        self.reference = trusted.Reference(Path(args.reference))
        self.limits = sandbox.Limits(memory_mb=args.memory_mb, wall_seconds=args.timeout)
        self.work = Path(tempfile.mkdtemp(prefix="batch-grade-"))
        try:
            self._calibrate(args)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def _calibrate(self, args) -> None:
        self.seed = args.seed if args.seed is not None else secrets.randbits(31)  # fresh per run, unless repeated
        check_timeout = pytest_check_timeout(self.pytest_args, args.check_timeout)
        self.options = {"seed": self.seed, "limits": self.limits, "check_timeout": check_timeout,
                        "probe_timeout": min(check_timeout, PROBE_TIMEOUT), "pytest_args": self.pytest_args}
        self.cases = trusted.calibrate(self.reference, self.base, self.work / "calibration", self.hidden, KNOWN,
                                       {r: Path(args.reference) / r for r in STUDENT_FILES}, **self.options)

    def grade(self, i: int, name: str, files: dict[str, Path], missing: list[str], key: str) -> dict:
        work = self.work / f"{i:04d}"
        grade = trusted.grade_submission(files, base=self.base, work=work, hidden=self.hidden,
                                         reference=self.reference, catalogue=KNOWN, case_names=self.cases,
                                         **self.options)
        row = row_of(name, grade, missing, key)
        data = grade.gradescope(self.hidden, grade.public_summary)
        data["maskgit_row"] = row  # what a resumed run reuses (Gradescope ignores unknown keys)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        stem = safe_name(name)
        write_json(self.results_dir / f"{stem}.json", data)
        log = work / "run" / "log.txt"
        if log.is_file():
            with open(log, "rb") as f:
                text = f.read(LOG_LIMIT)
            with replacing(self.results_dir / f"{stem}.log") as tmp:
                Path(tmp).write_bytes(text)
        shutil.rmtree(work, ignore_errors=True)
        return row


def grade_all(submissions: Path, base: Path, out: Path, results_dir: Path, args, pytest_args: list[str]) -> list:
    subs = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subs:
        raise SystemExit(f"error: {submissions}: no submission subfolders found")
    fingerprint = grader_fingerprint(base, pytest_args)
    rows: dict[str, dict] = {}
    pending = []
    for i, sub in enumerate(subs):
        files, missing = student_files(sub)
        key = content_key(files, fingerprint)
        kept = None if args.regrade else kept_row(results_dir, sub.name, key)
        if kept is not None:
            rows[sub.name] = {**kept, "submission": sub.name}
        else:
            pending.append((i, sub.name, files, missing, key))
    print(f"{len(subs)} submissions: {len(rows)} unchanged since their kept results, {len(pending)} to grade")
    if not pending:
        write_csv(out, [rows[s.name] for s in subs])
        return [rows[s.name] for s in subs]
    try:
        batch = Batch(base, results_dir, args, pytest_args)
    except trusted.HiddenChecksError as exc:
        raise SystemExit(f"error: {exc}") from None
    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {pool.submit(batch.grade, *job): job[1] for job in pending}
            for fut in as_completed(futures):
                name = futures[fut]
                try:
                    rows[name] = fut.result()
                except Exception as exc:  # noqa: BLE001 - a grading error of this row only, never the batch's
                    rows[name] = {c: "" for c in COLUMNS} | {"submission": name, "score": 0, "status":
                                                             f"grader error: {type(exc).__name__}: {exc}"[:200]}
                    rows[name].update({t: 0 for t in TODOS})
                write_csv(out, [rows[s.name] for s in subs if s.name in rows])
                r = rows[name]
                print(f"{name:<30} {r['score']:>6}  " + "  ".join(f"{t} {r[t]:>5}" for t in TODOS) + f"  {r['status']}",
                      flush=True)
    finally:
        batch.close()
    ordered = [rows[s.name] for s in subs]
    write_csv(out, ordered)
    return ordered


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                epilog="Arguments after `--` go to the public checks' pytest run, e.g. "
                                       "`-- --todo TODO3`; the reference is graded with the same selection.")
    p.add_argument("submissions", help="folder with one subfolder per submission")
    p.add_argument("--out", required=True, help="CSV to write (one row per submission)")
    p.add_argument("--base", default="lab", help="lab folder the student files are copied over")
    p.add_argument("--reference", default=str(KIT_ROOT / "solutions"), help="the reference implementation")
    p.add_argument("--jobs", type=int, default=1, help="submissions graded at the same time")
    p.add_argument("--timeout", type=float, default=600, help="wall-clock seconds allowed per submission")
    p.add_argument("--check-timeout", type=float, default=60, help="seconds allowed per public check")
    p.add_argument("--memory-mb", type=int, default=sandbox.Limits().memory_mb,
                   help="address space allowed per submission (MB; torch alone maps about 1500)")
    p.add_argument("--seed", type=int, default=None, help="the hidden checks' seed (default: fresh for this run)")
    p.add_argument("--results-dir", default=None, help="kept results (default: <out>-results next to --out)")
    p.add_argument("--regrade", action="store_true", help="grade every submission, even if unchanged")
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = build_parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    submissions, out = Path(args.submissions), Path(args.out)
    if not submissions.is_dir():
        raise SystemExit(f"error: {submissions}: submissions folder not found")
    if not out.parent.is_dir():
        raise SystemExit(f"error: --out {out}: folder {out.parent} does not exist")
    if out.exists() and not out.is_file():
        raise SystemExit(f"error: --out {out}: exists and is not a file")
    if args.jobs < 1 or args.timeout <= 0 or args.check_timeout <= 0 or args.memory_mb < 512:
        raise SystemExit("error: --jobs must be >= 1, --timeout and --check-timeout > 0, --memory-mb >= 512")
    if not (Path(args.reference) / STUDENT_FILES[0]).is_file():
        raise SystemExit(f"error: --reference {args.reference}: not a lab folder with the student files")
    try:
        base = resolve_impl(args.base, flag="--base")
    except ImplError as exc:
        raise SystemExit(f"error: {exc}") from None
    results_dir = Path(args.results_dir) if args.results_dir else out.with_name(out.stem + "-results")
    t0 = time.time()
    rows = grade_all(submissions, base, out, results_dir, args, extra)
    print(f"wrote {out} ({len(rows)} submissions, {time.time() - t0:.0f} s; kept results in {results_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
