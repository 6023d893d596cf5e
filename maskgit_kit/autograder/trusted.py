"""The trusted grader: one submission graded with its code confined in a child, the verdict computed here.

    grade = grade_submission(files, base=LAB, work=FOLDER, hidden=load_hidden(), reference=REFERENCE)

The trusted side (this process; no student code ever runs in it) chooses the inputs with a fresh seed (one per
batch run: the reference is observed once per seed, ``Reference.probe``), writes
them as requests, and starts the confined child (``sandbox.run`` -> ``child.py``). The child runs the observers on
the student's code and then the public checks; it sends back only files in its own folder. Here:

- each hidden check (``Probe``, instructor-only folder ``hidden_checks/``) compares the child's observation with the
  same observer run on the reference in this process, and names the public checks it charges;
- a public check's case earns its points only if the child reported it passed **and** no hidden check charged
  that check: the child's report can take points away from its own submission, never add one (a stub that
  forges its report still fails every hidden check); the points come from the catalogue (``todos.json``), capped;
- a missing, oversized or malformed file from the child is a failure of what it should have held, never an error of
  the grading run.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..atomic import torch_save
from ..paths import KIT_ROOT
from . import sandbox
from .observers import Grader, observer
from .results import INCOMPLETE
from .todos import CORE, Catalogue

HIDDEN_DIR = KIT_ROOT / "hidden_checks"  # instructor-only: never in the student release
GRADER_DIR = KIT_ROOT / "grader"
MAX_OBSERVATION = 64 << 20
MAX_PUBLIC_JSON = 8 << 20
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "test_results", "mask_scheduling", "imga",
                                     "transformer_checkpoints", "vqgan_checkpoints", "token_cache", ".benchmarks")
VISIBILITIES = ("visible", "after_due_date", "hidden")


class HiddenChecksError(Exception):
    """The hidden checks are missing (a student release) or inconsistent with the public catalogue."""


@dataclass(frozen=True)
class Probe:
    """One hidden check: the public checks it guards, what to observe, and how to judge it."""
    name: str
    todo: str
    title: str
    guards: tuple[str, ...]                    # public check names whose points need this probe's verdict
    judge: Callable[[Context], dict[str, str]]  # -> {charged public check: why}; empty when it passes
    observer: str | None = None                # None: judged from the submitted source files alone
    inputs: Callable[[int, Reference], dict] | None = None  # (seed, the reference) -> the observer's inputs


@dataclass
class Context:
    """What a judge sees: the inputs, the child's observation, the reference's, the submitted sources."""
    inputs: dict
    observed: dict
    expected: dict
    sources: dict[str, str]
    grader: Grader
    reference: Reference


@dataclass
class Hidden:
    probes: list[Probe]
    visibility: dict[str, str]  # "public", "hidden" and per-name overrides -> Gradescope visibility

    def visibility_of(self, name: str, kind: str) -> str:
        return self.visibility.get(name, self.visibility.get(kind, "visible" if kind == "public" else "hidden"))


def load_hidden(folder: Path = HIDDEN_DIR, catalogue: Catalogue | None = None) -> Hidden:
    """The probes of ``folder/todo*.py`` (each a ``PROBES`` list) and ``folder/visibility.yml``."""
    if not folder.is_dir():
        raise HiddenChecksError(f"{folder}: hidden checks not found (a student release has none; grade with the "
                                "instructor's kit)")
    probes: list[Probe] = []
    for path in sorted(folder.glob("todo*.py")):
        spec = importlib.util.spec_from_file_location(f"maskgit_hidden_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        probes += list(getattr(mod, "PROBES", []))
    visibility = yaml.safe_load((folder / "visibility.yml").read_text()) if (folder / "visibility.yml").is_file() \
        else {}
    bad = {k: v for k, v in (visibility or {}).items() if v not in VISIBILITIES}
    if bad:
        raise HiddenChecksError(f"{folder / 'visibility.yml'}: {bad}: each value must be one of {VISIBILITIES}")
    names = [p.name for p in probes]
    if len(set(names)) != len(names):
        raise HiddenChecksError(f"{folder}: probe names must be unique: {sorted(names)}")
    if catalogue is not None:
        for p in probes:
            unknown = [g for g in p.guards if g not in catalogue.checks or catalogue.checks[g].todo != p.todo]
            if unknown:
                raise HiddenChecksError(f"hidden check {p.name}: guards {unknown}, not checks of {p.todo}")
    return Hidden(probes, visibility or {})


# --- the reference, observed here ------------------------------------------------------------------------------
class Reference:
    """The reference implementation, imported in this (trusted) process, and the public grader's helpers."""

    def __init__(self, root: Path, grader_dir: Path = GRADER_DIR):
        from .impl import Implementation
        self.impl = Implementation(root)
        self.grader = Grader(grader_dir)
        self.lock = threading.RLock()
        self._cache: dict[tuple[str, int], tuple[dict, dict]] = {}  # (probe, seed) -> (inputs, observation)

    def probe(self, p: Probe, seed: int) -> tuple[dict, dict]:
        """The probe's inputs for ``seed`` and the reference's observation of them, computed once per seed: a
        batch draws one fresh seed and judges every submission against the same reference observations."""
        with self.lock:
            if (p.name, seed) not in self._cache:
                inputs = p.inputs(seed, self) if p.inputs else {}
                self._cache[(p.name, seed)] = inputs, self.observe(p.observer, inputs) if p.observer else {}
            return self._cache[(p.name, seed)]

    def observe(self, name: str, inputs: dict) -> dict:
        import torch
        with self.lock:  # observers patch the reference's classes (stand-ins): one at a time across threads
            torch.manual_seed(0)
            return observer(name)(self.impl, self.grader, inputs)


