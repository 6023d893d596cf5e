"""Generate the student copy lab/ from the reference solutions/.

Why: keeping two hand-maintained copies of every file lets them drift (a fixed bug or docstring reaches one
copy only). Like otter-grader's `otter assign` and nbgrader, the kit keeps ONE source, solutions/, with markers:

    # BEGIN SOLUTION TODO<n>: <description>   ...   # END SOLUTION
        -> a uniform banner + raise NotImplementedError("TODO<n>: <description>")  (.py only)
    # BEGIN INSTRUCTOR ... [# ELSE LAB ...] # END INSTRUCTOR
        -> instructor lines dropped; the commented ELSE LAB lines are uncommented
    # LAB: exclude   (in a file's first lines) -> the file is instructor-only and not copied

Everything is generated and checked in memory first (markers paired, .py compiles, .yml parses, no marker text
left), so a bad marker leaves lab/ untouched. Only files the generator manages are written or removed: git-ignored
student outputs inside lab/ (test_results/, checkpoints, ...) survive a regeneration. `--check` compares instead
of writing (for CI / the grader).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".yml", ".yaml", ".md", ".txt", ".cfg", ".toml"}
# Mirrors .gitignore so the tool also behaves outside a git work tree; `git check-ignore` adds the rest.
SKIP_NAMES = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".cache", "test_results", "mask_scheduling",
              "imga", "transformer_checkpoints", "vqgan_checkpoints", "token_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo")
FORBIDDEN = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN INSTRUCTOR", "END INSTRUCTOR")
MARKER_RE = re.compile(r"^(\s*)#\s*((?:BEGIN|END|ELSE)\b.*?)\s*$")
TODO_RE = re.compile(r"^BEGIN SOLUTION\s+(TODO\d+)\s*:\s*(\S.*)$")
EXCLUDE_RE = re.compile(r"^\s*#\s*LAB:\s*exclude\b")
EXCLUDE_SCAN_LINES = 5


class LabError(Exception):
    """A marker or generation problem; the message names file:line."""


def stub_lines(indent, todo, description):
    """The uniform student stub (STYLE.md point 6): a banner and a stub that fails loudly, never returns None."""
    msg = json.dumps(f"{todo}: {description}", ensure_ascii=False)  # a valid Python string literal
    return [f"{indent}# {'=' * 30} {todo} {'=' * 30}\n", f"{indent}# {description}\n",
            f"{indent}# (contract: see this function's docstring)\n", f"{indent}# {'=' * (62 + len(todo))}\n",
            f"{indent}raise NotImplementedError({msg})\n"]


def strip_markers(text, name):
    """Return (lab text, Counter of TODO stubs) for one source file's text; raise LabError on a bad marker."""
    out, todos = [], Counter()
    block = None  # None, or (kind, start line, state): kind "SOLUTION"/"INSTRUCTOR"; state "drop"/"lab"
    for no, line in enumerate(text.splitlines(keepends=True), 1):
        where = f"{name}:{no}"
        m = MARKER_RE.match(line)
        if m:
            indent, marker = m.groups()
            if marker.startswith("BEGIN") and block:
                raise LabError(f"{where}: nested '{marker}' inside the {block[0]} block opened at line {block[1]}")
            if marker.startswith("BEGIN SOLUTION"):
                todo = TODO_RE.match(marker)
                if not todo:
                    raise LabError(f"{where}: expected '# BEGIN SOLUTION TODO<n>: <description>', got '{marker}'")
                if not name.endswith(".py"):
                    raise LabError(f"{where}: SOLUTION blocks are only allowed in .py files")
                out += stub_lines(indent, *todo.groups())
                todos[todo.group(1)] += 1
                block = ("SOLUTION", no, "drop")
            elif marker == "BEGIN INSTRUCTOR":
                block = ("INSTRUCTOR", no, "drop")
            elif marker == "ELSE LAB":
                if not block or block[0] != "INSTRUCTOR" or block[2] != "drop":
                    raise LabError(f"{where}: '# ELSE LAB' outside a BEGIN INSTRUCTOR block (or given twice)")
                block = (block[0], block[1], "lab")
            elif marker in ("END SOLUTION", "END INSTRUCTOR"):
                if not block:
                    raise LabError(f"{where}: '# {marker}' without a matching BEGIN")
                if marker != f"END {block[0]}":
                    raise LabError(f"{where}: '# {marker}' closes the {block[0]} block opened at line {block[1]}")
                block = None
            else:
                raise LabError(f"{where}: unknown marker '# {marker}' (known: BEGIN SOLUTION TODO<n>: ..., "
                               "END SOLUTION, BEGIN INSTRUCTOR, ELSE LAB, END INSTRUCTOR)")
        elif block is None:
            out.append(line)
        elif block[2] == "lab":
            if not line.strip():
                out.append(line)
                continue
            c = re.match(r"^(\s*)# ?(.*)$", line, re.DOTALL)
            if not c:
                raise LabError(f"{where}: lines between '# ELSE LAB' and '# END INSTRUCTOR' must be commented")
            out.append(c.group(1) + c.group(2))
    if block:
        raise LabError(f"{name}:{block[1]}: BEGIN {block[0]} is never closed (missing '# END {block[0]}')")
    return "".join(out), todos


