"""Instructor leaderboard: score every student's ``test_results`` folder and rank the class by FID.

Usage::

    maskgit-leaderboard submissions/ --out leaderboard/            # submissions/<student>/image_*.png
    maskgit-leaderboard submissions/ --out leaderboard/ --baselines --jobs 2

Writes ``leaderboard.csv``, ``leaderboard.md``, a self-contained ``leaderboard.html`` (images inlined) and
``leaderboard.json`` (Gradescope-style ``leaderboard`` entries per student). Invalid submissions are
listed with every problem found and the others are still ranked. Scores are cached by the content of
each folder (and of the ground truth and the settings), so re-running after new uploads scores only what
changed. Each score is saved (atomically) as soon as it is finished: a run stopped half-way (Ctrl-C) keeps the
scores it had finished, and the rerun reuses them. A cache entry that is not JSON or lacks a field is ignored
with a one-line warning and rescored.

Each FID is shown with its 95 % interval over the images and with KID (``uncertainty.py``; ``--no-uncertainty``
leaves them out). **Statistical ties**: students are ranked by FID; a student whose FID is not significantly
different from that of the student ranked directly above is marked ``≈`` next to the rank. "Not significantly
different" means that the 95 % interval of the paired difference FID(student) - FID(student above) contains 0,
the difference being resampled over the same random halves of the images for both (every score uses the same
half-samples: they depend only on the seed and the number of images). The rank numbers themselves stay the
positions by FID (exactly equal FIDs share a rank: ``1, 2, 2, 4``); a chain ``2, 3 ≈, 4 ≈`` says that no
neighbour is told apart from the next, not that 2 and 4 are.
"""
from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import html
import io
import json
import multiprocessing
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..atomic import write_json
from ..atomic import write_text as atomic_write_text
from ..paths import DEFAULT_BASELINES_DIR, DEFAULT_MASKED_PATH
from .fid import FidUnavailable, InceptionFeatures, files_digest, warn
from .options import add_scoring_args, add_uncertainty_args, make_features, uncertainty_settings
from .points import FLOOR_NOTE, MAX_POINTS
from .scorer import METRICS, Reference, prepare_reference, score_folder
from .table import METRIC_COLUMNS, fmt, interval_cell, kid_cell, markdown_table
from .uncertainty import DEFAULT_SETTINGS, LEVEL, UncertaintySettings, paired_difference
from .validation import SubmissionError, load_images

OUTPUTS = ("leaderboard.csv", "leaderboard.md", "leaderboard.html", "leaderboard.json")
# Gradescope leaderboard columns: (result key, name shown, order; "asc" = lower is better)
GRADESCOPE_COLUMNS = (("fid", "FID", "asc"), ("psnr", "PSNR", "desc"), ("ssim", "SSIM", "desc"),
                      ("points", "Points", "desc"))
SCORE_VERSION = 2  # bump when a cached score's fields change (2: interval, KID, precision/recall)
REQUIRED_FIELDS = (*METRICS, "points", "n", "fid_dims")
UNCERTAINTY_FIELDS = ("fid_ci", "fid_resamples", "kid", "prdc")
TIE_RULE = ("≈: not significantly different from the student ranked directly above (the 95 % interval of the "
            "paired difference in FID, resampled over the same random halves of the images, contains 0)")


@dataclass
class Entry:
    """One row: a student's submission (or a baseline shown for reference)."""

    name: str
    folder: Path
    kind: str = "student"           # "student" or "baseline"
    result: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    key: str | None = None          # content key of the score cache
    rank: int | None = None
    tied: bool = False              # not significantly different from the student ranked directly above
    strip: str = ""                 # base64 PNG of a few of its images

    @property
    def valid(self) -> bool:
        return not self.problems


@dataclass
class Run:
    """What one leaderboard run did: the tests read ``scored`` and ``reused`` to check the cache."""

    entries: list[Entry]
    scored: list[str]
    reused: list[str]
    seconds: float
    outputs: list[Path]

    @property
    def ranked(self) -> list[Entry]:
        return sorted((e for e in self.entries if e.rank is not None), key=lambda e: e.rank)

    @property
    def invalid(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "student" and not e.valid]


# ------------------------------------------------------------------------------------------------------
# Scoring with a content cache
# ------------------------------------------------------------------------------------------------------

def score_key(images_digest: str, ref: Reference, backend: str, uncertainty: UncertaintySettings | None = None) -> str:
    """A submission's cached score is valid while its bytes, the ground truth and the FID settings are."""
    extra = uncertainty.id if uncertainty is not None else "none"
    return hashlib.sha256(f"{images_digest}-{ref.key}-{backend}-{extra}-v{SCORE_VERSION}".encode()).hexdigest()[:32]


