"""The confined child of the trusted grader: ``python -I -m maskgit_kit.autograder.child SANDBOX.json TASK.json``.

It confines itself first (``sandbox.confine``), then, with the graded copy: runs each observer the trusted side
asked for (``requests/*.pt``) and saves what the student's code returned (``out/<probe>.pt``), then runs the
public checks (``pytest grader --gradescope out/public.json``) for their feedback. Nothing it writes is believed
as such: the trusted side judges the observations against the reference itself, and the public results can only
take points away from this submission (see ``trusted.py``).
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path


def _with_alarm(seconds: float, fn, *args):
    from .timeout import CheckTimeout

    def on_alarm(signum, frame):
        raise CheckTimeout(f"Timeout >{seconds:g}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def observe_all(task: dict, out: Path) -> None:
    import torch

    from ..atomic import torch_save
    from .impl import Implementation
    from .observers import Grader, observer

    impl, grader = Implementation(Path(task["impl"])), Grader(Path(task["grader"]))
    for name in task["probes"]:  # in the trusted side's order; those already observed or that ended a run skipped
        request_path = Path(task["requests"]) / f"{name}.pt"
        (out / "current.txt").write_text(name)
        torch.manual_seed(0)
        torch.set_grad_enabled(True)
        torch.set_default_dtype(torch.float32)
        try:
            request = torch.load(request_path, weights_only=True)
            result = _with_alarm(float(task["probe_timeout"]), observer(request["observer"]), impl, grader,
                                 request["inputs"])
        except BaseException as exc:  # noqa: BLE001 - whatever the student code raised; the trusted side judges
            where = impl.where(exc)
            result = {"error": f"{type(exc).__name__}: {exc}"[:500] + (f" (at {where})" if where else "")}
        try:
            torch_save(result, out / request_path.name)
        except Exception as exc:  # noqa: BLE001 - e.g. an object torch.save cannot write
            torch_save({"error": f"the observation could not be saved: {type(exc).__name__}: {exc}"[:500]},
                       out / request_path.name)


def main(argv: list[str]) -> int:
    from . import sandbox
    confinement = sandbox.confine(Path(argv[0]))  # before anything reads the task or imports student code
    sys.dont_write_bytecode = True
    task = json.loads(Path(argv[1]).read_text())
    folder = Path(task["folder"])
    os.chdir(folder)
    out = folder / "out"
    out.mkdir(exist_ok=True)
    (out / "confinement.json").write_text(json.dumps(vars(confinement)))
    import torch
    torch.set_num_threads(1)
    observe_all(task, out)
    (out / "current.txt").write_text("public checks")
    if not task.get("public", True):
        return 0
    import pytest

    from .isolate import LEAN
    (folder / "pytest.ini").write_text("[pytest]\n")
    args = [task["grader"], "--impl", task["impl"], "--gradescope", str(out / "public.json"), "-q", *LEAN,
            "--rootdir", str(folder), "-c", str(folder / "pytest.ini"),
            "--check-timeout", str(task.get("check_timeout", 60)), *task.get("pytest_args", [])]
    return int(pytest.main(args))


if __name__ == "__main__":
    code = 3
    try:
        code = main(sys.argv[1:])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