def git_ignored(root, rels):
    """The subset of `rels` (paths relative to root) that git ignores; empty outside a git work tree."""
    probe = "make-lab-probe.py"  # if even this is ignored, root sits in an ignored folder: git can't tell us
    try:
        res = subprocess.run(["git", "-C", str(root), "check-ignore", "--stdin", "-z"], capture_output=True,
                             input="\0".join([probe, *rels]).encode() + b"\0", check=False)
    except OSError:  # no git installed: the fixed SKIP_NAMES list still applies
        return set()
    ignored = set(res.stdout.decode().split("\0")) - {""} if res.returncode == 0 else set()
    return set() if probe in ignored else ignored


def managed_files(root):
    """Sorted relative POSIX paths of the files under root that are not ignored (generated/owned by the tool)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_NAMES)
        rel_dir = Path(dirpath).relative_to(root)
        found += [(rel_dir / f).as_posix() for f in filenames if not f.endswith(SKIP_SUFFIXES)]
    ignored = git_ignored(root, found)
    return sorted(f for f in found if f not in ignored)


def generate(src):
    """Build the lab tree in memory: returns ({relative path: bytes}, Counter of TODO stubs, excluded paths)."""
    src = Path(src)
    if not src.is_dir():
        raise LabError(f"--src {src}: not a directory")
    files, todos, excluded = {}, Counter(), []
    for rel in managed_files(src):
        data = (src / rel).read_bytes()
        name = (src / rel).as_posix()
        if Path(rel).suffix not in TEXT_SUFFIXES:
            files[rel] = data
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LabError(f"{name}: not valid UTF-8 ({e})") from None
        if any(EXCLUDE_RE.match(line) for line in text.splitlines()[:EXCLUDE_SCAN_LINES]):
            excluded.append(rel)
            continue
        lab_text, counts = strip_markers(text, name)
        verify(lab_text, name)
        files[rel] = lab_text.encode("utf-8")
        todos += counts
    return files, todos, excluded


def verify(text, name):
    """Guard against leaks: no marker text survives, generated Python compiles and generated YAML parses."""
    for no, line in enumerate(text.splitlines(), 1):
        for word in FORBIDDEN:
            if word in line:
                raise LabError(f"{name}: generated line {no} still contains '{word}' (marker text would leak)")
    if name.endswith(".py"):
        try:
            compile(text, name, "exec")
        except SyntaxError as e:
            raise LabError(f"{name}: generated lab code does not compile: line {e.lineno}: {e.msg}") from None
    elif name.endswith((".yml", ".yaml")):
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise LabError(f"{name}: generated lab YAML does not parse: {e}") from None


def diff_tree(files, dst):
    """Return (missing, differing, extra) relative paths of dst against the generated files."""
    dst = Path(dst)
    have = set(managed_files(dst)) if dst.is_dir() else set()
    missing = sorted(set(files) - have)
    differing = sorted(f for f in set(files) & have if (dst / f).read_bytes() != files[f])
    return missing, differing, sorted(have - set(files))


def write_tree(files, src, dst):
    """Stage the tree in a temp folder beside dst, then move it in: the whole folder when dst is new, else only
    changed files (each with an atomic os.replace), removing managed files that are no longer generated."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dst.name}-staging-", dir=dst.parent))
    try:
        for rel, data in files.items():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            (stage / rel).write_bytes(data)
            shutil.copymode(Path(src) / rel, stage / rel)
        if not dst.exists():
            os.replace(stage, dst)
            return sorted(files), []
        missing, differing, extra = diff_tree(files, dst)
        for rel in missing + differing:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, dst / rel)
        for rel in extra:
            (dst / rel).unlink()
            parent = (dst / rel).parent
            while parent != dst and not any(parent.iterdir()):  # drop folders that only held removed files
                parent.rmdir()
                parent = parent.parent
        return missing + differing, extra
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def check_paths(src, dst):
    """Refuse a dst that would overlap src: writing or pruning there would damage the reference."""
    s, d = Path(src).resolve(), Path(dst).resolve()
    if s == d or s in d.parents or d in s.parents:
        raise LabError(f"--dst {dst}: must not be, contain or lie inside --src {src}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--src", default=str(REPO / "solutions"), help="reference tree with markers")
    parser.add_argument("--dst", default=str(REPO / "lab"), help="student tree to (re)generate")
    parser.add_argument("--check", action="store_true", help="only compare dst with a fresh generation")
    args = parser.parse_args(argv)
    try:
        check_paths(args.src, args.dst)
        files, todos, excluded = generate(args.src)
        stubs = ", ".join(f"{k}={todos[k]}" for k in sorted(todos, key=lambda t: int(t[4:]))) or "none"
        if args.check:
            missing, differing, extra = diff_tree(files, args.dst)
            if missing or differing or extra:
                for label, paths in (("missing", missing), ("differs", differing), ("extra", extra)):
                    for rel in paths[:10]:
                        print(f"{label}: {Path(args.dst) / rel}")
                print(f"{args.dst} is out of date: run python tools/make_lab.py", file=sys.stderr)
                return 1
            print(f"{args.dst} is up to date ({len(files)} files; TODO stubs: {stubs})")
            return 0
        written, removed = write_tree(files, args.src, args.dst)
    except (LabError, OSError) as e:
        print(f"make_lab: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.dst}: {len(files)} files generated, {len(written)} written, {len(removed)} removed"
          f"{' (' + ', '.join(removed) + ')' if removed else ''}; excluded: {', '.join(excluded) or 'none'}")
    print(f"TODO stubs: {stubs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
