"""The autograder's pytest plugin: options, isolated import of the graded folder, points, feedback, results.

``grader/conftest.py`` imports everything from here (hooks and fixtures), so pytest uses it only when the grader's
folder is collected.

    pytest grader/                          grade lab/
    pytest grader/ --impl solutions         grade another folder with the lab's layout
    pytest grader/ --gradescope out.json    also write Gradescope's results.json
    pytest grader/ --todo TODO1             only the checks of one TODO
    pytest grader/ -v   (or --tb=long)      full tracebacks instead of the short feedback
    pytest grader/ --collect-only --list-checks PATH   write the collected checks as JSON (for tools/make_lab.py)

Each check declares its points beside it (``@points``, see ``points.py``); the TODOs' titles come from the
generated ``todos.json`` (``todos.py``). See grader/README.md.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import random
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from ..paths import KIT_ROOT
from . import timeout as _timeout
from . import watchdog as _watchdog
from .feedback import Feedback, describe
from .impl import Implementation, ImplError, resolve_impl
from .points import MARK_HELP, PointsError, check_of
from .results import Record, Results, write_json
from .todos import Catalogue, Check, TodosError
from .todos import load as load_todos

__all__ = [  # hooks and fixtures, for `from maskgit_kit.autograder.plugin import *` in grader/conftest.py
    "pytest_addoption",
    "pytest_ignore_collect",
    "pytest_configure",
    "pytest_pycollect_makeitem",
    "pytest_collection_modifyitems",
    "pytest_collectreport",
    "pytest_collection_finish",
    "pytest_runtest_protocol",
    "pytest_runtest_makereport",
    "pytest_runtest_logfinish",
    "pytest_terminal_summary",
    "pytest_sessionfinish",
    "pytest_unconfigure",
    "impl",
    "_clean_slate",
]


class _State:
    def __init__(self):
        self.active = False  # False when pytest was not asked to run the grader (e.g. `pytest` at the repo root)
        self.impl: Implementation | None = None
        self.results: Results | None = None
        self.gradescope: Path | None = None
        self.params: dict[str, int] = {}  # check -> number of collected cases
        self.checks: dict[str, Check] = {}  # check -> its @points declaration (read at collection)
        self.catalogue: Catalogue | None = None  # todos.json: the TODOs' titles and the known checks
        self.list_checks: Path | None = None  # --list-checks: write the collected checks there
        self.collection_failed = False
        self.written_final = False
        self.grader_dir = (KIT_ROOT / "grader").resolve()  # the folder of the checks (set by its conftest.py)
        self.scratch: Path | None = None  # the checks' working directories (one subfolder each), removed at the end
        self.ran = 0  # checks started (numbers their scratch folders)
        self.watchdog: _watchdog.Reporter | None = None  # reports to the supervisor process (watchdog.py)
        self.check_timeout = 0.0
        self.exitstatus: int | None = None


STATE = _State()


def checks_folder(conftest_file: str) -> None:
    """Called by the checks' ``conftest.py``: the grader is the folder that holds it (wherever it was copied)."""
    STATE.grader_dir = Path(conftest_file).resolve().parent


def pytest_addoption(parser):
    g = parser.getgroup("grader", "MaskGIT lab grader")
    g.addoption("--impl", default="lab", help="folder to grade (lab tree); relative to the working directory or "
                                             "the repo root (default: lab)")
    g.addoption("--gradescope", default=None, metavar="PATH", help="write Gradescope's results.json to PATH")
    g.addoption("--todo", action="append", default=None, metavar="TODOn",
                help="grade only these TODOs (repeatable; default: all)")
    g.addoption("--check-timeout", type=float, default=60.0, help="seconds allowed per check (default: 60)")
    g.addoption("--list-checks", default=None, metavar="PATH",
                help="with --collect-only: write every collected check (TODO, points, where to look, title) as "
                     "JSON to PATH (tools/make_lab.py builds todos.json and the README tables from it)")


def _inside_grader(config) -> list[bool]:
    """For each path given to pytest: is it the grader folder or inside it?"""
    inside = []
    for arg in config.args or [str(config.invocation_params.dir)]:
        path = Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        inside.append(path == STATE.grader_dir or STATE.grader_dir in path.parents)
    return inside


