"""Instructor mode: grade a folder of submissions, each in its own child process, into one CSV.

    python tools/batch_grade.py SUBMISSIONS --out grades.csv [--jobs 2] [--results-dir DIR] [-- PYTEST_ARGS]

Each subfolder of SUBMISSIONS is one submission: a whole lab tree, or only the student files. Only the four
student files (layer.py, VQGAN_Transformer.py, training_transformer.py, inpainting.py) are taken, found at their
lab path or, failing that, by a unique file name anywhere in the subfolder (the course's ``layers.py`` counts as
``layer.py``), and copied over a fresh copy of the base lab. A missing file keeps the lab stub (0 points for its
TODO). The submission's code runs only in the child (``pytest grader --impl COPY --gradescope results.json``); this
process only reads the JSON it wrote.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from maskgit_kit.atomic import replacing
from maskgit_kit.autograder.impl import STUDENT_FILES, ImplError, resolve_impl
from maskgit_kit.autograder.isolate import LEAN, Job, run_many
from maskgit_kit.autograder.results import INCOMPLETE
from maskgit_kit.autograder.submission import find_student_file
from maskgit_kit.autograder.todos import TodosError
from maskgit_kit.autograder.todos import load as load_todos
from maskgit_kit.paths import KIT_ROOT

GRADER_DIR = KIT_ROOT / "grader"
# The known TODOs and checks: the grader's generated list (todos.json, from the checks' @points declarations), so a
# child's results.json naming a check the grader does not have is an error, not a score.
try:
    KNOWN = load_todos()
except TodosError as exc:
    raise SystemExit(f"error: {exc}") from None
TODOS = list(KNOWN.todos)

COLUMNS = ["submission", "score", *TODOS, "status", "seconds", "missing_files", "failed_checks"]
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "test_results", "mask_scheduling", "imga",
                                     "transformer_checkpoints", "vqgan_checkpoints", "token_cache")


def prepare(submission: Path, base: Path, dest: Path) -> list[str]:
    """Fresh copy of the base lab at ``dest`` with the submission's student files; returns the missing ones."""
    shutil.copytree(base, dest, ignore=COPY_IGNORE)
    missing = []
    for rel in STUDENT_FILES:
        found = find_student_file(submission, rel)
        if found is None:
            missing.append(rel)
        else:
            shutil.copyfile(found, dest / rel)
    return missing


def read_results(path: Path) -> dict | None:
    """Score and failures from a results.json, recomputed from its tests (capped at each max_score)."""
    try:
        data = json.loads(path.read_text())
        tests = data["tests"]
        per_todo = dict.fromkeys(TODOS, 0.0)
        failed, finished = [], INCOMPLETE not in str(data.get("output", ""))
        for t in tests:
            todo, check = t["tags"][0], t["tags"][1]
            known = KNOWN.checks.get(check.split("[")[0])
            if todo not in KNOWN.todos or known is None or known.todo != todo:
                raise ValueError(f"unknown check {t['name']}")
            if t["status"] == "passed":
                per_todo[todo] += min(float(t["score"]), float(t["max_score"]))
            else:
                failed.append(check)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"per_todo": per_todo, "score": sum(per_todo.values()), "failed": failed, "finished": finished}


def status_of(exit_code, results) -> str:
    if exit_code is None:
        return "timeout"
    if results is None or "error" in results:
        return f"no results (exit {exit_code})"
    if exit_code in (0, 1) and results["finished"]:
        return "ok"
    return f"crashed (exit {exit_code})"


def grade_all(submissions: Path, base: Path, jobs: int, timeout: float, extra: list[str],
              results_dir: Path | None) -> list[dict]:
    subs = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subs:
        raise SystemExit(f"error: {submissions}: no submission subfolders found")
    work = Path(tempfile.mkdtemp(prefix="batch-grade-"))
    try:
        todo_jobs, missing = [], {}
        for sub in subs:
            impl = work / sub.name / "impl"
            missing[sub.name] = prepare(sub, base, impl)
            (work / sub.name / "scratch").mkdir()
            args = [str(GRADER_DIR), "--impl", str(impl), "--gradescope", str(work / sub.name / "results.json"),
                    "-q", *LEAN, *extra]
            todo_jobs.append(Job(args, work / sub.name / "log.txt", work / sub.name / "scratch"))
        outcomes = run_many(todo_jobs, parallel=jobs, timeout=timeout)
        rows = []
        for sub, outcome in zip(subs, outcomes, strict=True):
            json_path = work / sub.name / "results.json"
            results = read_results(json_path) if json_path.is_file() else None
            row = {"submission": sub.name, "status": status_of(outcome.exit_code, results),
                   "seconds": round(outcome.seconds, 1), "missing_files": ";".join(missing[sub.name])}
            ok = results is not None and "error" not in results
            row["score"] = round(results["score"], 2) if ok else 0
            row.update({t: round(results["per_todo"][t], 2) if ok else 0 for t in TODOS})
            row["failed_checks"] = ";".join(results["failed"]) if ok else ""
            rows.append(row)
            if results_dir is not None:
                results_dir.mkdir(parents=True, exist_ok=True)
                for name, suffix in (("results.json", ".json"), ("log.txt", ".log")):
                    if (work / sub.name / name).is_file():
                        shutil.copyfile(work / sub.name / name, results_dir / f"{sub.name}{suffix}")
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_csv(path: Path, rows: list[dict]) -> None:
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                epilog="Arguments after `--` go to pytest, e.g. `-- --todo TODO3 --check-timeout 30`.")
    p.add_argument("submissions", help="folder with one subfolder per submission")
    p.add_argument("--out", required=True, help="CSV to write (one row per submission)")
    p.add_argument("--base", default="lab", help="lab folder the student files are copied over")
    p.add_argument("--jobs", type=int, default=1, help="submissions graded at the same time")
    p.add_argument("--timeout", type=float, default=600, help="seconds allowed per submission")
    p.add_argument("--results-dir", default=None, help="also keep each submission's results.json and log here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = build_parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    submissions, out = Path(args.submissions), Path(args.out)
    if not submissions.is_dir():
        raise SystemExit(f"error: {submissions}: submissions folder not found")
    if out.exists() and not args.overwrite:
        raise SystemExit(f"error: --out {out}: already exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise SystemExit(f"error: --out {out}: folder {out.parent} does not exist")
    if args.jobs < 1 or args.timeout <= 0:
        raise SystemExit("error: --jobs must be >= 1 and --timeout > 0")
    try:
        base = resolve_impl(args.base, flag="--base")
    except ImplError as exc:
        raise SystemExit(f"error: {exc}") from None
    t0 = time.time()
    rows = grade_all(submissions, base, args.jobs, args.timeout, extra,
                     Path(args.results_dir) if args.results_dir else None)
    write_csv(out, rows)
    for r in rows:
        print(f"{r['submission']:<30} {r['score']:>6}  " + "  ".join(f"{t} {r[t]:>5}" for t in TODOS)
              + f"  {r['status']}" + (f"  missing: {r['missing_files']}" if r["missing_files"] else ""))
    print(f"wrote {out} ({len(rows)} submissions, {time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
