"""Generate the student copy lab/ from the reference solutions/.

Why: keeping two hand-maintained copies of every file lets them drift (a fixed bug or docstring reaches one
copy only). Like otter-grader's `otter assign` and nbgrader, the kit keeps ONE source, solutions/, with markers:

    # BEGIN SOLUTION TODO<n> [(<title>)]: [<name>: ]<description>   ...   # END SOLUTION
        -> a uniform banner + raise NotImplementedError("TODO<n>: <name>: <description>")  (.py only)
    # BEGIN INSTRUCTOR ... [# ELSE LAB ...] # END INSTRUCTOR
        -> instructor lines dropped; the commented ELSE LAB lines are uncommented
    # LAB: exclude   (in a file's first lines) -> the file is instructor-only and not copied

Everything is generated and checked in memory first (markers paired, .py compiles, .yml parses, no marker text
left), so a bad marker leaves lab/ untouched. Only files the generator manages are written or removed: git-ignored
student outputs inside lab/ (test_results/, checkpoints, ...) survive a regeneration. `--check` compares instead
of writing (for CI / the grader).

The markers are also the ONE description of each TODO. For the kit's own tree (the default --src/--dst, or
--parts ROOT) the tool also generates, from them and from the checks' @points declarations (collected from
ROOT/grader with `pytest --collect-only --list-checks`):
    maskgit_kit/autograder/todos.json      the grader's TODO list (title; the functions each TODO covers, i.e. the
                                           function each block sits in, and their descriptions) and known checks
    docs/students.md                       the students' TODO table, between <!-- BEGIN/END GENERATED: todo-table -->
    grader/README.md                       the points and "what is checked" tables (<!-- ... GENERATED: checks -->)
Exactly one marker of each TODO gives its title: `# BEGIN SOLUTION TODO2 (masking and training): encode_to_z: ...`.
`--check` also fails when one of these is stale.
"""
import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from maskgit_kit import atomic
from maskgit_kit.autograder.todos import CORE, Catalogue, Check, Part, Todo
from maskgit_kit.labtree import STUDENT_FILES

REPO = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".yml", ".yaml", ".md", ".txt", ".cfg", ".toml"}
# Mirrors .gitignore so the tool also behaves outside a git work tree; `git check-ignore` adds the rest.
SKIP_NAMES = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".cache", "test_results", "mask_scheduling",
              "imga", "transformer_checkpoints", "vqgan_checkpoints", "token_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo")
FORBIDDEN = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN INSTRUCTOR", "END INSTRUCTOR")
MARKER_RE = re.compile(r"^(\s*)#\s*((?:BEGIN|END|ELSE)\b.*?)\s*$")
TODO_RE = re.compile(r"^BEGIN SOLUTION\s+(TODO\d+)(?:\s+\(\s*([^()]*?)\s*\))?\s*:\s*(\S.*)$")
EXCLUDE_RE = re.compile(r"^\s*#\s*LAB:\s*exclude\b")
EXCLUDE_SCAN_LINES = 5


class LabError(Exception):
    """A marker or generation problem; the message names file:line."""


@dataclass(frozen=True)
class Block:
    """One solution block: where it is, its marker's fields, and the function it sits in."""
    todo: str
    title: str        # "" unless this marker gives the TODO's title
    text: str         # "<name>: <description>" (what the stub raises after "TODO<n>: ")
    file: str         # path relative to --src
    line: int
    function: str = ""  # qualified name of the innermost enclosing function ("" at module level)

    @property
    def name(self) -> str:
        return self.text.partition(": ")[0] if ": " in self.text else ""

    @property
    def description(self) -> str:
        return self.text.partition(": ")[2] if ": " in self.text else self.text


def stub_lines(indent, todo, description):
    """The uniform student stub (STYLE.md point 6): a banner and a stub that fails loudly, never returns None."""
    msg = json.dumps(f"{todo}: {description}", ensure_ascii=False)  # a valid Python string literal
    return [f"{indent}# {'=' * 30} {todo} {'=' * 30}\n", f"{indent}# {description}\n",
            f"{indent}# (contract: see this function's docstring)\n", f"{indent}# {'=' * (62 + len(todo))}\n",
            f"{indent}raise NotImplementedError({msg})\n"]