# --- one submission ----------------------------------------------------------------------------------------------
@dataclass
class CaseVerdict:
    todo: str
    check: str
    case_id: str          # check[case] as the public grader names it
    title: str
    points: float
    passed: bool
    output: str
    pool: str = CORE      # the extension pool's points are reported apart, never in ``Grade.score``


@dataclass
class ProbeVerdict:
    name: str
    todo: str
    title: str
    charged: dict[str, str]
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.charged


@dataclass
class Grade:
    cases: list[CaseVerdict] = field(default_factory=list)
    probes: list[ProbeVerdict] = field(default_factory=list)
    status: str = "ok"
    seconds: float = 0.0
    seed: int = 0
    notes: list[str] = field(default_factory=list)
    exit_code: int | None = None
    public_summary: str = ""  # the child's own summary: shown as feedback, never scored

    def per_todo(self, todos) -> dict[str, float]:
        out = dict.fromkeys(todos, 0.0)
        for c in self.cases:
            if c.passed:
                out[c.todo] = out.get(c.todo, 0.0) + c.points
        return out

    @property
    def score(self) -> float:
        """The core score (the course's 100 points); ``extension`` is the other pool's."""
        return sum(c.points for c in self.cases if c.passed and c.pool == CORE)

    @property
    def extension(self) -> float:
        return sum(c.points for c in self.cases if c.passed and c.pool != CORE)

    def failed_checks(self) -> list[str]:
        return sorted({c.check for c in self.cases if not c.passed})

    def gradescope(self, hidden: Hidden, public_output: str = "") -> dict:
        tests, numbers = [], {}
        for c in self.cases:
            numbers[c.todo] = numbers.get(c.todo, 0) + 1
            tests.append({"name": f"{c.todo} {c.title}", "score": round(c.points if c.passed else 0.0, 4),
                          "max_score": round(c.points, 4), "status": "passed" if c.passed else "failed",
                          "output": c.output, "tags": [c.todo, c.case_id, *([c.pool] if c.pool != CORE else [])],
                          "visibility": hidden.visibility_of(c.check, "public"),
                          "number": f"{c.todo[4:]}.{numbers[c.todo]}"})
        for p in self.probes:
            numbers[f"H{p.todo}"] = numbers.get(f"H{p.todo}", 0) + 1
            why = "; ".join(f"{k}: {v}" for k, v in p.charged.items())
            tests.append({"name": f"{p.todo} hidden: {p.title}", "score": 0.0, "max_score": 0.0,
                          "status": "passed" if p.passed else "failed",
                          "output": "passed" if p.passed else f"failed ({why})"[:2000], "tags": [p.todo, p.name],
                          "visibility": hidden.visibility_of(p.name, "hidden"),
                          "number": f"{p.todo[4:]}.h{numbers[f'H{p.todo}']}"})
        head = ([INCOMPLETE] if self.status != "ok" else []) + [f"status: {self.status}", *self.notes]
        return {"score": round(self.score, 4), "execution_time": round(self.seconds, 2),
                "output": "\n".join(head) + ("\n\n" + public_output if public_output else ""),
                "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def prepare_impl(files: dict[str, Path], base: Path, dest: Path) -> None:
    """A fresh copy of the base lab at ``dest`` with the submission's student files over it."""
    shutil.copytree(base, dest, ignore=COPY_IGNORE)
    for rel, src in files.items():
        shutil.copyfile(src, dest / rel)


def _load_observation(path: Path) -> dict:
    import torch
    if not path.is_file():
        return {"error": "no observation (the child ended before this check, or did not write it)"}
    if path.stat().st_size > MAX_OBSERVATION:
        return {"error": f"observation over {MAX_OBSERVATION >> 20} MB"}
    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - anything the child wrote there
        return {"error": f"unreadable observation: {type(exc).__name__}: {exc}"[:300]}
    return data if isinstance(data, dict) else {"error": f"observation is a {type(data).__name__}, not a dict"}


def _public_results(path: Path) -> tuple[dict[str, tuple[bool, str]], str]:
    """check[case] -> (passed, output) from the child's public results, and its summary text. Untrusted: used
    only to take points away and to show feedback."""
    if not path.is_file() or path.stat().st_size > MAX_PUBLIC_JSON:
        return {}, ""
    try:
        data = json.loads(path.read_text(errors="replace"))
        found = {}
        for t in data.get("tests", []):
            tags = t.get("tags") or []
            if len(tags) >= 2 and isinstance(tags[1], str):
                found[tags[1]] = (t.get("status") == "passed", str(t.get("output", ""))[:2000])
        return found, str(data.get("output", ""))[:20000]
    except (ValueError, AttributeError, TypeError):
        return {}, ""


def calibrate(reference: Reference, base: Path, work: Path, hidden: Hidden, catalogue: Catalogue,
              files: dict[str, Path], **kwargs) -> list[tuple[str, str]]:
    """Grade the reference itself through the whole pipeline (sandbox included) first: its public run names every
    check's cases (``check[case]``) for the trusted side, and it must earn every point, or the environment is
    broken (a missing library, a sandbox that blocks what the checks need) and grading stops with the reason."""
    provisional = [(name, name) for name in catalogue.checks]
    grade = grade_submission(files, base=base, work=work, hidden=hidden, reference=reference, catalogue=catalogue,
                             case_names=provisional, **kwargs)
    public, _ = _public_results(work / "run" / "out" / "public.json")
    names = [(case_id.split("[")[0], case_id) for case_id, (passed, _) in public.items()]
    counts = {c: sum(1 for n, _ in names if n == c) for c in catalogue.checks}
    wrong = {c: (n, catalogue.checks[c].cases) for c, n in counts.items() if n and n != catalogue.checks[c].cases}
    if not names:
        wrong["(all)"] = (0, "at least one check selected")
    failed = [case_id for case_id, (passed, _) in public.items() if not passed] + \
        [f"{p.name} ({'; '.join(p.charged.values())[:300]})" for p in grade.probes if not p.passed]
    if wrong or failed:
        log = (work / "run" / "log.txt").read_text(errors="replace")[-3000:] if (work / "run" / "log.txt").is_file() \
            else ""
        raise HiddenChecksError("the reference does not pass the trusted grader here: "
                                + (f"cases reported/expected {wrong}; " if wrong else "")
                                + (f"failing: {', '.join(failed[:8])}" if failed else "")
                                + (f"\n--- the child's log ---\n{log}" if log else ""))
    return names


def grade_submission(files: dict[str, Path], *, base: Path, work: Path, hidden: Hidden, reference: Reference,
                     catalogue: Catalogue, case_names: list[tuple[str, str]], seed: int | None = None,
                     limits: sandbox.Limits | None = None, check_timeout: float = 60.0,
                     probe_timeout: float = 60.0, pytest_args: list[str] | None = None, zygote=None) -> Grade:
    """Grade the student files (relative path -> file) over ``base``; ``work`` is a fresh folder for this run."""
    t0 = time.time()
    seed = secrets.randbits(31) if seed is None else seed
    impl, control, run_dir, requests = work / "impl", work / "control", work / "run", work / "requests"
    prepare_impl(files, base, impl)
    shutil.copytree(reference.grader.folder, work / "grader", ignore=COPY_IGNORE)
    requests.mkdir(parents=True)
    inputs = {}
    expected = {}
    for i, p in enumerate(hidden.probes):
        if p.observer is not None:
            inputs[p.name], expected[p.name] = reference.probe(p, seed + 7919 * i)
            torch_save({"observer": p.observer, "inputs": inputs[p.name]}, requests / f"{p.name}.pt")
    control.mkdir(parents=True)
    limits = limits or sandbox.Limits()
    order = [p.name for p in hidden.probes if p.observer is not None]
    crashed: dict[str, str] = {}  # probe -> why the child ended during it (the child is restarted after it)
    deadline = time.monotonic() + limits.wall_seconds
    while True:
        out = run_dir / "out"
        todo = [n for n in order if n not in crashed and not (out / f"{n}.pt").is_file()]
        task = {"folder": str(run_dir), "impl": str(impl), "grader": str(work / "grader"),
                "requests": str(requests), "probes": todo, "probe_timeout": probe_timeout,
                "check_timeout": check_timeout, "pytest_args": list(pytest_args or [])}
        (control / "task.json").write_text(json.dumps(task))
        left = deadline - time.monotonic()
        outcome = sandbox.run(sandbox.Job(run_dir, control, [str(control / "task.json")],
                                          read=[impl, work / "grader", requests],
                                          limits=dataclasses.replace(limits, wall_seconds=max(left, 1.0))),
                              zygote=zygote)
        current = _read_small(out / "current.txt")
        if current in todo and not (out / f"{current}.pt").is_file() and time.monotonic() < deadline - 1:
            why = "did not finish in time" if outcome.exit_code is None else f"exit {outcome.exit_code}"
            crashed[current] = f"the graded code ended the process during this check ({why})"
            continue  # the same child again, for the probes after it and the public checks
        break
    grade = Grade(seconds=0.0, seed=seed, exit_code=outcome.exit_code)
    sources = {rel: (impl / rel).read_text(errors="replace") for rel in files}
    with reference.lock:  # judges use the reference too, and observers patch its classes while they run
        for p in hidden.probes:
            if p.name in crashed:
                observed = {"error": crashed[p.name]}
            elif p.observer is not None:
                observed = _load_observation(run_dir / "out" / f"{p.name}.pt")
            else:
                observed = {}
            try:
                charged = p.judge(Context(inputs.get(p.name, {}), observed, expected.get(p.name, {}), sources,
                                          reference.grader, reference))
            except Exception as exc:  # noqa: BLE001 - a malformed observation: everything this probe guards fails
                charged = dict.fromkeys(p.guards, f"unusable observation ({type(exc).__name__}: {exc})"[:300])
            charged = {k: v for k, v in charged.items() if k.split("[")[0] in p.guards}  # check or check[case]
            grade.probes.append(ProbeVerdict(p.name, p.todo, p.title, charged, str(observed.get("error", ""))))
    public, summary = _public_results(run_dir / "out" / "public.json")
    charges: dict[str, list[str]] = {}
    for pv in grade.probes:
        for check, why in pv.charged.items():
            charges.setdefault(check, []).append(f"{pv.name}: {why}")
    for check, case_id in case_names:
        c = catalogue.checks[check]
        points = c.points / c.cases
        reported, output = public.get(case_id, (False, "not run (no result for this check from the graded run)"))
        why = charges.get(check, []) + charges.get(case_id, [])
        passed = reported and not why
        if reported and why:
            output = (f"failed the hidden form of this check (see {c.todo}: {c.where}): " + "; ".join(why))[:1500]
        title = c.title + (f" [{case_id[len(check) + 1:-1]}]" if case_id != check else "")
        grade.cases.append(CaseVerdict(c.todo, check, case_id, title, points, passed, output,
                                       catalogue.pool_of(c.todo)))
    if outcome.exit_code is None:
        grade.status = "timeout"
    elif not public:
        grade.status = f"no results (exit {outcome.exit_code})"
    elif outcome.exit_code not in (0, 1) or len(public) < len(case_names):
        grade.status = f"crashed (exit {outcome.exit_code})"
    conf = _load_json(run_dir / "out" / "confinement.json")
    missing = sandbox.Confinement(**{k: v for k, v in conf.items() if k in sandbox.Confinement.__dataclass_fields__}
                                  ).missing() if conf else ["the child reported no confinement"]
    if outcome.namespaces == "none":
        missing.append("no PID/network namespace (unshare unavailable)")
    grade.notes += [f"sandbox: {m}" for m in dict.fromkeys(missing)]
    grade.seconds = time.time() - t0
    grade.public_summary = summary
    return grade


def _read_small(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[:200] if path.is_file() and path.stat().st_size < 4096 else ""
    except OSError:
        return ""


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text()) if path.is_file() and path.stat().st_size < 65536 else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
