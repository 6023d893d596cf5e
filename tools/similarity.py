"""Instructor tool: flag pairs of submissions whose TODO code is alike (copydetect); it never changes a grade.

    python tools/similarity.py SUBMISSIONS --out report/ [--threshold 0.5] [--base lab] [--noise 25] [--force]

Each subfolder of SUBMISSIONS is one submission: a whole lab tree, or only the four student files anywhere in it
(found as tools/batch_grade.py finds them: at the lab path, else the one file of that name; the course's
``layers.py`` counts as ``layer.py``). Only what students wrote is compared: the bodies of the TODO functions, i.e.
every function of the base lab whose body raises ``NotImplementedError("TODO...")``, cut out with ``ast``
(docstring left out). Each TODO function is fingerprinted by copydetect (tokens, names replaced, winnowed
k-grams) with the scaffold as boilerplate (the base lab's student files, banners and given lines included, and
its stubs): a k-gram found there never counts, so two untouched stubs share nothing.

A pair's similarity is the larger of the two shares: the fraction of A's compared tokens that match B, and of
B's that match A (a short submission copied into a long one still shows). Written to --out, atomically:
  index.html   the flagged pairs ranked, each TODO function with matches shown side by side, matches marked
  pairs.csv    every pair, ranked: similarity, both shares, flagged, one score per student file
  pairs.json   the same with per-function shares, each submission's files and notes, the settings
The report reads no grade and writes none; a flag is a pointer for a person to read both submissions.
"""
from __future__ import annotations

import argparse
import ast
import csv
import html
import io
import itertools
import json
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from maskgit_kit.atomic import replacing_dirs
from maskgit_kit.autograder.impl import ImplError, resolve_impl
from maskgit_kit.autograder.submission import find_student_file
from maskgit_kit.labtree import STUDENT_FILES

DEFAULT_NOISE = 25  # copydetect's k (its default), in characters of its filtered code (a name is one character there)
REPORT_FILES = ("index.html", "pairs.csv", "pairs.json")


class SimilarityError(Exception):
    """Bad input: the message names the argument or file."""


# ------------------------------------------------------------------------------------------------------------
# finding the files and the TODO functions
# ------------------------------------------------------------------------------------------------------------
def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """Every function of a module by qualified name (``Class.method``, ``outer.inner``)."""
    found = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found[prefix + child.name] = child  # a later definition wins, as when Python runs it
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
    visit(tree, "")
    return found


def _is_todo_stub(node) -> bool:
    """The body raises ``NotImplementedError("TODO...")`` (a statement of the body itself)."""
    for stmt in node.body:
        exc = stmt.exc if isinstance(stmt, ast.Raise) else None
        if (isinstance(exc, ast.Call) and isinstance(exc.func, ast.Name) and exc.func.id == "NotImplementedError"
                and exc.args and isinstance(exc.args[0], ast.Constant) and isinstance(exc.args[0].value, str)
                and exc.args[0].value.startswith("TODO")):
            return True
    return False


@dataclass
class Snippet:
    """One function, dedented: ``text`` is its body after the docstring (what is fingerprinted), ``head`` its
    ``def`` line(s) (shown, never compared); ``lines``/``head_lines`` are their line numbers in the file."""
    text: str
    lines: list[int]
    head: str = ""
    head_lines: list[int] = field(default_factory=list)


def _snippet(node, source_lines: list[str]) -> Snippet:
    first = node.body[0]
    docstring = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                 and isinstance(first.value.value, str))
    head_lines = list(range(node.lineno, first.lineno))
    lines = list(range(first.end_lineno + 1 if docstring else max(first.lineno, node.lineno), node.end_lineno + 1))
    text = textwrap.dedent("\n".join(source_lines[n - 1] for n in head_lines + lines)).split("\n")
    return Snippet("\n".join(text[len(head_lines):]) + "\n", lines, "\n".join(text[:len(head_lines)]), head_lines)


def _parse(path: Path) -> tuple[str, ast.Module]:
    """Source and tree; raises SimilarityError with the reason the file cannot be read."""
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SimilarityError("not UTF-8 text") from None
    except OSError as exc:
        raise SimilarityError(f"cannot be read ({exc.strerror})") from None
    try:
        return source, ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise SimilarityError(f"syntax error at line {exc.lineno}") from None
    except ValueError as exc:  # e.g. a NUL byte
        raise SimilarityError(f"cannot be parsed ({exc})") from None