def strip_markers(text, name):
    """Return (lab text, [(todo, title, description, line)] of its solution blocks) for one source file's text;
    raise LabError on a bad marker."""
    out, todos = [], []
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
                    raise LabError(f"{where}: expected '# BEGIN SOLUTION TODO<n>: <description>' (or "
                                   f"'TODO<n> (<title>): <description>'), got '{marker}'")
                if not name.endswith(".py"):
                    raise LabError(f"{where}: SOLUTION blocks are only allowed in .py files")
                out += stub_lines(indent, todo.group(1), todo.group(3))
                todos.append((todo.group(1), todo.group(2) or "", todo.group(3), no))
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


def enclosing_functions(text, name, lines):
    """For each line number: the qualified name of the innermost function around it ("" when none)."""
    try:
        tree = ast.parse(text, name)
    except SyntaxError as e:
        raise LabError(f"{name}: the reference code does not compile: line {e.lineno}: {e.msg}") from None
    found = dict.fromkeys(lines, "")

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qual = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    for no in lines:
                        if child.lineno <= no <= child.end_lineno:
                            found[no] = qual  # visited outside in: an inner function overrides
                visit(child, qual + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def generate(src):
    """Build the lab tree in memory: returns ({relative path: bytes}, [Block] of the solution blocks, excluded
    paths)."""
    src = Path(src)
    if not src.is_dir():
        raise LabError(f"--src {src}: not a directory")
    files, blocks, excluded = {}, [], []
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
        lab_text, found = strip_markers(text, name)
        verify(lab_text, name)
        files[rel] = lab_text.encode("utf-8")
        if found:
            functions = enclosing_functions(text, name, [line for *_, line in found])
            blocks += [Block(todo, title, desc, rel, line, functions[line]) for todo, title, desc, line in found]
    return files, blocks, excluded


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


# --- generated parts: the TODO list, the students' TODO table, the grader's tables ---------------------------
TODOS_JSON = "maskgit_kit/autograder/todos.json"
STUDENTS_DOC = "docs/students.md"
GRADER_README = "grader/README.md"
LAB_PREFIX = "lab/"  # where the students find the files, from the root of the kit


def list_checks(grader):
    """The grader's checks as its plugin collects them (a subprocess: the grader runs on its own)."""
    grader = Path(grader)
    if not (grader / "conftest.py").is_file():
        raise LabError(f"{grader}: no grader there (conftest.py missing)")
    with tempfile.TemporaryDirectory(prefix="make-lab-checks-") as tmp:
        out = Path(tmp) / "checks.json"
        cmd = [sys.executable, "-m", "pytest", str(grader), "--collect-only", "-q", "--list-checks", str(out),
               "-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
        proc = subprocess.run(cmd, cwd=grader, capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0 or not out.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise LabError(f"{grader}: collecting the checks failed (pytest exit {proc.returncode}):\n{tail}")
        data = json.loads(out.read_text(encoding="utf-8"))
    return [Check(name, **fields) for name, fields in data.items()]


def _file_rank(rel):
    return (STUDENT_FILES.index(rel) if rel in STUDENT_FILES else len(STUDENT_FILES), rel)


def catalogue(blocks, checks):
    """The TODOs (from the blocks) and checks, cross-checked; raise LabError naming the marker or the check."""
    by_todo = {}
    for b in sorted(blocks, key=lambda b: (int(b.todo[4:]), _file_rank(b.file), b.line)):
        by_todo.setdefault(b.todo, []).append(b)
    todos = {}
    for tid, bs in by_todo.items():
        for b in bs:
            if not b.function:
                raise LabError(f"{b.file}:{b.line}: this {tid} block sits outside any function (the grader finds "
                               "the TODOs by their function)")
        titled = [b for b in bs if b.title]
        if len(titled) != 1:
            where = ", ".join(f"{b.file}:{b.line}" for b in (titled or bs))
            raise LabError(f"{tid}: exactly one of its markers must give its title, as in '# BEGIN SOLUTION {tid} "
                           f"(<title>): ...' ({'found ' + str(len(titled)) if titled else 'none'}: {where})")
        parts = tuple(Part(b.file, b.function, b.name, b.description) for b in bs)
        pools = sorted({c.pool for c in checks if c.todo == tid})
        if len(pools) > 1:
            files = sorted({c.file for c in checks if c.todo == tid})
            raise LabError(f"{tid}: its checks are in different pools ({', '.join(pools)}): give every grader file of "
                           f"{tid} ({', '.join(files)}) the same POOL")
        todos[tid] = Todo(tid, titled[0].title, parts, pools[0] if pools else CORE)
    by_name = {}
    for c in checks:
        label = f"grader/{c.file}::{c.name}"
        if c.todo not in todos:
            raise LabError(f"{label}: declared for {c.todo}, which no solution marker has "
                           f"(TODOs: {', '.join(todos) or 'none'})")
        functions = todos[c.todo].functions
        if c.where.split(" and ")[0].strip() not in functions:
            raise LabError(f"{label}: where to look '{c.where}' is not a function of {c.todo} (its markers sit in "
                           f"{', '.join(functions)})")
        by_name[c.name] = c
    for tid, todo in todos.items():
        pointed = {c.where.split(" and ")[0].strip() for c in checks if c.todo == tid}
        unchecked = [f for f in todo.functions if f not in pointed]
        if unchecked:
            raise LabError(f"{tid}: no check of the grader points to {', '.join(unchecked)} (a @points 'where')")
    return Catalogue(todos, by_name)


def _cell(text):
    """Markdown table cell: a '|' would end the cell, a '*' start emphasis (h*d_k:(h+1)*d_k)."""
    return str(text).replace("|", "\\|").replace("*", "\\*")


def _what(part):
    """A part's marker text without the name when the name only repeats the function's."""
    if not part.name or part.name == part.function.rsplit(".", 1)[-1]:
        return part.description
    return f"{part.name}: {part.description}"


def students_table(cat):
    lines = ["| TODO | file | function | what you write |", "|---|---|---|---|"]
    for todo in cat.todos.values():
        for i, part in enumerate(todo.parts):
            label = f"{todo.id} ({todo.title})" if i == 0 else todo.id
            lines.append(f"| {_cell(label)} | `{LAB_PREFIX}{part.file}` | `{part.function}` | {_cell(_what(part))} |")
    return lines


def _num(x):
    return f"{x:g}" if abs(x - round(x)) < 1e-9 else f"{x:.2f}"


def checks_tables(cat):
    """The points table, then per TODO what each check checks (its docstring's first line) and its points."""
    totals = cat.points_by_todo()
    lines = ["| TODO | part | checks | points |", "|---|---|---:|---:|"]

    def count(checks):
        cases = sum(c.cases for c in checks)
        return f"{len(checks)}" + (f" ({cases} cases)" if cases != len(checks) else "")

    core = [t for t in cat.todos.values() if t.pool == CORE]
    extension = [t for t in cat.todos.values() if t.pool != CORE]
    for group in (core, extension):
        for todo in group:
            mine = [c for c in cat.checks.values() if c.todo == todo.id]
            lines.append(f"| {todo.id} | {_cell(todo.title)} | {count(mine)} | {totals[todo.id]} |")
        if group is core:
            mine = [c for c in cat.checks.values() if cat.pool_of(c.todo) == CORE]
            lines.append(f"| **total** | | {count(mine)} | **{sum(totals[t.id] for t in core)}** |")
        elif group:
            mine = [c for c in cat.checks.values() if cat.pool_of(c.todo) != CORE]
            lines.append(f"| **extension** | | {count(mine)} | **{sum(totals[t.id] for t in group)}** |")
    lines += ["", "A parametrized check's points are shared evenly between its cases. The feedback of a failed",
              "check names its TODO and the function to look at (`see TODOn: ...`)."]
    if extension:
        which = f"{', '.join(t.id for t in extension)} {'is an' if len(extension) == 1 else 'are'} extension"
        pool = "a pool of its own" if len(extension) == 1 else "together one pool of their own"
        lines += [f"{which}{'' if len(extension) == 1 else 's'}: {pool}, reported beside the total "
                  "(`extension: x / n`), never added to it."]
    for todo in cat.todos.values():
        per_file = {}
        for part in todo.parts:
            per_file.setdefault(part.file, []).append(f"`{part.function}`")
        where = "; ".join(f"{', '.join(dict.fromkeys(fs))} in `{f}`" for f, fs in per_file.items())
        lines += ["", f"**{todo.id}, {todo.title} ({totals[todo.id]} points)**: {where}", "",
                  "| check | what is checked | points |", "|---|---|---:|"]
        for c in cat.checks.values():
            if c.todo == todo.id:
                cases = f" ({c.cases} cases, {_num(c.points / c.cases)} each)" if c.cases > 1 else ""
                lines.append(f"| `{c.name}` | {_cell(c.title)}{cases} | {c.points} |")
    return lines


def replace_region(text, region, lines, name):
    """``text`` with the lines between <!-- BEGIN GENERATED: region --> and <!-- END GENERATED: region -->
    replaced; raise LabError naming the file when the pair is missing, repeated or out of order."""
    begin, end = f"<!-- BEGIN GENERATED: {region} -->", f"<!-- END GENERATED: {region} -->"
    rows = text.splitlines(keepends=True)
    at = {m: [i for i, r in enumerate(rows) if r.strip() == m] for m in (begin, end)}
    if len(at[begin]) != 1 or len(at[end]) != 1 or at[begin][0] > at[end][0]:
        raise LabError(f"{name}: needs one line '{begin}' and, after it, one line '{end}' (found "
                       f"{len(at[begin])} and {len(at[end])})")
    i, j = at[begin][0], at[end][0]
    return "".join(rows[:i + 1]) + "".join(f"{line}\n" for line in lines) + "".join(rows[j:])


def generate_parts(blocks, root):
    """{path: text} of every generated part under the kit's root ``root``."""
    root = Path(root)
    cat = catalogue(blocks, list_checks(root / "grader"))
    out = {root / TODOS_JSON: json.dumps(cat.to_json(), indent=2, ensure_ascii=False) + "\n"}
    for rel, region, lines in ((STUDENTS_DOC, "todo-table", students_table(cat)),
                               (GRADER_README, "checks", checks_tables(cat))):
        path = root / rel
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise LabError(f"{path}: cannot read it ({e.strerror or e})") from None
        out[path] = replace_region(text, region, lines, str(path))
    return out


def stale_parts(parts):
    return [p for p, text in parts.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]


def parts_root(args):
    """The kit whose parts are generated: --parts, else this repository when --src and --dst are its own."""
    if args.no_parts:
        return None
    if args.parts:
        return Path(args.parts)
    own = Path(args.src).resolve() == (REPO / "solutions").resolve() and \
        Path(args.dst).resolve() == (REPO / "lab").resolve()
    return REPO if own else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--src", default=str(REPO / "solutions"), help="reference tree with markers")
    parser.add_argument("--dst", default=str(REPO / "lab"), help="student tree to (re)generate")
    parser.add_argument("--check", action="store_true", help="only compare dst (and the parts) with a fresh generation")
    parser.add_argument("--parts", default=None, metavar="ROOT",
                        help="also generate the parts of the kit at ROOT (todos.json, the TODO table of "
                             "docs/students.md, the tables of grader/README.md); default: this repository when "
                             "--src and --dst are its own, else none")
    parser.add_argument("--no-parts", action="store_true", help="only the lab tree")
    args = parser.parse_args(argv)
    try:
        check_paths(args.src, args.dst)
        files, blocks, excluded = generate(args.src)
        todos = Counter(b.todo for b in blocks)
        stubs = ", ".join(f"{k}={todos[k]}" for k in sorted(todos, key=lambda t: int(t[4:]))) or "none"
        root = parts_root(args)
        parts = generate_parts(blocks, root) if root is not None else {}
        if args.check:
            stale = stale_parts(parts)
            missing, differing, extra = diff_tree(files, args.dst)
            if missing or differing or extra:
                for label, paths in (("missing", missing), ("differs", differing), ("extra", extra)):
                    for rel in paths[:10]:
                        print(f"{label}: {Path(args.dst) / rel}")
                print(f"{args.dst} is out of date: run python tools/make_lab.py", file=sys.stderr)
            else:
                print(f"{args.dst} is up to date ({len(files)} files; TODO stubs: {stubs})")
            for path in stale:
                print(f"stale: {path}")
            if stale:
                print(f"generated parts are out of date ({', '.join(str(p) for p in stale)}): run python "
                      "tools/make_lab.py", file=sys.stderr)
            elif parts:
                print(f"generated parts are up to date ({', '.join(str(p) for p in parts)})")
            return 1 if missing or differing or extra or stale else 0
        written, removed = write_tree(files, args.src, args.dst)
        changed = stale_parts(parts)
        for path in changed:
            atomic.write_text(path, parts[path])
    except (LabError, OSError) as e:
        print(f"make_lab: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.dst}: {len(files)} files generated, {len(written)} written, {len(removed)} removed"
          f"{' (' + ', '.join(removed) + ')' if removed else ''}; excluded: {', '.join(excluded) or 'none'}")
    print(f"TODO stubs: {stubs}")
    if parts:
        print(f"generated parts: {len(parts)}, {len(changed)} written"
              f"{' (' + ', '.join(str(p) for p in changed) + ')' if changed else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
