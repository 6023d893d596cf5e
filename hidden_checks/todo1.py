"""Hidden forms of the TODO1 checks (MultiHeadAttention.forward)."""
from __future__ import annotations

import ast
import math

import torch

from maskgit_kit.autograder.trusted import Probe

TODO = "TODO1"
LAYER = "models.Transformer.modules.layer"
LAYER_FILE = "models/Transformer/modules/layer.py"
TOL = 1e-5
SHAPE, MATCH, BIDIRECTIONAL, SLICES = ("test_attention_output_shape", "test_attention_matches_reference",
                                       "test_attention_is_bidirectional", "test_attention_heads_use_own_slices")
DROPOUT, BUILTIN = "test_attention_dropout_on_weights_in_train_only", "test_attention_uses_no_builtin_attention"
FIXED_SHAPES = [(2, 9, 20, 5), (1, 3, 6, 2), (3, 17, 48, 6), (2, 4, 10, 1)]


def _state(reference, dim, heads, g: torch.Generator) -> dict:
    """Random weights and biases (biases matter: a bug can hide behind zero biases)."""
    m = reference.impl.module(LAYER).MultiHeadAttention(dim, num_heads=heads, attn_drop=0.0)
    return {k: torch.randn(v.shape, generator=g) / math.sqrt(max(v.shape[-1], 1)) for k, v in m.state_dict().items()}


def _shapes(g: torch.Generator) -> list[tuple[int, int, int, int]]:
    heads = int(torch.randint(2, 7, (1,), generator=g))
    d_k = int(torch.randint(2, 9, (1,), generator=g))
    n = int(torch.randint(3, 20, (1,), generator=g))
    return [*FIXED_SHAPES, (int(torch.randint(1, 4, (1,), generator=g)), n, heads * d_k, heads)]


def outputs_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"cases": [{"dim": d, "heads": h, "p": 0.0, "train": False, "drop": None,
                       "state": _state(reference, d, h, g), "x": 2 * torch.randn(b, n, d, generator=g)}
                      for b, n, d, h in _shapes(g)]}


def _module(ctx, case):
    """The reference MultiHeadAttention with the case's weights (the public checks' mistake catalogue needs one)."""
    m = ctx.reference.impl.module(LAYER).MultiHeadAttention(case["dim"], num_heads=case["heads"], attn_drop=0.0)
    m.load_state_dict(case["state"])
    return m.eval()


def judge_outputs(ctx) -> dict[str, str]:
    checks = ctx.grader.module("test_todo1_attention")
    charged = {}
    observed = ctx.observed.get("cases", [])
    if len(observed) != len(ctx.expected["cases"]):
        why = ctx.observed.get("error", "no output")
        return {SHAPE: why, MATCH: why, SLICES: why, BIDIRECTIONAL: why}
    for case, got, want in zip(ctx.inputs["cases"], observed, ctx.expected["cases"], strict=True):
        shape = f"B={case['x'].shape[0]}, N={case['x'].shape[1]}, dim={case['dim']}, {case['heads']} heads"
        if "error" in got or not torch.is_tensor(got.get("out")):
            why = got.get("error", "no output")
            return {SHAPE: why, MATCH: why, SLICES: why, BIDIRECTIONAL: why}
        out, ref = got["out"], want["out"]
        if out.shape != ref.shape or out.dtype != torch.float32 or not torch.isfinite(out).all():
            charged.setdefault(SHAPE, f"output {tuple(out.shape)} {out.dtype} for {shape}")
            charged.setdefault(MATCH, "wrong output shape")
            charged.setdefault(SLICES, "wrong output shape")
            continue
        diff = (out - ref).abs().max().item()
        if diff <= TOL:
            continue
        m = _module(ctx, case)
        with torch.no_grad():
            if checks.which(m, case["x"], out, checks.LAYOUT):
                charged.setdefault(SLICES, f"heads split or merged wrongly ({shape})")
            elif checks.which(m, case["x"], out, checks.CAUSAL):
                charged.setdefault(BIDIRECTIONAL, f"a causal mask ({shape})")
            else:
                charged.setdefault(MATCH, f"max |difference| {diff:.3g} from the reference ({shape})")
    return charged


def dropout_inputs(seed: int, reference) -> dict:
    g = torch.Generator().manual_seed(seed)
    cases = []
    for b, n, d, h in [(2, 7, 24, 4), (1, 5, 12, 3)]:
        state, x = _state(reference, d, h, g), torch.randn(b, n, d, generator=g)
        # what nn.Dropout(0.5) multiplies by; (N, N), the same for every image and head, so that any layout of the
        # heads ((B, h, N, N), (B*h, N, N), one head at a time) gets the same dropout
        keep = (torch.rand(n, n, generator=g) > 0.5).float() / 0.5
        cases += [{"dim": d, "heads": h, "p": 0.5, "train": False, "drop": None, "state": state, "x": x},
                  {"dim": d, "heads": h, "p": 0.5, "train": True, "drop": keep, "state": state, "x": x}]
    return {"cases": cases, "trace": True}


