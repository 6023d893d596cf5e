"""Run untrusted student code in a confined child process (the instructor's batch mode and Gradescope).

Parent side (``run``): the child is a fresh interpreter (``python -I -m maskgit_kit.autograder.child``: nothing of
the grader's memory, no reference or hidden check in it), started where the OS allows it in new PID and network
namespaces (``unshare``: every process it forks dies with it; no network device), in its own session, with a
wall-clock limit after which the whole namespace (or, without one, the process group) is killed.

Child side (``confine``, the child's first act, before any student code is imported): resource limits (address
space, CPU time, file size, open files, processes), capabilities dropped where it runs as root, then Landlock
(``landlock.py``): read access only to the Python installation and the kit's public package, read-write only to
its own job folder; no TCP; no signal to a process outside. Where a layer is missing (no Landlock, no namespaces)
the child still runs and the parent's report names what was missing (``Confinement``).
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import landlock

PACKAGE = Path(__file__).resolve().parents[1]  # maskgit_kit/: public code the child imports
MB = 1 << 20


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 6144     # address space (virtual: torch alone maps about 1.5 GB)
    cpu_seconds: int = 900    # CPU time, all threads together
    file_mb: int = 256        # largest file the child may write
    open_files: int = 256
    processes: int = 64       # processes and threads the child may add (RLIMIT_NPROC counts per user)
    wall_seconds: float = 600.0


@dataclass
class Confinement:
    """What the child's sandbox had (reported by the child; the parent adds what it set up itself)."""
    namespaces: str = "none"   # "pid+net" (root), "user+pid+net" (unprivileged), "none"
    landlock: str = "none"     # "filesystem,network,signals" as far as the kernel's ABI goes
    capabilities: str = "kept"  # "dropped" (as root), "none" (not root)
    limits: bool = False
    user: str = ""             # "uid N" (dropped from root), "" (kept the grader's user)
    why_root: str = ""         # why a root grader could not drop to an unprivileged user

    def missing(self) -> list[str]:
        out = [f"runs as root without capabilities, not as an unprivileged user: {self.why_root}"] \
            if self.why_root else []
        if self.namespaces == "none":
            out.append("no PID/network namespace: processes the submission forks may outlive it; network not cut")
        if "filesystem" not in self.landlock:
            out.append("no Landlock: the submission can read and write what the grader's user can")
        elif "signals" not in self.landlock:
            out.append("Landlock without signal scoping: the submission may signal other processes of this user")
        if self.capabilities == "kept":
            out.append("root capabilities kept")
        return out


@dataclass
class Job:
    folder: Path               # the child's only writable folder (its working directory)
    control: Path              # read-only for the child: its sandbox spec and task (written by the parent)
    argv: list[str]            # arguments of maskgit_kit.autograder.child after the spec
    read: list[Path] = field(default_factory=list)   # extra read-only folders (the graded copy, the checks)
    limits: Limits = field(default_factory=Limits)
    log: Path | None = None    # stdout + stderr (default: folder/log.txt)


@dataclass
class Outcome:
    exit_code: int | None      # None: killed at the wall-clock limit; < 0: ended by that signal
    seconds: float
    namespaces: str


# --- parent side ---------------------------------------------------------------------------------------------
def _namespace_prefix() -> tuple[list[str], str]:
    """The ``unshare`` command line that gives the child its own PID and network namespaces, if this OS allows
    it (root: directly; otherwise through a user namespace). Checked once per process."""
    global _PREFIX
    if _PREFIX is None:
        _PREFIX = [], "none"
        tool = shutil.which("unshare")
        if tool and sys.platform.startswith("linux"):
            base = [tool, "--pid", "--fork", "--kill-child", "--net", "--mount-proc"]
            for prefix, name in (([*base], "pid+net"), ([*base[:1], "--user", "--map-root-user", *base[1:]],
                                                        "user+pid+net")):
                try:
                    ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=20).returncode == 0
                except (OSError, subprocess.TimeoutExpired):
                    ok = False
                if ok:
                    _PREFIX = prefix, name
                    break
    return _PREFIX


_PREFIX: tuple[list[str], str] | None = None


def child_env(folder: Path) -> dict[str, str]:
    """A minimal environment: none of the grader's variables (tokens, paths) reach the child."""
    tmp = folder / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "TMPDIR": str(tmp), "LANG": "C.UTF-8",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "MPLBACKEND": "Agg",
           "MPLCONFIGDIR": str(tmp)}
    return env


def _unreadable_for_others(paths: list[Path]) -> str:
    """The first of ``paths`` an unprivileged user could not read (a folder on the way without o+x, or the path
    without o+r), or ""."""
    import stat
    for path in paths:
        path = Path(path).resolve()
        if not path.exists():
            continue
        for folder in [*reversed(path.parents)]:
            if not folder.stat().st_mode & stat.S_IXOTH:
                return f"{folder} (on the way to {path}) is not open to other users"
        if not path.stat().st_mode & stat.S_IROTH:
            return f"{path} is not readable by other users"
    return ""


_NEXT_UID = [0]


