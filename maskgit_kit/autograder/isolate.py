"""Run ``pytest grader ...`` for one submission in a child process, several at a time, with a time limit.

Why a child process: student code then cannot touch the caller's state (the CSV being collected, other
submissions' results), and a crash, ``os._exit`` or endless loop only ends that child.

On POSIX the caller imports torch, torchvision and pytest once and ``fork``s a child per submission, so a
grading run costs about a second instead of a fresh interpreter's import time; elsewhere each child is a new
``python -m pytest``. Each child's stdout and stderr go to a log file.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

USE_FORK = hasattr(os, "fork") and sys.platform != "darwin"  # macOS: fork after loading frameworks is unsafe
# Plugins the grader does not need; skipping them saves seconds per run (hypothesis loads itself at exit).
LEAN = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:unraisableexception",
        "-p", "no:threadexception", "--assert=plain"]


@dataclass
class Job:
    args: list[str]   # pytest arguments
    log: Path         # stdout + stderr of the child
    cwd: Path         # working directory of the child (a scratch folder)


@dataclass
class Outcome:
    exit_code: int | None  # pytest's exit code; None when the time limit killed it; < 0: killed by a signal
    seconds: float


def preload() -> None:
    """Import the heavy modules before forking, so that every child starts with them."""
    if USE_FORK:
        import numpy  # noqa: F401
        import PIL.Image  # noqa: F401
        import pytest  # noqa: F401
        import torch
        import torch.utils.data  # noqa: F401
        import torchvision  # noqa: F401
        import tqdm  # noqa: F401
        import yaml  # noqa: F401
        torch.set_num_threads(1)


def _start(job: Job):
    job.log.parent.mkdir(parents=True, exist_ok=True)
    if not USE_FORK:
        with open(job.log, "wb") as log:
            return subprocess.Popen([sys.executable, "-m", "pytest", *job.args], stdout=log,
                                    stderr=subprocess.STDOUT, cwd=job.cwd, start_new_session=True)
    sys.stdout.flush()  # or the child would print the caller's buffered output again
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 3  # child: never return into the caller's code
    try:
        os.setsid()  # own process group: a timeout kills whatever the submission started too
        fd = os.open(job.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.chdir(job.cwd)
        import pytest
        code = int(pytest.main(list(job.args)))
    except BaseException:  # noqa: BLE001 - report anything as an internal error of this child
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _poll(proc) -> int | None:
    """Exit code if finished, else None (negative: killed by that signal)."""
    if isinstance(proc, subprocess.Popen):
        return proc.poll()
    pid, status = os.waitpid(proc, os.WNOHANG)
    return os.waitstatus_to_exitcode(status) if pid else None


def _kill(proc) -> None:
    pid = proc.pid if isinstance(proc, subprocess.Popen) else proc
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if isinstance(proc, subprocess.Popen):
        proc.wait()
    else:
        os.waitpid(proc, 0)


def run_many(jobs: list[Job], parallel: int = 1, timeout: float = 600.0) -> list[Outcome]:
    """Run the jobs, at most ``parallel`` at a time; each is killed after ``timeout`` seconds."""
    preload()
    outcomes: list[Outcome | None] = [None] * len(jobs)
    running: dict[int, tuple[object, float]] = {}
    queue = list(range(len(jobs)))
    while queue or running:
        while queue and len(running) < max(1, parallel):
            i = queue.pop(0)
            running[i] = (_start(jobs[i]), time.monotonic())
        time.sleep(0.05)
        for i, (proc, t0) in list(running.items()):
            code = _poll(proc)
            elapsed = time.monotonic() - t0
            if code is None and elapsed > timeout:
                _kill(proc)
                outcomes[i] = Outcome(None, elapsed)
            elif code is not None:
                outcomes[i] = Outcome(code, elapsed)
            else:
                continue
            del running[i]
    return outcomes
