"""The sandbox's layers, each on its own: Landlock (what a confined process may read, write, connect, signal),
the resource limits, the drop from root to an unprivileged user, and the parent's choice of that user."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from maskgit_kit.autograder import landlock, sandbox

REPO = Path(__file__).resolve().parent.parent
linux_landlock = pytest.mark.skipif(landlock.abi_version() < 6, reason="needs Linux Landlock ABI >= 6")


def in_child(fn) -> dict:
    """Run ``fn() -> dict`` in a forked child; its answer comes back as JSON through a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = json.dumps(fn()).encode()
        except BaseException as exc:  # noqa: BLE001
            out = json.dumps({"crash": repr(exc)}).encode()
        os.write(w, out)
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.waitpid(pid, 0)
    return json.loads(data)


def attempt(action) -> str:
    try:
        action()
        return "allowed"
    except OSError as exc:
        return type(exc).__name__


@linux_landlock
def test_landlock_allows_only_what_it_lists(tmp_path):
    own, other = tmp_path / "own", tmp_path / "other"
    own.mkdir()
    other.mkdir()
    (other / "secret.txt").write_text("secret")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def confined():
        landlock.restrict(read=[Path(sys.prefix), Path(sys.base_prefix), Path("/usr"), Path("/lib")], write=[own])
        return {
            "write own": attempt(lambda: (own / "f.txt").write_text("ok")),
            "read own": attempt(lambda: (own / "f.txt").read_text()),
            "read other": attempt(lambda: (other / "secret.txt").read_text()),
            "write other": attempt(lambda: (other / "new.txt").write_text("x")),
            "read the kit": attempt(lambda: (REPO / "solutions" / "inpainting.py").read_text()),
            "read the stdlib": attempt(lambda: Path(os.__file__).read_text()),
            "tcp connect": attempt(lambda: socket.create_connection(("127.0.0.1", port), timeout=2)),
            "signal the parent": attempt(lambda: os.kill(os.getppid(), 0)),
        }

    got = in_child(confined)
    server.close()
    assert got == {"write own": "allowed", "read own": "allowed", "read other": "PermissionError",
                   "write other": "PermissionError", "read the kit": "PermissionError",
                   "read the stdlib": "allowed", "tcp connect": "PermissionError",
                   "signal the parent": "PermissionError"}, got


def test_resource_limits_and_the_missing_layers_are_reported(tmp_path):
    spec = tmp_path / "spec.json"
    status = Path("/proc/self/status").read_text()
    used_mb = int(status.split("VmSize:")[1].split()[0]) // 1024  # this (forked) process's address space so far
    spec.write_text(json.dumps({"read": [], "write": [str(tmp_path)], "namespaces": "none",
                                "limits": vars(sandbox.Limits(memory_mb=used_mb + 1024, file_mb=1, open_files=64))}))

    def confined():
        import resource
        got = sandbox.confine(spec)
        big = attempt(lambda: (tmp_path / "big").write_bytes(b"x" * (2 << 20)))
        try:
            bytearray(3 << 30)
            memory = "allowed"
        except MemoryError:
            memory = "MemoryError"
        return {"file": big, "memory": memory, "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                "missing": got.missing()}

    got = in_child(confined)
    assert "crash" not in got, got
    assert got["file"] == "OSError" and got["memory"] == "MemoryError" and got["nofile"] == 64, got
    assert any("PID/network namespace" in m for m in got["missing"])


def test_a_root_grader_runs_the_child_as_a_fresh_unprivileged_user():
    """With a Python that any user can run (the system's), the child drops from root to the uid it was given."""
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or system_python is None or sandbox._unreadable_for_others([Path(system_python), REPO]):
        pytest.skip("needs root and a Python installation readable by other users")
    folder = Path(tempfile.mkdtemp(prefix="sandbox-uid-"))
    try:
        os.chmod(folder, 0o755)
        uid = 234567
        os.chown(folder, uid, uid)
        spec = folder / "spec.json"
        spec.write_text(json.dumps({"read": [str(REPO / "maskgit_kit")], "write": [str(folder)], "uid": uid,
                                    "namespaces": "none", "limits": vars(sandbox.Limits())}))
        script = f"""
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("maskgit_kit", {str(REPO / 'maskgit_kit' / '__init__.py')!r},
                                              submodule_search_locations=[{str(REPO / 'maskgit_kit')!r}])
mod = importlib.util.module_from_spec(spec); sys.modules["maskgit_kit"] = mod; spec.loader.exec_module(mod)
from maskgit_kit.autograder import sandbox
got = sandbox.confine({str(spec)!r})
def attempt(f):
    try:
        f(); return "allowed"
    except OSError as e:
        return type(e).__name__
print(json.dumps({{"uid": os.getuid(), "user": got.user, "caps": got.capabilities,
                  "root file": attempt(lambda: open("/etc/shadow").read()),
                  "setuid back": attempt(lambda: os.setuid(0)),
                  "own folder": attempt(lambda: open({str(folder / 'x')!r}, "w").write("x"))}}))
"""
        proc = subprocess.run([system_python, "-I", "-c", script], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        assert got == {"uid": uid, "user": f"uid {uid}", "caps": "none", "root file": "PermissionError",
                       "setuid back": "PermissionError", "own folder": "allowed"}, got
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_parent_names_why_it_cannot_drop_root(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "python").write_text("")
    os.chmod(private, 0o700)
    why = sandbox._unreadable_for_others([private / "python"])
    assert str(private) in why and "not open to other users" in why
    assert sandbox._unreadable_for_others([Path("/usr/bin")]) == ""