def read_cached_score(path: Path, uncertainty: UncertaintySettings | None) -> dict[str, Any] | None:
    """The cached result at ``path``, or None (with a one-line warning) when it is damaged or incomplete."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        problem = f"not JSON ({type(exc).__name__})"
    else:
        required = REQUIRED_FIELDS + (UNCERTAINTY_FIELDS if uncertainty is not None else ())
        missing = [k for k in required if not isinstance(result, dict) or k not in result]
        if not missing and isinstance(result.get("fid"), (int, float)) and not isinstance(result["fid"], bool):
            return result
        problem = f"missing {', '.join(missing)}" if missing else "no numeric FID"
    warn(f"{path}: damaged score-cache entry ({problem}); ignored, rescoring")
    return None


def strip_png(images: np.ndarray, count: int) -> str:
    """``count`` images, evenly spread over the set (the same ones for everyone), side by side, as base64 PNG."""
    if count <= 0:
        return ""
    idx = np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int)
    buf = io.BytesIO()
    Image.fromarray(np.concatenate(list(images[idx]), axis=1), "RGB").save(buf, "PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def check_entry(entry: Entry, ref: Reference, backend: str, strip: int,
                uncertainty: UncertaintySettings | None = None) -> None:
    """Validate one folder; set its problems, or its cache key and image strip."""
    try:
        images = load_images(entry.folder, ref.bench)
    except SubmissionError as exc:
        entry.problems = exc.problems
        return
    entry.key = score_key(files_digest([entry.folder / n for n in ref.bench.names]), ref, backend, uncertainty)
    entry.strip = strip_png(images, strip)


_WORKER: dict[str, Any] = {}


def _init_worker(features_args: dict[str, Any], ref: Reference, backend: str, threads: int,
                 uncertainty: UncertaintySettings | None) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER.update(features=InceptionFeatures(**features_args), ref=ref, backend=backend, uncertainty=uncertainty)


def _score_in_worker(folder: Path) -> dict[str, Any]:
    return score_folder(folder, _WORKER["ref"], _WORKER["features"], _WORKER["backend"], _WORKER["uncertainty"])


def _fid_text(result: dict[str, Any]) -> str:
    ci = result.get("fid_ci")
    return f"FID {result['fid']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def score_entries(todo: list[Entry], ref: Reference, features: InceptionFeatures, backend: str, jobs: int,
                  log: Callable[[str], None], uncertainty: UncertaintySettings | None = None,
                  done: Callable[[Entry], None] = lambda entry: None) -> None:
    """Score the entries in ``todo`` in this process or over ``jobs`` worker processes (one thread each).

    ``done(entry)`` is called as soon as each entry's score is in (the leaderboard saves it there)."""
    if not todo:
        return
    if jobs <= 1 or len(todo) == 1:
        for i, entry in enumerate(todo, 1):
            entry.result = score_folder(entry.folder, ref, features, backend, uncertainty)
            done(entry)
            log(f"  [{i}/{len(todo)}] {entry.name}: {_fid_text(entry.result)} "
                f"({entry.result['timing']['total_s']:.1f} s)")
        return
    jobs = min(jobs, len(todo))
    settings = {"dims": features.dims, "device": features.device, "precision": features.precision,
                "batch_size": features.batch_size}
    import torch

    threads = max(1, torch.get_num_threads() // jobs)
    # spawn, not fork: the parent has already run torch's thread pools (GT statistics), which fork can hang.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(jobs, _init_worker, (settings, ref, backend, threads, uncertainty)) as pool:
        results = pool.imap(_score_in_worker, [e.folder for e in todo])
        for i, (entry, result) in enumerate(zip(todo, results, strict=True), 1):
            entry.result = result
            done(entry)
            log(f"  [{i}/{len(todo)}] {entry.name}: {_fid_text(result)} ({result['timing']['total_s']:.1f} s)")


def find_entries(submissions: Path, kind: str = "student") -> list[Entry]:
    """One entry per visible subfolder; a stray file is an invalid entry (it cannot be a result folder)."""
    if not submissions.is_dir():
        raise SubmissionError(submissions, ["submissions folder not found"])
    entries = []
    for path in sorted(submissions.iterdir()):
        if path.name.startswith("."):
            continue
        entry = Entry(path.name, path, kind)
        if not path.is_dir():
            entry.problems = ["not a folder (expected <student>/image_000.png ..)"]
        entries.append(entry)
    return entries


def _replicates(result: dict[str, Any]) -> tuple[tuple, np.ndarray] | None:
    res = result.get("fid_resamples")
    if not isinstance(res, dict) or not isinstance(res.get("replicates"), list):
        return None
    return (res.get("method"), res.get("seed"), res.get("n"), len(res["replicates"])), np.asarray(res["replicates"])


def tied_with(result: dict[str, Any], above: dict[str, Any], level: float = LEVEL) -> bool:
    """True when FID(result) - FID(above) is not significant (its paired interval contains 0); False when either
    has no half-sample replicates or they were drawn differently (not paired)."""
    mine, theirs = _replicates(result), _replicates(above)
    if mine is None or theirs is None or mine[0] != theirs[0]:
        return False
    return not paired_difference(result["fid"] - above["fid"], mine[1], theirs[1], level)["significant"]


def rank_entries(entries: list[Entry]) -> None:
    """Rank valid students by FID (equal FIDs share a rank, ``1, 2, 2, 4``) and mark statistical ties with the
    student directly above (``Entry.tied``, the rule in the module docstring); baselines are not ranked."""
    students = sorted((e for e in entries if e.kind == "student" and e.result),
                      key=lambda e: (e.result["fid"], e.name))
    for i, e in enumerate(students):
        prev = students[i - 1] if i else None
        e.rank = prev.rank if prev and prev.result["fid"] == e.result["fid"] else i + 1
        e.tied = prev is not None and (prev.result["fid"] == e.result["fid"] or tied_with(e.result, prev.result))


def build_leaderboard(submissions: str | Path, out: str | Path, features: InceptionFeatures,
                      gt_dir: Path, mask_dir: Path, cache_dir: Path | None, backend: str = "fast",
                      jobs: int = 1, baselines_dir: Path | None = None, strip: int = 6,
                      log: Callable[[str], None] = print,
                      uncertainty: UncertaintySettings | None = DEFAULT_SETTINGS) -> Run:
    """Validate, score (cached) and rank every submission and write the four outputs into ``out``."""
    start = time.perf_counter()
    entries = find_entries(Path(submissions))
    if baselines_dir is not None:
        if Path(baselines_dir).is_dir():
            entries += [e for e in find_entries(Path(baselines_dir), "baseline") if e.valid]
        else:
            log(f"note: no baselines in {baselines_dir} (run maskgit-baselines first)")
    ref = prepare_reference(gt_dir, mask_dir, features, cache_dir)
    log(f"ground truth: {ref.bench.n} images, FID statistics "
        f"{'from cache' if ref.stats_cached else 'computed'} ({ref.seconds:.1f} s)")
    todo, reused = [], []
    for entry in entries:
        if entry.valid:
            check_entry(entry, ref, backend, strip, uncertainty)
        if not entry.valid:
            continue
        cached = Path(cache_dir) / "scores" / f"{entry.key}.json" if cache_dir is not None else None
        if cached is not None and cached.is_file():
            entry.result = read_cached_score(cached, uncertainty)
            if entry.result is not None:
                reused.append(entry.name)
                continue
        todo.append(entry)
    log(f"{len(entries)} folders: {len(todo)} to score, {len(reused)} cached, "
        f"{sum(not e.valid for e in entries)} invalid")

    def save(entry: Entry) -> None:  # each score as soon as it is in: a stopped run keeps what it finished
        if cache_dir is not None:
            write_json(Path(cache_dir) / "scores" / f"{entry.key}.json", entry.result)

    score_entries(todo, ref, features, backend, jobs, log, uncertainty, save)
    rank_entries(entries)
    out = Path(out)
    masked = _reference_strips(ref, strip)
    run = Run(entries, [e.name for e in todo], reused, 0.0, [out / name for name in OUTPUTS])
    run.seconds = time.perf_counter() - start
    write_outputs(run, out, ref, masked)
    return run


def _reference_strips(ref: Reference, strip: int) -> dict[str, str]:
    """Strips of the ground truth and (when present) the masked inputs, for the HTML's header rows."""
    strips = {"ground truth": strip_png(ref.images, strip)}
    masked_dir = ref.gt_dir.parent / DEFAULT_MASKED_PATH.name
    try:
        strips = {"masked input": strip_png(load_images(masked_dir, ref.bench), strip), **strips}
    except SubmissionError:
        pass
    return strips


# ------------------------------------------------------------------------------------------------------
# Outputs
# ------------------------------------------------------------------------------------------------------

def _label(e: Entry) -> str:
    return f"{e.name} (baseline)" if e.kind == "baseline" else e.name


def _table_order(run: Run) -> list[Entry]:
    """Ranked students first, then baselines by FID (reference rows), as every output lists them."""
    baselines = sorted((e for e in run.entries if e.kind == "baseline" and e.result), key=lambda e: e.result["fid"])
    return run.ranked + baselines


def write_csv(run: Run, path: Path) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "student", "status", *METRICS, *UNCERTAINTY_CSV, "tied_with_above", "points", "n", "reason"])
    for e in _table_order(run):
        r = e.result
        w.writerow([e.rank or "", e.name, "ranked" if e.kind == "student" else "baseline",
                    *(fmt(r[k], ".6g") if r[k] is not None else "" for k in METRICS), *_uncertainty_csv(r),
                    "yes" if e.tied else "", r["points"], r["n"], ""])
    for e in run.invalid:
        w.writerow(["", e.name, "invalid", *("" for _ in METRICS), *("" for _ in UNCERTAINTY_CSV), "", 0, "",
                    "; ".join(e.problems)])
    atomic_write_text(path, buf.getvalue())