@dataclass
class Scaffold:
    """The base lab: its TODO functions (unit key ``rel::qualname`` -> stub snippet) and its boilerplate texts."""
    units: dict[str, Snippet]
    boilerplate: list[str]


def read_scaffold(base: Path) -> Scaffold:
    units, boilerplate = {}, []
    for rel in STUDENT_FILES:
        try:
            source, tree = _parse(base / rel)
        except SimilarityError as exc:
            raise SimilarityError(f"--base {base}: {rel}: {exc}") from None
        boilerplate.append(source)
        lines = source.split("\n")  # ast's line numbers (splitlines also splits at \f, \x1c, ...)
        for name, node in _functions(tree).items():
            if _is_todo_stub(node):
                units[f"{rel}::{name}"] = snip = _snippet(node, lines)
                boilerplate.append(snip.text)
    if not units:
        raise SimilarityError(f"--base {base}: no TODO stubs (a function raising NotImplementedError(\"TODO...\")) "
                              "in its student files; pass the student lab, not the reference")
    return Scaffold(units, boilerplate)


@dataclass
class Submission:
    name: str
    files: dict[str, str | None] = field(default_factory=dict)  # rel -> path inside the submission, or None
    units: dict[str, Snippet] = field(default_factory=dict)     # compared TODO functions
    notes: list[str] = field(default_factory=list)


def read_submission(folder: Path, scaffold: Scaffold) -> Submission:
    sub = Submission(folder.name)
    missing, stubs = [], []  # TODO functions
    for rel in STUDENT_FILES:
        path = find_student_file(folder, rel)
        sub.files[rel] = path.relative_to(folder).as_posix() if path else None
        if path is None:
            sub.notes.append(f"{rel}: not found")
            continue
        try:
            source, tree = _parse(path)
        except SimilarityError as exc:
            sub.notes.append(f"{sub.files[rel]}: {exc}: not compared")
            continue
        lines, functions = source.split("\n"), _functions(tree)
        for key, stub in scaffold.units.items():
            if not key.startswith(rel + "::"):
                continue
            qualname = key.split("::", 1)[1]
            node = functions.get(qualname)
            if node is None:
                missing.append(qualname)
                continue
            sub.units[key] = snip = _snippet(node, lines)  # a stub too: the scaffold as boilerplate makes it empty
            if snip.text.split() == stub.text.split():
                stubs.append(qualname)
    for what, names in (("not found", missing), ("unchanged stubs", stubs)):
        if names:
            sub.notes.append(f"{what}: {', '.join(names)}")
    return sub


# ------------------------------------------------------------------------------------------------------------
# fingerprints and pairs (copydetect)
# ------------------------------------------------------------------------------------------------------------
class Fingerprinter:
    """copydetect fingerprints (all k-grams: guarantee threshold = noise threshold) minus the scaffold's."""

    def __init__(self, k: int, boilerplate_texts: list[str]):
        from copydetect import CodeFingerprint
        from copydetect.utils import get_token_coverage

        self._cls, self._coverage, self.k = CodeFingerprint, get_token_coverage, k
        self.boilerplate: set[int] = set()
        for text in boilerplate_texts:
            self.boilerplate |= self._raw(text).hashes

    def _raw(self, text: str):
        return self._cls("unit.py", self.k, 1, fp=io.StringIO(text))  # the name only picks the Python lexer

    def __call__(self, text: str):
        # copydetect 0.5.0's own boilerplate removal (np.intersect1d(..., assume_unique=True) on a hash list that
        # may repeat) also drops code repeated inside a file; removing the scaffold's hashes here does not.
        fp = self._raw(text)
        fp.hash_idx = {h: idx for h, idx in fp.hash_idx.items() if h not in self.boilerplate}
        fp.hashes = set(fp.hash_idx)
        fp.token_coverage = float(self._coverage(fp.hash_idx, self.k, len(fp.filtered_code)))
        return fp


def _share(overlap: float, total: float) -> float:
    return overlap / total if total > 0 else 0.0


