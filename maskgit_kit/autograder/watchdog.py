"""A watchdog for ``pytest grader/``: per-check time limits the code under test cannot cancel, and a clear
ending when that code ends the run early.

In ``pytest grader/`` the student's code runs inside the pytest process, so the in-process time limit
(``timeout.py``) is in its hands: code that catches ``BaseException`` in a loop, or cancels the alarm
(``signal.setitimer(signal.ITIMER_REAL, 0)``, ``signal.signal(SIGALRM, SIG_IGN)``), hangs the run, and
``os._exit(0)`` ends it with exit code 0 and no summary. So, on POSIX, the grader forks once in
``pytest_configure`` (before torch is imported): the child carries on with the pytest session and reports over a
pipe (checks collected, check started with its allowance, check finished, session done); the parent becomes the
supervisor, which never returns into pytest. It

- kills the child (SIGKILL) when a check runs past its allowance: its time limit (``--check-timeout`` or its own
  ``timeout`` marker; twice that without pytest-timeout, whose fallback times setup and call apart) plus
  ``GRACE`` seconds, in which the in-process limit normally fails the check first;
- when the child ended without finishing the session (killed, ``os._exit``, a crash), prints a
  ``grader run cut short: ...`` block (why, during which check, the score so far; the cut check and the checks
  not run score 0), rewrites ``--gradescope PATH`` as an incomplete run and exits non-zero: the child's own exit
  code when it had one, else ``EXIT_CUT``;
- when the session finished, exits with the child's exit code and prints nothing.

Ctrl-C still works: the supervisor ignores SIGINT, the child (same process group) gets it and pytest stops as
usual. SIGTERM and SIGHUP are passed on to the child. On Linux the child dies with the supervisor
(``PR_SET_PDEATHSIG``).

No watchdog: where ``os.fork`` is missing (Windows: the in-process limit only), with ``MASKGIT_GRADER_WATCHDOG=0``,
with ``--pdb``/``--trace``, and when pytest does not own the process (``pytest.main`` called by another program,
such as ``tools/batch_grade.py``'s children, which have their own time limit, or a pytester run): a supervisor
there would never give control back to the caller.

It is a guard against accidents, not a sandbox: the child's messages come from the process the student's code
runs in, and subprocesses that code starts are not stopped.
"""
from __future__ import annotations

import dataclasses
import json
import os
import select
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

from .feedback import Feedback
from .results import Record, Results, write_json

ENV = "MASKGIT_GRADER_WATCHDOG"
GRACE = 5.0     # seconds a check may run past its time limit before the watchdog stops the run
EXIT_CUT = 3    # exit code of a cut run whose grader process did not give one (exit 0, a signal, the watchdog)
POLL = 0.05     # seconds between checks of the child's state while waiting


def wanted(config) -> bool:
    """Should this grader run be supervised? (The grader is active; see the module docstring for the rest.)"""
    if not hasattr(os, "fork") or os.environ.get(ENV, "1").strip() == "0":
        return False
    opt = config.option
    if getattr(opt, "collectonly", False) or getattr(opt, "usepdb", False) or getattr(opt, "trace", False):
        return False
    return _pytest_owns_process(config)


def _pytest_owns_process(config) -> bool:
    """True when this process is ``pytest ...`` or ``python -m pytest ...`` started from the command line."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    launcher = argv0.name in ("pytest", "py.test") or (argv0.name == "__main__.py" and argv0.parent.name == "pytest")
    return launcher and list(config.invocation_params.args) == sys.argv[1:]


def check_allowance(item, default: float, timeout_plugin: bool) -> float | None:
    """Seconds a check may run before the watchdog stops the run (None: no limit; ``item`` None: a check
    without its own ``timeout`` marker)."""
    marker = item.get_closest_marker("timeout") if item is not None else None
    limit = default
    if marker is not None:
        limit = marker.args[0] if marker.args else marker.kwargs.get("timeout", default)
    try:
        limit = float(limit)
    except (TypeError, ValueError):
        limit = default
    if not limit or limit <= 0:
        return None
    return limit * (1 if timeout_plugin else 2) + GRACE


def start(config, state) -> Reporter | None:
    """Fork the supervisor if ``wanted``. Returns the child's reporter (None: no watchdog); the parent never
    returns. ``state`` is the plugin's state (``results``, ``gradescope``, ``scratch``)."""
    if not wanted(config):
        return None
    sys.stdout.flush()  # or both processes would print what is buffered
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _die_with_parent(parent)
        return Reporter(write_fd)
    os.close(write_fd)
    Supervisor(pid, read_fd, state).run()  # never returns
    os._exit(EXIT_CUT)