UNCERTAINTY_CSV = ("fid_lo", "fid_hi", "kid", "kid_std")


def _uncertainty_csv(r: dict[str, Any]) -> list[str]:
    ci, kid = r.get("fid_ci"), r.get("kid")
    return [*(fmt(v, ".6g") for v in (ci or ["", ""]) if ci), *([""] * 2 if not ci else []),
            *((fmt(kid["mean"], ".6g"), fmt(kid["std"], ".6g")) if kid else ("", ""))]


# the table's metric columns: FID, its interval and KID, then the other metrics
HEADERS = ["FID", f"FID {round(100 * LEVEL)} % interval", "KID x 1000",
           *(h for k, h, _ in METRIC_COLUMNS if k != "fid")]


def _metric_cells(r: dict[str, Any]) -> list[str]:
    return [fmt(r["fid"], ".2f"), interval_cell(r), kid_cell(r),
            *(fmt(r[k], f) for k, _, f in METRIC_COLUMNS if k != "fid")]


def _rank_cell(e: Entry) -> str:
    if e.rank is None:
        return "ref"
    return f"{e.rank} ≈" if e.tied else str(e.rank)


def _notes(run: Run) -> list[str]:
    notes = [f"Ranked by FID (lower is better); points out of {MAX_POINTS} from the course's FID table."]
    if any("fid_ci" in e.result for e in _table_order(run)):
        notes.append(f"FID interval: {round(100 * LEVEL)} % over random halves of the images; KID (x 1000): mean "
                     f"+- std over subsets. {TIE_RULE}.")
    notes.append(FLOOR_NOTE[0].upper() + FLOOR_NOTE[1:] + ".")
    return notes


