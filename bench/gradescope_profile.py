"""Time and memory of the Gradescope autograder under Gradescope's default container limits.

    python bench/gradescope_profile.py                         # builds the bundle in a temporary folder
    python bench/gradescope_profile.py --bundle dist/gradescope # the bundle `make gradescope` built
    python bench/gradescope_profile.py --uploads correct,stub,loop  # loop: a submission that never ends

Each upload is graded by the bundle's ``run_autograder`` on a fake ``/autograder`` (``AUTOGRADER_ROOT``) inside a
cgroup (v1, as root) with Gradescope's defaults: 768 MB of memory (``memory.limit_in_bytes``, swap included
where ``memsw`` exists) and 0.5 vCPU (``cpu.cfs_quota_us`` 50000 per 100000). Printed per upload: the wall time
(Gradescope stops a run at 10 minutes), the cgroup's peak memory (``peak_mb``: ``memory.max_usage_in_bytes``,
every process of the run together, page cache included; ``peak_rss_mb``: resident memory only, sampled every
0.1 s), whether the memory limit was hit (``failcnt``, OOM kills), the CPU time, and the score from results.json.
Without cgroups (not root, cgroup v2) the run is pinned to one core (``taskset``) without a memory cap, and the
peak is the largest single process (``ru_maxrss``), a lower bound.

Uploads: ``correct`` (the reference's four files in a nested folder, ``layers.py`` for ``layer.py``), ``stub``
(the lab's files as handed out), ``loop`` (a ``layer.py`` whose attention never returns: the child's wall limit
must end it within Gradescope's 10 minutes; it takes that long, so it is not run by default).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from maskgit_kit.labtree import STUDENT_FILES
from maskgit_kit.paths import KIT_ROOT as REPO

MEMORY_MB = 768
CPU_QUOTA_US, CPU_PERIOD_US = 50_000, 100_000
GRADESCOPE_SECONDS = 600
CGROUP = "maskgit-gradescope-profile"
LAYER = "models/Transformer/modules/layer.py"


def write_upload(kind: str, dest: Path) -> None:
    dest.mkdir(parents=True)
    if kind == "stub":
        for rel in STUDENT_FILES:
            (dest / "lab" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / "lab" / rel, dest / "lab" / rel)
        return
    nested = dest / "hw" / "submission"
    (nested / "modules").mkdir(parents=True)
    for rel in STUDENT_FILES:
        target = nested / "modules" / "layers.py" if rel == LAYER else nested / Path(rel).name
        shutil.copyfile(REPO / "solutions" / rel, target)
    if kind == "loop":
        layer = nested / "modules" / "layers.py"
        text = layer.read_text()
        anchor = "        B, N, C = x.shape\n"
        if anchor not in text:
            raise SystemExit(f"{REPO / 'solutions' / LAYER}: no line {anchor.strip()!r} to put the endless loop at")
        layer.write_text(text.replace(anchor, anchor + "        while True:\n            pass\n", 1))
    elif kind != "correct":
        raise SystemExit(f"--uploads: unknown upload {kind!r} (correct, stub, loop)")


# --- the container's limits ----------------------------------------------------------------------------------------
def _own_cgroup(controller: str) -> Path | None:
    """This process's cgroup folder of a v1 controller (None: not mounted or not v1)."""
    base = Path("/sys/fs/cgroup") / controller
    if not (base / "cgroup.procs").exists():
        return None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return base / path.lstrip("/")
    return base