def compare(subs: list[Submission], order: list[str], fingerprint: Fingerprinter, threshold: float) -> list[dict]:
    """Every pair of submissions, ranked by similarity (then names); per TODO function (in ``order``, the unit
    keys) the shares and the matched character ranges (for the HTML)."""
    from copydetect import compare_files

    prints = {(s.name, key): fingerprint(snip.text) for s in subs for key, snip in s.units.items()}
    pairs = []
    for a, b in itertools.combinations(subs, 2):
        units, files = {}, {}
        total = {rel: [0.0, 0.0, 0.0, 0.0] for rel in STUDENT_FILES}  # overlap A, tokens A, overlap B, tokens B
        for key in (k for k in order if k in a.units or k in b.units):
            fa, fb = prints.get((a.name, key)), prints.get((b.name, key))
            rel = key.split("::", 1)[0]
            tokens_a = fa.token_coverage if fa else 0.0
            tokens_b = fb.token_coverage if fb else 0.0
            overlap_a = overlap_b = 0.0
            if fa and fb and tokens_a and tokens_b:
                _, sims, (slices_a, slices_b) = compare_files(fa, fb)
                sim_a, sim_b = float(sims[0]), float(sims[1])  # numpy scalars
                overlap_a, overlap_b = sim_a * tokens_a, sim_b * tokens_b
                if overlap_a > 0:
                    units[key] = {"share_a": round(sim_a, 4), "share_b": round(sim_b, 4),
                                  "slices_a": _ranges(slices_a), "slices_b": _ranges(slices_b)}
            for i, v in enumerate((overlap_a, tokens_a, overlap_b, tokens_b)):
                total[rel][i] += v
        for rel, (oa, ta, ob, tb) in total.items():
            files[rel] = round(max(_share(oa, ta), _share(ob, tb)), 4) if ta or tb else None
        sums = [sum(t[i] for t in total.values()) for i in range(4)]
        share_a, share_b = _share(sums[0], sums[1]), _share(sums[2], sums[3])
        similarity = round(max(share_a, share_b), 4)
        pairs.append({"similarity": similarity, "a": a.name, "b": b.name, "share_a": round(share_a, 4),
                      "share_b": round(share_b, 4), "flagged": similarity >= threshold and similarity > 0,
                      "files": files, "functions": units})
    pairs.sort(key=lambda p: (-p["similarity"], p["a"], p["b"]))
    for rank, p in enumerate(pairs, 1):
        p["rank"] = rank
    return pairs


def _ranges(slices) -> list[list[int]]:
    """copydetect's 2 x M (starts, ends) array -> [[start, end], ...] character ranges of the raw snippet."""
    if len(slices) == 0 or len(slices[0]) == 0:
        return []
    return [[int(s), int(e)] for s, e in zip(slices[0], slices[1], strict=True)]