def pytest_ignore_collect(collection_path, config):
    if not STATE.active and STATE.grader_dir in Path(collection_path).resolve().parents:
        return True  # `pytest` at the repo root runs the project's tests; the grader runs only when named
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", MARK_HELP)
    inside = _inside_grader(config)
    if not any(inside):
        return
    STATE.active = True
    STATE.gradescope = Path(config.getoption("gradescope")).resolve() if config.getoption("gradescope") else None
    listing = config.getoption("list_checks")
    STATE.list_checks = Path(config.invocation_params.dir, listing).resolve() if listing else None
    if STATE.list_checks is not None and all(inside):
        # what todos.json is generated from: needs neither todos.json nor a graded folder (nothing runs)
        STATE.results = Results(impl="(listing the checks)")
        return
    try:
        if not all(inside):  # tests/ activate solutions/: never in the same process
            raise ImplError("run the grader on its own (pytest grader/), not together with other test folders")
        STATE.catalogue = load_todos()
        unknown = [t for t in config.getoption("todo") or [] if t not in STATE.catalogue.todos]
        if unknown:
            raise ImplError(f"--todo {unknown[0]}: unknown TODO (known: {', '.join(STATE.catalogue.todos)})")
        root = resolve_impl(config.getoption("impl"), Path(config.invocation_params.dir))
    except (ImplError, TodosError) as exc:
        STATE.results = Results(impl=str(config.getoption("impl")))
        STATE.results.notes.append(f"ERROR: {exc}")
        _write_final()
        raise pytest.UsageError(str(exc)) from None
    STATE.impl = Implementation(root)
    # student code runs with a scratch working directory (see pytest_runtest_protocol): every caller's relative
    # path (--impl, --gradescope, --list-checks) is resolved above, before any check runs
    STATE.scratch = Path(tempfile.mkdtemp(prefix="maskgit-grader-"))
    atexit.register(_remove_scratch)
    titles = {t.id: t.title for t in STATE.catalogue.todos.values()} if STATE.catalogue else {}
    STATE.results = Results(impl=str(root), titles=titles)
    if config.option.tbstyle == "auto" and config.option.verbose <= 0:
        config.option.tbstyle = "no"   # our one- or two-line feedback replaces tracebacks (-v brings them back)
        config.option.reportchars = ""
    _timeout.install(config, config.getoption("check_timeout"))
    STATE.check_timeout = config.getoption("check_timeout")
    # the time limit from outside the code under test: fork a supervisor, this process carries on as its child
    STATE.watchdog = _watchdog.start(config, STATE)
    import torch  # only now: a bad --impl or a plain `pytest` at the root should not pay for importing torch
    torch.set_num_threads(1)  # tiny tensors: threads only add contention; also keeps runs reproducible
    if STATE.gradescope:
        write_json(STATE.gradescope, STATE.results.gradescope(final=False))
        atexit.register(_write_final)


def _declare(item) -> str:
    """Record a collected check's @points declaration; a problem with it is ``pytest.fail``ed (a collection error
    of its file, naming the check) or, outside collection, raised as a usage error."""
    try:
        check = check_of(item)
    except PointsError as exc:
        return str(exc)
    known = STATE.checks.setdefault(check.name, check)
    if known.file != check.file:
        return f"{item.nodeid}: a check named {check.name} is also in {known.file}; check names must be unique"
    if known != check:
        return f"{item.nodeid}: the cases of {check.name} declare different points"
    if STATE.catalogue is not None and check.todo not in STATE.catalogue.todos:
        return (f"{item.nodeid}: {check.name} is declared for {check.todo}, which is not a TODO of the lab (known: "
                f"{', '.join(STATE.catalogue.todos)})")
    return ""


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector, name, obj):
    result = yield
    if STATE.active:
        for it in result if isinstance(result, list) else [result]:
            problem = _declare(it) if isinstance(it, pytest.Function) else ""
            if problem:
                pytest.fail(problem, pytrace=False)  # collecting this file fails, and the message names the check
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    if not STATE.active:
        return
    for it in items:
        if it.originalname not in STATE.checks:  # not collected by the hook above (another kind of item)
            problem = _declare(it)
            if problem:
                raise pytest.UsageError(problem)
        STATE.params[it.originalname] = STATE.params.get(it.originalname, 0) + 1
    todos = config.getoption("todo")
    if todos:
        keep = [it for it in items if STATE.checks[it.originalname].todo in todos]
        dropped = [it for it in items if STATE.checks[it.originalname].todo not in todos]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    _timeout.add_markers(config, items, config.getoption("check_timeout"))


def pytest_collectreport(report):
    if STATE.active and report.failed:
        STATE.collection_failed = True
        first = str(report.longrepr).strip().splitlines()
        STATE.results.notes.append(f"ERROR collecting {report.nodeid}: {first[-1] if first else 'unknown error'}")