def judge_dropout(ctx) -> dict[str, str]:
    got_cases = ctx.observed.get("cases", [])
    if len(got_cases) != len(ctx.expected["cases"]):
        return {DROPOUT: ctx.observed.get("error", "no output")}
    if ctx.observed.get("builtin") or any(scan(text, rel) for rel, text in ctx.sources.items()):
        return {}  # built-in attention drops by itself: charged once, by the built-in check (as the public check does)
    for i in range(0, len(got_cases), 2):
        (ev, tr), (ev_ref, tr_ref) = got_cases[i:i + 2], ctx.expected["cases"][i:i + 2]
        if "error" in ev:
            return {DROPOUT: ev["error"]}
        if not torch.is_tensor(ev.get("out")) or ev["out"].shape != ev_ref["out"].shape or \
                (ev["out"] - ev_ref["out"]).abs().max() > TOL:
            continue  # a wrong eval-mode attention is the other checks' to charge; the dropout cannot be judged here
        if "error" in tr:
            return {DROPOUT: tr["error"]}
        if not torch.is_tensor(tr.get("out")) or tr["out"].shape != tr_ref["out"].shape or \
                (tr["out"] - tr_ref["out"]).abs().max() > 1e-4:
            seen = tr.get("dropout_inputs", [])
            return {DROPOUT: "train-mode output with a known dropout mask on the (B, h, N, N) weights differs from "
                             f"the reference (self.attn_drop got {seen or 'nothing'})"}
    return {}


# Names no student file may use: torch's built-in attention, and the doors to reach it by another name.
BUILTIN_KERNELS = ("scaleddotproduct", "flashattention", "efficientattention", "transformerencoderlayer",
                   "multiheadattentionforward")
TORCH_SPELLING = "MultiheadAttention"  # torch's module (lower-case h); the lab's own class is MultiHeadAttention
DOORS_ATTRS = {("torch", "ops"): "torch.ops", ("torch", "_C"): "torch._C", ("sys", "modules"): "sys.modules",
               ("", "__dict__"): "an object's __dict__", ("", "__builtins__"): "__builtins__"}
DOORS_CALLS = {"eval", "exec", "compile", "__import__", "globals"}


def _normal(name: str) -> str:
    return name.replace("_", "").lower()


def _forbidden(name: str) -> bool:
    return TORCH_SPELLING in name or any(k in _normal(name) for k in BUILTIN_KERNELS)


def _root(node) -> str:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else ""


def scan(source: str, file: str) -> list[str]:
    """Uses of built-in attention, direct or disguised (string-built names, torch.ops, importlib, eval...). A
    function, class or variable of the student's own with such a name is not charged, unless reached through torch."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # an unimportable file fails every check already
    own = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    own |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    torch_names = {"torch"} | {(a.asname or a.name).split(".")[0] for n in ast.walk(tree)
                               if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names
                               if (getattr(n, "module", None) or a.name).split(".")[0] == "torch"}
    found = []
    for node in ast.walk(tree):
        where = f"{file}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute):
            if _forbidden(node.attr) and (node.attr not in own or _root(node) in torch_names):
                found.append(f"{node.attr} ({where})")
            else:
                owner = node.value.id if isinstance(node.value, ast.Name) else ""
                door = DOORS_ATTRS.get((owner, node.attr)) or DOORS_ATTRS.get(("", node.attr))
                if door and owner != "self":
                    found.append(f"{door} ({where})")
        elif isinstance(node, ast.Name) and _forbidden(node.id) and node.id not in own:
            found.append(f"{node.id} ({where})")
        elif isinstance(node, ast.alias) and _forbidden(node.name):
            found.append(f"import {node.name} ({where})")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            if any(n.split(".")[0] in ("importlib", "ctypes") for n in names):
                found.append(f"import {names[0]} ({where})")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in DOORS_CALLS:
                found.append(f"{node.func.id}() ({where})")
            elif node.func.id == "getattr" and len(node.args) >= 2 and not isinstance(node.args[1], ast.Constant) \
                    and not (isinstance(node.args[0], ast.Name) and node.args[0].id == "self"):
                found.append(f"getattr with a computed name ({where})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier() and \
                _forbidden(node.value) and node.value not in own:
            found.append(f"the string {node.value[:40]!r} ({where})")
    return found


def builtin_inputs(seed: int, reference) -> dict:
    return {"cases": [], "trace": True}


def judge_builtin(ctx) -> dict[str, str]:
    found = [f for rel, text in ctx.sources.items() for f in scan(text, rel)]
    if ctx.observed.get("builtin"):
        found += [f"{n} reached at run time" for n in ctx.observed["builtin"]]
    elif "builtin" not in ctx.observed:
        found.append(ctx.observed.get("builtin_error") or ctx.observed.get("error") or "no run-time trace")
    return {BUILTIN: "built-in attention or a disguised route to it: " + ", ".join(found[:5])} if found else {}



PROBES = [
    Probe("attention_outputs_hidden", TODO, "attention on other shapes and weights, eval mode",
          (SHAPE, MATCH, BIDIRECTIONAL, SLICES), judge_outputs, "attention", outputs_inputs),
    Probe("attention_dropout_hidden", TODO, "train-mode dropout on the attention weights (a known mask)",
          (DROPOUT,), judge_dropout, "attention", dropout_inputs),
    Probe("attention_builtin_hidden", TODO, "no built-in attention, by any name or route", (BUILTIN,), judge_builtin,
          "attention", builtin_inputs),
]