def _unprivileged_user(job: Job) -> tuple[int | None, str]:
    """As root: a fresh uid for this child (no other process has it: it can signal or trace none), if the child
    could still read what it needs as that user; else (None, why not)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None, ""
    why = _unreadable_for_others([Path(sys.executable), *read_roots()[:4], PACKAGE, job.control, *job.read])
    if why:
        return None, why
    _NEXT_UID[0] += 1
    uid = 200000 + (os.getpid() % 1000) * 1000 + _NEXT_UID[0] % 1000
    for path in [job.folder, *job.folder.rglob("*")]:
        os.chown(path, uid, uid)
    return uid, ""


def run(job: Job, zygote=None) -> Outcome:
    """Start the child, wait at most ``job.limits.wall_seconds``, kill everything it started, return its exit.
    With a ``zygote.Zygote`` the child is forked from it (no interpreter start-up); else a fresh interpreter."""
    prefix, namespaces = _namespace_prefix() if zygote is None else ([], zygote.namespaces)
    job.folder.mkdir(parents=True, exist_ok=True)
    job.control.mkdir(parents=True, exist_ok=True)
    env = child_env(job.folder)
    uid, why_root = _unprivileged_user(job)
    spec = {"read": [str(p) for p in [job.control, *job.read]], "write": [str(job.folder)],
            "limits": asdict(job.limits), "namespaces": namespaces, "uid": uid, "why_root": why_root}
    (job.control / "sandbox.json").write_text(json.dumps(spec))
    log = job.log or job.folder / "log.txt"
    if zygote is not None:
        t0 = time.monotonic()
        code = zygote.run([str(job.control / "sandbox.json"), *job.argv], job.folder, env, log,
                          job.limits.wall_seconds)
        return Outcome(code, time.monotonic() - t0, namespaces)
    cmd = [*prefix, sys.executable, "-I", "-m", "maskgit_kit.autograder.child", str(job.control / "sandbox.json"),
           *job.argv]
    t0 = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=job.folder, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=job.limits.wall_seconds)
        except subprocess.TimeoutExpired:
            code = None
        _kill_group(proc.pid)
        proc.wait()
    return Outcome(code, time.monotonic() - t0, namespaces)


def _kill_group(pgid: int) -> None:
    """SIGKILL the child's process group. In a PID namespace this ends every process of the submission
    (``unshare --kill-child``: the namespace's first process dies, and the kernel kills the rest)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --- child side ----------------------------------------------------------------------------------------------
def read_roots() -> list[Path]:
    """What any Python + torch process needs to read: the interpreter and its libraries, system libraries,
    /proc and /sys (CPU topology), a few device and configuration files; plus the kit's public package."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), PACKAGE}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if sysconfig.get_paths().get(key):
            paths.add(Path(sysconfig.get_paths()[key]))
    for entry in sys.path:  # site-packages and the like, never the working directory or the kit's own root
        p = Path(entry) if entry else None
        if p is not None and p.is_absolute() and p.exists() and p != PACKAGE.parent:
            paths.add(p)
    system = ["/usr/lib", "/usr/lib64", "/usr/local/lib", "/lib", "/lib64", "/usr/share/zoneinfo", "/proc", "/sys",
              "/dev/urandom", "/dev/random", "/dev/zero", "/etc/ld.so.cache", "/etc/localtime", "/etc/passwd",
              "/etc/group", "/etc/nsswitch.conf"]
    return sorted(paths | {Path(s) for s in system})


def _limit(resource_id: int, value: int) -> None:
    import resource
    soft, hard = resource.getrlimit(resource_id)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(resource_id, (value, value))


def _threads_of_this_user() -> int:
    uid, count = os.getuid(), 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if int(fields.get("Uid", "-1").split()[0]) == uid:
                count += int(fields.get("Threads", "1").strip())
    return count


def _drop_bounding_set():
    """No capability can ever be gained again (bounding set emptied, ambient set cleared); returns libc."""
    libc = ctypes.CDLL(None, use_errno=True)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text()) if Path("/proc/sys/kernel/cap_last_cap").exists() \
        else 40
    for cap in range(last + 1):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL
    return libc


def _drop_capabilities() -> bool:
    """As root: drop every capability (bounding, ambient, effective, permitted), keep uid 0 (the Python
    installation may sit where only root can look, e.g. /root/.pyenv). True if done."""
    if os.getuid() != 0:
        return False
    libc = _drop_bounding_set()

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    data = (Data * 2)()
    return libc.capset(ctypes.byref(Header(0x20080522, 0)), data) == 0


def confine(spec_path: Path) -> Confinement:
    """Apply the sandbox to this process (irreversibly). Called by the child before it imports student code."""
    import resource
    spec = json.loads(Path(spec_path).read_text())
    lim = Limits(**spec["limits"])
    got = Confinement(namespaces=os.environ.pop("MASKGIT_SANDBOX_NAMESPACES", spec.get("namespaces", "none")))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails (EFBIG) instead of killing the child
    _limit(resource.RLIMIT_AS, lim.memory_mb * MB)
    _limit(resource.RLIMIT_CPU, lim.cpu_seconds)
    _limit(resource.RLIMIT_FSIZE, lim.file_mb * MB)
    _limit(resource.RLIMIT_NOFILE, lim.open_files)
    _limit(resource.RLIMIT_CORE, 0)
    got.why_root = spec.get("why_root", "")
    if spec.get("uid") is not None and os.getuid() == 0:  # root -> a fresh unprivileged user: setuid clears the
        _drop_bounding_set()                              # capabilities, and none can be regained
        os.setgroups([])
        os.setgid(spec["uid"])
        os.setuid(spec["uid"])
        got.user, got.capabilities = f"uid {spec['uid']}", "none"
    else:
        got.capabilities = "dropped" if _drop_capabilities() else ("kept" if os.getuid() == 0 else "none")
    _limit(resource.RLIMIT_NPROC, _threads_of_this_user() + lim.processes)  # enforced once capabilities are gone
    got.limits = True
    try:
        applied = landlock.restrict(read=[*read_roots(), *map(Path, spec["read"])],
                                    write=[*map(Path, spec["write"]), Path("/dev/null")])
        got.landlock = ",".join(k for k, v in applied.items() if v)
    except landlock.LandlockError as exc:
        got.landlock = f"none ({exc})"
    return got