def pytest_collection_finish(session):
    if not STATE.active:
        return
    if STATE.list_checks is not None:
        _list_checks(STATE.list_checks)
    res = STATE.results
    for it in session.items:
        check = STATE.checks[it.originalname]
        case = it.callspec.id if hasattr(it, "callspec") else ""
        res.add(it.nodeid, Record(check.name, case, check.title, check.points / STATE.params[check.name],
                                  todo=check.todo, where=check.where, pool=check.pool))
    todos = session.config.getoption("todo")
    known = STATE.catalogue.checks.values() if STATE.catalogue else ()
    for c in known:  # checks lost to a collection error still count, as failed
        if STATE.collection_failed and c.name not in STATE.params and (not todos or c.todo in todos):
            rec = Record(c.name, "", c.name, c.points, "failed",
                         Feedback("crash", "not run: its test file could not be collected (see the error above)"),
                         todo=c.todo, where=c.where, pool=c.pool)
            res.add(f"<not collected>::{c.name}", rec)
    if STATE.watchdog is not None and STATE.list_checks is None:
        STATE.watchdog.collected(res, _allowance(session.config, None))


def _list_checks(path: Path) -> None:
    """--list-checks: the collected declarations, in collection order, with their number of cases (a reader
    must also look at pytest's exit status: a file that could not be collected is missing from the list)."""
    data = {name: {**{k: v for k, v in vars(c).items() if k != "name"}, "cases": STATE.params[name]}
            for name, c in STATE.checks.items() if name in STATE.params}
    write_json(path, data)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Each check (setup, call, teardown) runs in a fresh scratch folder as its working directory, so nothing the
    student code writes to a relative path lands in the caller's folder; the caller's directory is restored after."""
    if not STATE.active or STATE.scratch is None:
        return (yield)
    caller = os.getcwd()
    STATE.ran += 1
    if STATE.watchdog is not None:
        STATE.watchdog.started(item.nodeid, _allowance(item.config, item))
    folder = STATE.scratch / f"{STATE.ran:03d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', item.name)[:80]}"
    folder.mkdir(parents=True, exist_ok=True)  # parents: student code may have removed the scratch folder
    os.chdir(folder)
    try:
        return (yield)
    finally:
        os.chdir(caller)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not STATE.active or item.nodeid not in STATE.results.records:
        return
    rec = STATE.results.records[item.nodeid]
    if report.failed:
        if rec.status != "failed":  # keep the first failure (setup before call before teardown)
            exc = call.excinfo.value if call.excinfo else RuntimeError(str(report.longrepr))
            rec.feedback = describe(exc, rec.todo, rec.where, STATE.impl)
            rec.status = "failed"
    elif report.when == "call" and report.passed and rec.status == "not run":
        rec.status = "passed"
    elif report.skipped and rec.status == "not run":
        rec.status, rec.feedback = "failed", Feedback("crash", "skipped")


def pytest_runtest_logfinish(nodeid, location):
    if STATE.active and STATE.watchdog is not None:
        STATE.watchdog.finished(nodeid, STATE.results.records.get(nodeid))
    if STATE.active and STATE.gradescope and not STATE.written_final:
        write_json(STATE.gradescope, STATE.results.gradescope(final=False))  # survives a hard crash of the run


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not STATE.active or STATE.results is None or STATE.list_checks is not None:
        return
    terminalreporter.write_sep("=", "grader summary")
    for line in STATE.results.summary().splitlines():
        terminalreporter.write_line(line)


@pytest.hookimpl(trylast=True)  # after pytest's own teardown of what is left (an interrupted check's fixtures)
def pytest_sessionfinish(session, exitstatus):
    STATE.exitstatus = int(exitstatus)
    if STATE.active:
        _write_final()
        with contextlib.suppress(OSError):  # an interrupted check's teardown may leave us in its scratch folder
            os.chdir(session.config.invocation_params.dir)
        _remove_scratch()


def pytest_unconfigure(config):
    if STATE.watchdog is not None:  # the session is over: the supervisor passes the exit code through
        STATE.watchdog.done(STATE.exitstatus)
        STATE.watchdog = None


def _allowance(config, item) -> float | None:
    """What the watchdog allows a check (``item``; None: the default for a check without its own marker)."""
    return _watchdog.check_allowance(item, STATE.check_timeout, config.pluginmanager.hasplugin("timeout"))


def _remove_scratch():
    if STATE.scratch is not None:
        shutil.rmtree(STATE.scratch, ignore_errors=True)
        STATE.scratch = None


def _write_final():
    if STATE.gradescope and STATE.results is not None and not STATE.written_final:
        STATE.written_final = True
        write_json(STATE.gradescope, STATE.results.gradescope())


# --- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def impl() -> Implementation:
    """The graded folder; ``impl.module("models.VQGAN_Transformer")`` imports from it."""
    return STATE.impl


@pytest.fixture(autouse=True)
def _clean_slate():
    """Same seeds and global torch state before every check, whatever a previous check's student code did."""
    import numpy as np
    import torch

    cwd = os.getcwd()
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    torch.set_grad_enabled(True)
    torch.set_default_dtype(torch.float32)
    yield
    os.chdir(cwd)
    torch.set_grad_enabled(True)
    torch.set_default_dtype(torch.float32)