def write_markdown(run: Run, path: Path) -> None:
    headers = ["rank", "student", *HEADERS]
    rows = [[_rank_cell(e), _label(e), *_metric_cells(e.result)] for e in _table_order(run)]
    text = [f"# Leaderboard ({len(run.ranked)} ranked, {len(run.invalid)} invalid)", "",
            *(line for note in _notes(run) for line in (note, "")),
            markdown_table(headers, rows), ""]
    if run.invalid:
        text += ["## Invalid submissions", ""]
        for e in run.invalid:
            text += [f"- **{e.name}**:"] + [f"  - {p}" for p in e.problems]
        text.append("")
    atomic_write_text(path, "\n".join(text))


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}
td.name,th.name{text-align:left}tr.baseline{color:#666;font-style:italic}tr.reference{color:#666}
img{image-rendering:pixelated;height:48px;display:block}li{margin:.2em 0}code{background:#f4f4f4}"""


def _img(b64: str) -> str:
    return f'<img alt="" src="data:image/png;base64,{b64}">' if b64 else ""


def write_html(run: Run, path: Path, reference: dict[str, str]) -> None:
    """One file, no external resources: images are inlined as base64 PNG data URIs."""
    esc = html.escape
    head = "".join(f"<th{' class=name' if h == 'student' else ''}>{esc(h)}</th>"
                   for h in ["rank", "student", *HEADERS, "images"])
    rows = [f'<tr class="reference"><td></td><td class="name">{esc(name)}</td>'
            f'{"<td></td>" * len(HEADERS)}<td>{_img(b64)}</td></tr>' for name, b64 in reference.items()]
    for e in _table_order(run):
        cells = "".join(f"<td>{esc(c)}</td>" for c in _metric_cells(e.result))
        rows.append(f'<tr class="{e.kind}"><td>{esc(_rank_cell(e))}</td><td class="name">{esc(_label(e))}</td>'
                    f"{cells}<td>{_img(e.strip)}</td></tr>")
    invalid = ""
    if run.invalid:
        items = "".join(f"<li><b>{esc(e.name)}</b><ul>{''.join(f'<li>{esc(p)}</li>' for p in e.problems)}</ul></li>"
                        for e in run.invalid)
        invalid = f"<h2>Invalid submissions ({len(run.invalid)})</h2><ul>{items}</ul>"
    doc = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Leaderboard</title>'
           f"<style>{_CSS}</style></head><body>\n<h1>Leaderboard</h1>\n"
           f"<p>{len(run.ranked)} ranked, {len(run.invalid)} invalid.</p>\n"
           + "".join(f"<p>{esc(note)}</p>\n" for note in _notes(run)) +
           f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(rows) +
           f"\n</tbody></table>\n{invalid}\n</body></html>\n")
    atomic_write_text(path, doc)


def gradescope_entries(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Gradescope's ``leaderboard`` list for one student: ``{"name", "value", "order"}`` per column."""
    return [{"name": name, "value": round(result[key], 4) if isinstance(result[key], float) else result[key],
             "order": order} for key, name, order in GRADESCOPE_COLUMNS]


def write_json_output(run: Run, path: Path, ref: Reference) -> None:
    def metrics(e: Entry) -> dict[str, Any]:
        return {k: e.result[k] for k in (*METRICS, "points", "n")} | \
            {k: e.result[k] for k in ("fid_ci", "fid_se", "kid", "prdc") if k in e.result}

    def row(e: Entry) -> dict[str, Any]:
        return {"student": e.name, "rank": e.rank, "tied_with_above": e.tied, **metrics(e),
                "leaderboard": gradescope_entries(e.result)}

    write_json(path, {
        "students": [row(e) for e in run.ranked],
        "baselines": [{"name": e.name, **metrics(e)} for e in _table_order(run) if e.kind == "baseline"],
        "invalid": [{"student": e.name, "problems": e.problems} for e in run.invalid],
        "settings": {"gt_path": str(ref.gt_dir), "n": ref.bench.n,
                     "fid_dims": next((e.result["fid_dims"] for e in run.ranked), None),
                     "uncertainty": next((e.result["uncertainty"] for e in run.ranked if "uncertainty" in e.result),
                                         None), "tie_rule": TIE_RULE},
        "run": {"scored": run.scored, "reused": run.reused, "seconds": round(run.seconds, 2)},
    })


def write_outputs(run: Run, out: Path, ref: Reference, reference_strips: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_csv(run, out / "leaderboard.csv")
    write_markdown(run, out / "leaderboard.md")
    write_html(run, out / "leaderboard.html", reference_strips)
    write_json_output(run, out / "leaderboard.json", ref)


# ------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("submissions", type=Path, help="folder with one subfolder of images per student")
    parser.add_argument("--out", type=Path, required=True, help="folder for the leaderboard files")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes for scoring (each gets cores/jobs torch threads)")
    parser.add_argument("--baselines", action="store_true", help="add the baselines as reference rows")
    parser.add_argument("--baselines-dir", type=Path, default=DEFAULT_BASELINES_DIR,
                        help="where maskgit-baselines wrote them")
    parser.add_argument("--strip", type=int, default=6, help="images per student in the HTML strip")
    add_scoring_args(parser)
    add_uncertainty_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.jobs < 1:
        raise SystemExit(f"--jobs {args.jobs}: expected a positive count")
    try:
        features = make_features(args)
        run = build_leaderboard(args.submissions, args.out, features, args.gt_path, args.mask_path,
                                None if args.no_cache else args.cache_dir, args.fid_backend, args.jobs,
                                args.baselines_dir if args.baselines else None, args.strip,
                                uncertainty=uncertainty_settings(args))
    except SubmissionError as exc:  # the ground truth, masks or submissions folder itself
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FidUnavailable as exc:
        print(f"error: FID weights unavailable: {exc}", file=sys.stderr)
        return 1
    for e in run.ranked[:10]:
        print(f"  {_rank_cell(e):>5}  {e.name:<24} {_fid_text(e.result)}  points {e.result['points']}")
    for e in run.invalid:
        print(f"  invalid  {e.name}: {'; '.join(e.problems)}")
    print(f"scored {len(run.scored)}, reused {len(run.reused)} from cache, {len(run.invalid)} invalid; "
          f"{run.seconds:.1f} s; wrote {', '.join(str(p) for p in run.outputs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