class Container:
    """A cgroup v1 pair (memory, cpu) with Gradescope's default limits, or None-like when unavailable."""

    def __init__(self):
        self.memory = self.cpu = None
        if os.geteuid() != 0:
            return
        mem, cpu = _own_cgroup("memory"), _own_cgroup("cpu")
        if mem is None or cpu is None:
            return
        try:
            self.memory, self.cpu = mem / CGROUP, cpu / CGROUP
            for folder in (self.memory, self.cpu):
                folder.mkdir(exist_ok=True)
            (self.memory / "memory.limit_in_bytes").write_text(str(MEMORY_MB << 20))
            if (self.memory / "memory.memsw.limit_in_bytes").exists():
                (self.memory / "memory.memsw.limit_in_bytes").write_text(str(MEMORY_MB << 20))
            (self.cpu / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
            (self.cpu / "cpu.cfs_quota_us").write_text(str(CPU_QUOTA_US))
        except OSError as exc:
            print(f"no cgroup ({exc}); falling back to taskset", file=sys.stderr)
            self.close()
            self.memory = self.cpu = None

    @property
    def active(self) -> bool:
        return self.memory is not None

    def reset(self) -> None:
        (self.memory / "memory.max_usage_in_bytes").write_text("0")
        (self.memory / "memory.failcnt").write_text("0")

    def enter(self) -> None:  # in the child, before exec
        for folder in (self.memory, self.cpu):
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def sample_rss(self, stop: threading.Event, peak: list[int]) -> None:
        """The largest resident memory (``total_rss``: no page cache) seen, sampled every 0.1 s."""
        while not stop.wait(0.1):
            for line in (self.memory / "memory.stat").read_text().splitlines():
                if line.startswith("total_rss "):
                    peak[0] = max(peak[0], int(line.split()[1]))

    def stats(self) -> dict:
        oom = dict(line.split() for line in (self.memory / "memory.oom_control").read_text().splitlines())
        cpu = dict(line.split() for line in (self.cpu / "cpu.stat").read_text().splitlines())
        return {"peak_mb": int((self.memory / "memory.max_usage_in_bytes").read_text()) / (1 << 20),
                "limit_hits": int((self.memory / "memory.failcnt").read_text()),
                "oom_kills": int(oom.get("oom_kill", 0)), "throttled_periods": int(cpu.get("nr_throttled", 0))}

    def close(self) -> None:
        for folder in (self.memory, self.cpu):
            if folder is not None and folder.is_dir():
                try:
                    folder.rmdir()
                except OSError:
                    pass


def grade(bundle: Path, kind: str, scratch: Path, container: Container, python: str = sys.executable) -> dict:
    root = scratch / kind
    shutil.copytree(bundle, root / "source")
    write_upload(kind, root / "submission")
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": python}
    cmd = ["bash", str(root / "source" / "run_autograder")]
    if container.active:
        container.reset()
    elif shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    stop, rss = threading.Event(), [0]
    if container.active:
        threading.Thread(target=container.sample_rss, args=(stop, rss), daemon=True).start()
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              preexec_fn=container.enter if container.active else None,
                              timeout=GRADESCOPE_SECONDS + 60)
    finally:
        stop.set()
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        results = json.loads((root / "results" / "results.json").read_text())
    except (OSError, ValueError) as exc:
        results = {"score": None, "output": f"no results.json: {exc}\n{proc.stdout[-500:]}{proc.stderr[-500:]}"}
    row = {"upload": kind, "wall_s": round(wall, 1), "score": results.get("score"),
           "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
           "status": (results.get("output") or "").split("status: ", 1)[-1].split("\n", 1)[0][:60]}
    if container.active:
        row.update({k: round(v, 1) if isinstance(v, float) else v for k, v in container.stats().items()})
        row["peak_rss_mb"] = round(rss[0] / (1 << 20), 1)
    else:
        row["peak_mb"] = round(after.ru_maxrss / 1024, 1)  # the largest single process (KiB on Linux)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=None, help="an unpacked bundle (default: build one now)")
    ap.add_argument("--uploads", default="correct,stub", help="comma-separated: correct, stub, loop")
    ap.add_argument("--python", default=sys.executable,
                    help="the interpreter run_autograder uses (e.g. a virtual environment with the pinned CPU wheels)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    container = Container()
    try:
        with tempfile.TemporaryDirectory(prefix="gradescope-profile-") as tmp:
            scratch = Path(tmp)
            bundle = args.bundle
            if bundle is None:
                bundle, zipped = scratch / "bundle", scratch / "bundle.zip"
                subprocess.run([sys.executable, str(REPO / "tools" / "make_gradescope.py"), "--out",
                                str(scratch / "build"), "--zip", str(zipped)], check=True)
                with zipfile.ZipFile(zipped) as zf:  # graded as Gradescope unpacks it
                    zf.extractall(bundle)
            limits = (f"cgroup: {MEMORY_MB} MB, {CPU_QUOTA_US / CPU_PERIOD_US:g} vCPU" if container.active
                      else "no cgroup: taskset -c 0, no memory cap, peak = largest single process")
            print(f"Gradescope default container ({limits}); Gradescope stops a run at {GRADESCOPE_SECONDS} s")
            rows = []
            for kind in args.uploads.split(","):
                row = grade(bundle, kind.strip(), scratch, container, args.python)
                rows.append(row)
                print("  " + "  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    finally:
        container.close()
    if args.json:
        args.json.write_text(json.dumps({"cgroup": container.active, "rows": rows}, indent=2) + "\n")
    ok = all(r["score"] is not None and r["wall_s"] < GRADESCOPE_SECONDS and not r.get("oom_kills") for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