# ------------------------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------------------------
CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table.rank { border-collapse: collapse; margin: 1em 0; }
table.rank td, table.rank th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
.side { display: flex; gap: 1em; align-items: flex-start; }
.side > div { flex: 1 1 0; min-width: 0; overflow-x: auto; }
pre { background: #f7f7f7; padding: 0.4em; margin: 0; font-size: 12px; line-height: 1.35; }
.ln { color: #999; user-select: none; display: inline-block; width: 3.5em; }
.hit { background: #fff1c2; }
.ctx { color: #888; }
mark { background: #ffb347; }
.note { color: #555; }
"""


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.0f}%"


def _render_code(snip: Snippet, ranges: list[list[int]]) -> str:
    """The function line by line with its file line numbers, escaped: the ``def`` line(s) greyed (never
    compared), matched code in <mark> (comment-only lines are skipped by copydetect, so never marked)."""
    marked = [False] * len(snip.text)
    for start, end in ranges:
        lo, hi = max(0, start), min(end, len(snip.text))
        marked[lo:hi] = [True] * max(0, hi - lo)
    out = [f'<span class="ctx"><span class="ln">{n}</span>{html.escape(line)}</span>'
           for n, line in zip(snip.head_lines, snip.head.split("\n"), strict=False)]
    pos = 0
    for number, line in zip(snip.lines, snip.text.split("\n"), strict=False):
        flags = [] if line.lstrip().startswith("#") else marked[pos:pos + len(line)]
        flags += [False] * (len(line) - len(flags))
        parts, i = [], 0
        while i < len(line):
            j = i
            while j < len(line) and flags[j] == flags[i]:
                j += 1
            chunk = html.escape(line[i:j])
            parts.append(f"<mark>{chunk}</mark>" if flags[i] and line[i:j].strip() else chunk)
            i = j
        cls = ' class="hit"' if any(f and not c.isspace() for f, c in zip(flags, line, strict=True)) else ""
        out.append(f'<span{cls}><span class="ln">{number}</span>{"".join(parts)}</span>')
        pos += len(line) + 1
    return "\n".join(out)


def render_html(subs: list[Submission], pairs: list[dict], settings: dict) -> str:
    e = html.escape
    by_name = {s.name: s for s in subs}
    flagged = [p for p in pairs if p["flagged"]]
    file_cols = [Path(rel).name for rel in STUDENT_FILES]
    h = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>Similarity report</title>',
         f"<style>{CSS}</style></head><body>", "<h1>Similarity report</h1>",
         f"<p>{len(subs)} submissions from <code>{e(settings['submissions'])}</code>, {len(pairs)} pairs; "
         f"<b>{len(flagged)} flagged</b> at similarity &ge; {_pct(settings['threshold'])}. "
         f"Compared: the bodies of the {len(settings['functions'])} TODO functions of the base lab "
         f"<code>{e(settings['base'])}</code> ({e(', '.join(k.split('::')[1] for k in settings['functions']))}); "
         f"its code never counts. {e(settings['library'])}, k = {settings['noise']}.</p>",
         '<p class="note">A flag is a pointer for a person to read both submissions; this report changes no '
         "grade. Similarity = the larger of the two shares (matched tokens / compared tokens of each side).</p>"]
    if flagged:
        h.append('<table class="rank"><tr><th>#</th><th>similarity</th><th>A</th><th>B</th><th>share of A</th>'
                 "<th>share of B</th>" + "".join(f"<th>{e(c)}</th>" for c in file_cols) + "</tr>")
        for p in flagged:
            h.append(f'<tr><td><a href="#pair-{p["rank"]}">{p["rank"]}</a></td><td><b>{_pct(p["similarity"])}</b>'
                     f'</td><td>{e(p["a"])}</td><td>{e(p["b"])}</td><td>{_pct(p["share_a"])}</td>'
                     f'<td>{_pct(p["share_b"])}</td>'
                     + "".join(f"<td>{_pct(p['files'][rel])}</td>" for rel in STUDENT_FILES) + "</tr>")
        h.append("</table>")
    else:
        h.append("<p><b>No pair reaches the threshold.</b></p>")
    for p in flagged:
        a, b = by_name[p["a"]], by_name[p["b"]]
        h.append(f'<h2 id="pair-{p["rank"]}">#{p["rank"]} {e(a.name)} &harr; {e(b.name)}: '
                 f'{_pct(p["similarity"])}</h2>')
        for key, unit in p["functions"].items():
            rel, qualname = key.split("::", 1)
            h.append(f"<h3>{e(qualname)} <span class='note'>({e(rel)}): {_pct(unit['share_a'])} of "
                     f"{e(a.name)}'s, {_pct(unit['share_b'])} of {e(b.name)}'s</span></h3><div class='side'>")
            for sub, ranges in ((a, unit["slices_a"]), (b, unit["slices_b"])):
                h.append(f"<div><h4>{e(sub.name)}: <code>{e(sub.files[rel] or '')}</code></h4>"
                         f"<pre>{_render_code(sub.units[key], ranges)}</pre></div>")
            h.append("</div>")
    noted = [s for s in subs if s.notes]
    if noted:
        h.append("<h2>Notes on the submissions</h2><ul>")
        for s in noted:
            h.append(f"<li><b>{e(s.name)}</b>: {e('; '.join(s.notes))}</li>")
        h.append("</ul>")
    h.append("</body></html>")
    return "\n".join(h) + "\n"


def _csv_text(pairs: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", "similarity", "submission_a", "submission_b", "share_a", "share_b", "flagged",
                     *STUDENT_FILES])
    for p in pairs:
        writer.writerow([p["rank"], p["similarity"], p["a"], p["b"], p["share_a"], p["share_b"],
                         int(p["flagged"]), *("" if p["files"][r] is None else p["files"][r] for r in STUDENT_FILES)])
    return buf.getvalue()


def _json_data(subs: list[Submission], pairs: list[dict], settings: dict) -> dict:
    return {**settings,
            "submissions_found": {s.name: {"files": s.files, "notes": s.notes} for s in subs},
            "pairs": [{"rank": p["rank"], "similarity": p["similarity"], "submission_a": p["a"],
                       "submission_b": p["b"], "share_a": p["share_a"], "share_b": p["share_b"],
                       "flagged": p["flagged"], "files": p["files"],
                       "functions": {k: {"share_a": u["share_a"], "share_b": u["share_b"]}
                                     for k, u in p["functions"].items()}} for p in pairs]}


# ------------------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("submissions", help="folder with one subfolder per submission")
    p.add_argument("--out", required=True, help="report folder to write (index.html, pairs.csv, pairs.json)")
    p.add_argument("--threshold", type=float, default=0.5, help="flag pairs with at least this similarity (0..1)")
    p.add_argument("--base", default="lab", help="student lab whose files are the scaffold (its TODO stubs)")
    p.add_argument("--noise", type=int, default=DEFAULT_NOISE,
                   help="shortest match counted, in characters of copydetect's filtered code")
    p.add_argument("--force", action="store_true", help="replace the report already in --out")
    return p


def run(submissions: Path, out: Path, threshold: float, base: str, noise: int, force: bool) -> dict:
    """Check the arguments, compare, write the report; returns the JSON data. Raises SimilarityError."""
    if not 0 <= threshold <= 1:
        raise SimilarityError(f"--threshold {threshold}: must be between 0 and 1")
    if noise < 5:
        raise SimilarityError(f"--noise {noise}: must be at least 5")
    if not submissions.is_dir():
        raise SimilarityError(f"{submissions}: submissions folder not found")
    if out.exists() and not out.is_dir():
        raise SimilarityError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise SimilarityError(f"--out {out}: folder exists and is not empty; pass --force to replace it")
        foreign = sorted(p.name for p in out.iterdir() if p.name not in REPORT_FILES)
        if foreign:  # --force replaces an earlier report, never a folder of other things
            raise SimilarityError(f"--out {out}: holds more than a report ({', '.join(foreign[:3])}); "
                                  "not replaced, even with --force")
    if not out.parent.is_dir():
        raise SimilarityError(f"--out {out}: folder {out.parent} does not exist")
    if out.resolve().is_relative_to(submissions.resolve()):
        raise SimilarityError(f"--out {out}: inside the submissions folder (it would be read as a submission)")
    try:
        base_dir = resolve_impl(base, flag="--base")
    except ImplError as exc:
        raise SimilarityError(str(exc)) from None
    folders = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise SimilarityError(f"{submissions}: no submission subfolders found")

    import copydetect

    scaffold = read_scaffold(base_dir)
    subs = [read_submission(f, scaffold) for f in folders]
    pairs = compare(subs, list(scaffold.units), Fingerprinter(noise, scaffold.boilerplate), threshold)
    settings = {"tool": "tools/similarity.py", "library": f"copydetect {copydetect.__version__}",
                "submissions": str(submissions), "base": str(base_dir), "threshold": threshold, "noise": noise,
                "functions": list(scaffold.units)}
    data = _json_data(subs, pairs, settings)
    with replacing_dirs(out.parent, [out.name]) as staging:
        folder = staging / out.name
        folder.mkdir()
        (folder / "index.html").write_text(render_html(subs, pairs, settings), encoding="utf-8")
        (folder / "pairs.csv").write_text(_csv_text(pairs), encoding="utf-8")
        (folder / "pairs.json").write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return data


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        data = run(Path(args.submissions), Path(args.out), args.threshold, args.base, args.noise, args.force)
    except SimilarityError as exc:
        raise SystemExit(f"error: {exc}") from None
    flagged = [p for p in data["pairs"] if p["flagged"]]
    for p in flagged:
        print(f"{p['similarity']:6.1%}  {p['submission_a']}  <->  {p['submission_b']}")
    print(f"wrote {args.out} ({len(data['submissions_found'])} submissions, {len(data['pairs'])} pairs, "
          f"{len(flagged)} at similarity >= {args.threshold:.0%}; {data['library']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
