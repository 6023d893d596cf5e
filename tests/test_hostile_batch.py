"""Proof that no submission can forge its grade or change another's in the instructor's batch mode: every hostile
submission of hostile_submissions.py, graded in one batch beside the reference and the stubs, earns exactly what it
earns honestly; the honest rows, the kit's files, the other submissions' results and the grades.csv are untouched;
nothing it started outlives it; nothing it sent reached a listening socket.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hostile_submissions import HOSTILE, write
from mutation_kit import write_submission

from maskgit_kit.autograder import landlock

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or landlock.abi_version() < 6,
                                reason="the sandbox's guarantees are tested where Linux Landlock (ABI >= 6) exists")


def kit_digest() -> str:
    h = hashlib.sha256()
    for folder in ("grader", "lab", "solutions", "maskgit_kit", "hidden_checks", "tools"):
        for p in sorted((REPO / folder).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                h.update(str(p).encode() + p.read_bytes())
    return h.hexdigest()


class Listener:
    """A TCP and a UDP socket on localhost that record whatever reaches them."""

    def __init__(self):
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen()
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        self.got: list[bytes] = []
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop:
            for sock in (self.tcp, self.udp):
                try:
                    if sock is self.tcp:
                        conn, _ = sock.accept()
                        self.got.append(conn.recv(100) or b"<connected>")
                        conn.close()
                    else:
                        self.got.append(sock.recv(100))
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.thread.join()
        self.tcp.close()
        self.udp.close()


def leftover_children(work_marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "maskgit_kit.autograder.child" in cmd and work_marker in cmd:
                found.append(f"{entry.name}: {cmd[:200]}")
    return found


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    subs, marks = root / "submissions", root / "marks"
    marks.mkdir()
    write_submission(subs / "reference")
    (subs / "stubs").mkdir()
    listener = Listener()
    for h in HOSTILE:
        write(subs / h.name, h, marks / h.name, listener.port, root)
    before = kit_digest()
    out = root / "grades.csv"
    cmd = [sys.executable, str(REPO / "tools" / "batch_grade.py"), str(subs), "--out", str(out), "--base",
           str(REPO / "lab"), "--jobs", "2", "--timeout", "60", "--memory-mb", "4096", "--check-timeout", "10"]
    env = {**os.environ, "TMPDIR": str(root)}  # the batch's work folder: found by the leftover-process scan
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=env)
    time.sleep(3)  # a forked child that outlived its submission would act now
    listener.close()
    with open(out, newline="") as f:
        rows = {r["submission"]: r for r in csv.DictReader(f)}
    yield {"proc": proc, "rows": rows, "root": root, "marks": marks, "before": before, "after": kit_digest(),
           "received": listener.got, "leftovers": leftover_children(str(root)), "csv": out.read_text()}


def test_the_batch_finishes_with_every_row(batch):
    assert batch["proc"].returncode == 0, batch["proc"].stdout[-3000:] + batch["proc"].stderr[-3000:]
    assert set(batch["rows"]) == {"reference", "stubs", *(h.name for h in HOSTILE)}


def test_honest_rows_are_unchanged(batch):
    rows = batch["rows"]
    assert float(rows["reference"]["score"]) == 100.0 and rows["reference"]["status"] == "ok", rows["reference"]
    assert float(rows["stubs"]["score"]) == 0.0 and rows["stubs"]["status"] == "ok", rows["stubs"]


@pytest.mark.parametrize("hostile", HOSTILE, ids=[h.name for h in HOSTILE])
def test_hostile_submission_earns_only_its_honest_score(batch, hostile):
    row = batch["rows"][hostile.name]
    assert float(row["score"]) == hostile.honest, row
    for todo, full in (("TODO1", 30.0), ("TODO2", 35.0), ("TODO3", 35.0)):
        assert 0 <= float(row[todo]) <= full


def test_nothing_escaped_the_sandbox(batch):
    assert batch["before"] == batch["after"], "a submission changed the kit's files"
    assert not list(batch["marks"].iterdir()), [p.name for p in batch["marks"].iterdir()]
    assert not batch["received"], batch["received"]
    assert not batch["leftovers"], batch["leftovers"]
    lines = batch["csv"].splitlines()  # the CSV the grader wrote, not one a forked child rewrote
    assert lines[0].startswith("submission,score,") and len(lines) == len(batch["rows"]) + 1


def test_kept_results_are_the_trusted_sides(batch):
    results = batch["root"] / "grades-results"
    forged = json.loads((results / "writes_own_results_and_exits.json").read_text())
    assert forged["score"] == 0 and forged["maskgit_row"]["score"] == 0
    log = results / "huge_stdout.log"
    assert log.stat().st_size <= 1 << 20  # the child's 60 MB of output kept only up to the limit