def _die_with_parent(parent: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the supervisor died before prctl
        os._exit(EXIT_CUT)


class Reporter:
    """The child's side: one JSON object per line on the pipe. Write errors are ignored (the supervisor is gone,
    or the code under test closed the pipe: the supervisor then falls back to the whole run's time limit)."""

    def __init__(self, fd: int):
        self.fd = fd

    def _send(self, **message) -> None:
        data = (json.dumps(message, allow_nan=True) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError:
            pass

    def collected(self, results: Results, allowance: float | None) -> None:
        self._send(event="collected", allowance=allowance, notes=list(results.notes),
                   records={nodeid: dataclasses.asdict(r) for nodeid, r in results.records.items()})

    def started(self, nodeid: str, allowance: float | None) -> None:
        self._send(event="start", nodeid=nodeid, allowance=allowance)

    def finished(self, nodeid: str, record: Record | None) -> None:
        self._send(event="finish", nodeid=nodeid, record=dataclasses.asdict(record) if record else None)

    def done(self, exitstatus: int | None) -> None:
        self._send(event="done", exitstatus=exitstatus)


def _record(data: dict) -> Record:
    fb = data.get("feedback")
    return Record(**{**data, "feedback": Feedback(**fb) if fb else None})


class Supervisor:
    def __init__(self, pid: int, fd: int, state):
        self.pid, self.fd, self.state = pid, fd, state
        self.results: Results = state.results
        self.buffer = b""
        self.eof = False
        self.current: str | None = None      # the check running now (node id)
        self.last: str | None = None         # the last check that finished
        self.collected = False
        self.done = False
        self.deadline: float | None = None   # monotonic time the current check must be over by
        self.run_deadline: float | None = None  # ... and the whole run (a fallback, if the pipe goes quiet)
        self.allowance: float | None = None  # of the current check
        self.overrun: str | None = None      # the check the watchdog stopped
        self.forwarded: int | None = None    # a SIGTERM/SIGHUP the supervisor got and passed on

    def run(self) -> None:
        code = EXIT_CUT
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the child (same process group)
            for signum in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, self._forward)
            status = self._wait()
            code = self._conclude(status)
        except BaseException:  # noqa: BLE001 - the supervisor must not fall back into pytest
            traceback.print_exc()
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ChildProcessError, ProcessLookupError):
                pass
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _forward(self, signum, frame) -> None:
        self.forwarded = signum
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    # -- waiting --------------------------------------------------------------------------------------------
    def _wait(self) -> int:
        """Follow the child until it ends (or is killed); its wait status."""
        while True:
            now = time.monotonic()
            limits = [d for d in (self.deadline, self.run_deadline) if d is not None]
            if limits and now >= min(limits):
                self.overrun = self.current or self.last or "(between checks)"
                os.kill(self.pid, signal.SIGKILL)
                _, status = os.waitpid(self.pid, 0)
                self._drain()
                return status
            pause = min([POLL if self.eof else 0.25, *(d - now for d in limits)])
            if self.eof:
                time.sleep(max(pause, 0.0))
            else:
                ready, _, _ = select.select([self.fd], [], [], max(pause, 0.0))
                if ready:
                    self._read()
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._drain()
                return status

    def _read(self) -> bool:
        """Handle what the pipe holds; False when nothing more can be read now (end of file, or nothing yet on a
        non-blocking read)."""
        try:
            chunk = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return False
        if not chunk:
            self.eof = True  # the child closed the pipe: the whole run's time limit still applies
            return False
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            try:
                self._handle(json.loads(line))
            except (ValueError, TypeError, KeyError):
                continue  # a torn or foreign line: ignore it
        return True

    def _drain(self) -> None:
        """Read what the child wrote before it ended."""
        if self.eof:
            return
        os.set_blocking(self.fd, False)  # a process the child started may still hold the pipe open
        while self._read():
            pass

    def _handle(self, msg: dict) -> None:
        event = msg["event"]
        now = time.monotonic()
        if event == "collected":
            self.collected = True
            self.results.records = {n: _record(r) for n, r in msg["records"].items()}
            self.results.notes = list(msg["notes"])
            self.allowance = msg["allowance"]
            if self.allowance is not None:
                self.run_deadline = now + self.allowance * max(1, len(self.results.records)) + GRACE
        elif event == "start":
            self.current, self.allowance = msg["nodeid"], msg["allowance"]
            self.deadline = now + self.allowance if self.allowance is not None else None
        elif event == "finish":
            if msg["record"] is not None:
                self.results.records[msg["nodeid"]] = _record(msg["record"])
            self.current, self.last, self.deadline = None, msg["nodeid"], None
        elif event == "done":
            self.done, self.current, self.deadline, self.run_deadline = True, None, None, None

    # -- the ending -----------------------------------------------------------------------------------------
    def _conclude(self, status: int) -> int:
        code = os.waitstatus_to_exitcode(status)
        if self.done and self.overrun is None:
            return code if code >= 0 else 128 - code
        reason = self._reason(code)
        self._cut(reason, code)
        return code if code > 0 else EXIT_CUT

    def _reason(self, code: int) -> str:
        if self.overrun is not None:
            if self.current is None:
                return (f"the run did not finish in time after {self.overrun}; the watchdog stopped the grader "
                        "process")
            return (f"{self.current} did not finish within {self.allowance:g} s (its time limit "
                    f"{self.allowance - GRACE:g} s + {GRACE:g} s grace); the watchdog stopped the grader process")
        if code < 0 and -code == self.forwarded:
            how = f"was stopped from outside ({_signal_name(-code)})"
        elif code < 0:
            how = f"was killed by {_signal_name(-code)}"
        else:
            how = f"ended early (exit code {code}; os._exit or a crash?)"
        if self.current is not None:
            return f"the grader process {how} during {self.current}"
        if not self.collected:
            return f"the grader process {how} before the checks were collected"
        return f"the grader process {how} " + (f"after {self.last}" if self.last else "before the first check")

    def _cut(self, reason: str, code: int) -> None:
        res = self.results
        rec = res.records.get(self.current) if self.current else None
        if rec is not None and rec.status == "not run":
            see = f"see {rec.todo}: {rec.where}" if rec.where else ""
            if self.overrun is not None:
                text = (f"did not finish within {self.allowance:g} s, and the in-process time limit could not stop "
                        "it (catching BaseException, or changing SIGALRM / signal.setitimer?); the run was cut here")
                rec.feedback = Feedback("timeout", text, see)
            else:
                if code < 0 and -code == self.forwarded:
                    text = f"not finished: the run was stopped from outside ({_signal_name(-code)}) during this check"
                elif code < 0:
                    text = (f"the grader process was killed by {_signal_name(-code)} during this check (a crash in "
                            "your code?); the run was cut here")
                else:
                    text = (f"the grader process exited with code {code} during this check (os._exit in your "
                            "code?); the run was cut here")
                rec.feedback = Feedback("crash", text, see)
            rec.status = "failed"
        finished = sum(r.status != "not run" and r is not rec for r in res.records.values())
        earned, possible = res.total()
        so_far = (f"graded so far: {finished} of {len(res.records)} checks finished, {_num(earned)}/{_num(possible)} "
                  "points; the check that was cut and the checks not run count as failed" if res.records else
                  "graded so far: nothing (no check was collected)")
        res.notes[:0] = [f"grader run cut short: {reason}", so_far]
        width = max(40, shutil.get_terminal_size().columns)
        title = " grader run cut short "
        left = (width - len(title)) // 2
        block = f"\n{'=' * left}{title}{'=' * (width - left - len(title))}\n{res.summary()}\n"
        try:
            sys.stdout.write(block)
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        if self.state.gradescope:
            try:
                write_json(self.state.gradescope, res.gradescope(final=False))
            except OSError as exc:
                print(f"grader watchdog: could not rewrite {self.state.gradescope}: {exc}", file=sys.stderr)
        if self.state.scratch is not None:
            shutil.rmtree(self.state.scratch, ignore_errors=True)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _num(x: float) -> str:
    return f"{x:g}" if abs(x - round(x)) < 1e-9 else f"{x:.2f}"
