"""TODO1: MultiHeadAttention.forward (models/Transformer/modules/layer.py)."""
from __future__ import annotations

import ast
import copy
import inspect
import math

import pytest
import torch
import torch.nn as nn

from maskgit_kit.autograder.check import expect, expect_tensor, max_abs_diff
from maskgit_kit.autograder.points import points

TODO = "TODO1"  # the TODO of every check in this file (see @points)

LAYER = "models.Transformer.modules.layer"
FORBIDDEN = ("MultiheadAttention", "scaled_dot_product_attention", "multi_head_attention_forward")
# what the run-time trace refuses: torch functions, aten ops and autograd nodes of built-in attention, by name
# (compared without underscores and case: scaled_dot_product_attention, ScaledDotProductFlashAttentionForCpuBackward0)
BUILTIN_KERNELS = ("scaleddotproduct", "multiheadattention", "transformerencoderlayer")
TOL = 1e-5
HINT = "out_proj(concat_h softmax(Q_h K_h^T / sqrt(d_k)) V_h), softmax over the keys (last axis)"


def make(impl, dim, heads, p=0.0, seed=0):
    torch.manual_seed(seed)
    return impl.module(LAYER).MultiHeadAttention(dim, num_heads=heads, attn_drop=p)


def heads_of(m, x, proj, split="correct"):
    B, N, C = x.shape
    if split == "no transpose":  # a common mistake: .view(B, h, N, d_k) mixes tokens and features
        return proj(x).view(B, m.num_heads, N, m.d_k)
    if split == "none":  # one head over all features
        return proj(x).view(B, N, 1, C).transpose(1, 2)
    return proj(x).view(B, N, m.num_heads, m.d_k).transpose(1, 2)  # (B, h, N, d_k): head h = features h*d_k..


def reference(m, x, variant="correct"):
    """The documented attention, or a common mistake of it (to name the mistake in the feedback)."""
    B, N, C = x.shape
    o = MISTAKES.get(variant, {})
    q, k, v = (heads_of(m, x, p, o.get("split", "correct")) for p in (m.q_proj, m.k_proj, m.v_proj))
    if o.get("keys_as_values"):
        v = k
    if o.get("values_from_x"):
        v = heads_of(m, x, lambda t: t)
    scale = o.get("scale", lambda d_k, dim: 1 / math.sqrt(d_k))(m.d_k, C)
    scores = (q @ k.transpose(-2, -1)) * (1.0 if o.get("scale_after_softmax") else scale)
    if o.get("causal"):
        scores = scores.masked_fill(torch.ones(N, N, dtype=torch.bool).triu(1), float("-inf"))
    weights = scores.softmax(dim=o.get("softmax_dim", -1))
    out = (weights * scale if o.get("scale_after_softmax") else weights) @ v  # (B, h, N, d_k)
    out = out.reshape(B, N, C) if o.get("merge") == "no transpose" else out.transpose(1, 2).reshape(B, N, C)
    return out if o.get("no_out_proj") else m.out_proj(out)


# Known wrong attentions, by the name the feedback gives them. CORE: charged by test_attention_matches_reference;
# LAYOUT: the heads' split/merge, charged by test_attention_heads_use_own_slices only; CAUSAL: charged by
# test_attention_is_bidirectional only (test_attention_matches_reference does not charge what another check does).
CORE = {
    "no 1/sqrt(d_k) scale": {"scale": lambda d_k, dim: 1.0},
    "scale 1/d_k instead of 1/sqrt(d_k)": {"scale": lambda d_k, dim: 1 / d_k},
    "scale 1/sqrt(dim) instead of 1/sqrt(d_k)": {"scale": lambda d_k, dim: 1 / math.sqrt(dim)},
    "the scores multiplied by sqrt(d_k) instead of divided": {"scale": lambda d_k, dim: math.sqrt(d_k)},
    "softmax over the queries instead of the keys": {"softmax_dim": -2},
    "the keys used as values (attn @ K instead of attn @ V)": {"keys_as_values": True},
    "the values taken from x without v_proj": {"values_from_x": True},
    "the scale 1/sqrt(d_k) applied after the softmax instead of to the scores": {"scale_after_softmax": True},
    "no out_proj": {"no_out_proj": True},
}
LAYOUT = {
    "heads merged without transposing back to (B, N, h, d_k)": {"merge": "no transpose"},
    "heads split without the transpose (.view(B, h, N, d_k))": {"split": "no transpose", "merge": "no transpose"},
    "heads split without the transpose (.view(B, h, N, d_k)) and merged with one":
        {"split": "no transpose"},
    "no head split (one head over all dim features, scaled by 1/sqrt(d_k))": {"split": "none"},
}
CAUSAL = {"a causal mask (MaskGIT attends in both directions)": {"causal": True}}
MISTAKES = {**CORE, **LAYOUT, **CAUSAL}


def which(m, x, out, names) -> str | None:
    """The first known mistake among ``names`` whose output ``out`` equals, if any."""
    with torch.no_grad():
        for variant in names:
            ref = reference(m, x, variant)
            if ref.shape == out.shape and max_abs_diff(ref, out) < 1e-4:
                return variant
    return None


def diagnose(m, x, out, names=CORE) -> str:
    variant = which(m, x, out, names)
    return f"; your output equals attention with {variant}" if variant else ""


SHAPES = [(2, 256, 768, 16), (3, 7, 12, 3), (1, 5, 8, 1), (4, 16, 32, 4)]


@pytest.mark.parametrize("B,N,dim,heads", SHAPES, ids=[f"B{b}-N{n}-dim{d}-h{h}" for b, n, d, h in SHAPES])
@points(4, "MultiHeadAttention.forward")
def test_attention_output_shape(impl, B, N, dim, heads):
    """Output shape (B, N, dim), float, finite"""
    m = make(impl, dim, heads).eval()
    with torch.no_grad():
        out = m(torch.randn(B, N, dim))
    expect_tensor(out, f"output for input (B={B}, N={N}, dim={dim}), {heads} heads", (B, N, dim), torch.float32,
                  "return out_proj(...) of shape (B, N, dim)")
    expect(torch.isfinite(out).all(), "output values", "finite numbers", "NaN or inf")


CASES = [(2, 16, 32, 4), (3, 7, 12, 3), (1, 5, 8, 1)]


@pytest.mark.parametrize("B,N,dim,heads", CASES, ids=[f"B{b}-N{n}-dim{d}-h{h}" for b, n, d, h in CASES])
@points(9, "MultiHeadAttention.forward")
def test_attention_matches_reference(impl, B, N, dim, heads):
    """Equals softmax(Q_h K_h^T / sqrt(d_k)) V_h per head, merged by out_proj (eval mode; the heads' split/merge
    and the causal mask are graded by their own checks)"""
    m = make(impl, dim, heads).eval()  # p=0: dropout in eval mode is test_attention_dropout_on_weights_in_train_only's
    x = 2 * torch.randn(B, N, dim)
    with torch.no_grad():
        out = m(x)
        ref = reference(m, x)
    expect_tensor(out, "output", ref.shape)
    diff = max_abs_diff(out, ref)
    if diff > TOL and which(m, x, out, {**LAYOUT, **CAUSAL}):
        return  # right arithmetic with a head-layout mistake or a causal mask: charged once, by that check
    expect(diff <= TOL, "output vs a reference attention from the module's own q/k/v/out weights",
           f"max |difference| <= {TOL}", f"{diff:.3g}{diagnose(m, x, out)}", HINT)


@points(4, "MultiHeadAttention.forward")
def test_attention_is_bidirectional(impl):
    """Every token attends to every other token, before and after it (no causal mask)"""
    m = make(impl, 16, 4).eval()
    x = torch.randn(1, 6, 16)
    later, earlier = x.clone(), x.clone()
    later[0, -1] += 1.0
    earlier[0, 0] += 1.0
    with torch.no_grad():
        base, out_later, out_earlier = m(x), m(later), m(earlier)
    causal = "; your output equals attention with a causal mask" if which(m, x, base, CAUSAL) else ""
    expect(max_abs_diff(base[0, 0], out_later[0, 0]) > 1e-6, "first token's output after changing the last token",
           "a change (bidirectional attention)", f"no change{causal}", "do not apply a causal mask")
    expect(max_abs_diff(base[0, -1], out_earlier[0, -1]) > 1e-6, "last token's output after changing the first "
           "token", "a change (bidirectional attention)", "no change", "do not mask any position")


def _permute_heads(m, perm):
    """A copy of m whose heads are reordered: equivalent attention if each head uses its own feature slice."""
    m2 = copy.deepcopy(m)
    idx = torch.cat([torch.arange(h * m.d_k, (h + 1) * m.d_k) for h in perm])
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(m2, name).weight.copy_(getattr(m, name).weight[idx])
            getattr(m2, name).bias.copy_(getattr(m, name).bias[idx])
        m2.out_proj.weight.copy_(m.out_proj.weight[:, idx])
    return m2


def _only_head(m, h):
    """A copy of m in which every head but h has zero q/k/v weights (so it contributes nothing)."""
    m2 = copy.deepcopy(m)
    others = torch.ones(m.num_heads * m.d_k, dtype=torch.bool)
    others[h * m.d_k:(h + 1) * m.d_k] = False
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(m2, name).weight[others] = 0
            getattr(m2, name).bias[others] = 0
    return m2


@points(5, "MultiHeadAttention.forward")
def test_attention_heads_use_own_slices(impl):
    """Head h uses only features h*d_k:(h+1)*d_k of q/k/v, and the heads are merged back in order"""
    m = make(impl, 24, 3).eval()
    x = 2 * torch.randn(2, 5, 24)
    hint = "split with .view(B, N, h, d_k).transpose(1, 2); merge with .transpose(1, 2).reshape(B, N, dim)"
    with torch.no_grad():
        out = m(x)
        expect_tensor(out, "output", x.shape)
        permuted = _permute_heads(m, [2, 0, 1])(x)
        # heads are independent: the output (minus out_proj's bias) is the sum of what each head adds alone
        bias = m.out_proj.bias
        summed = sum(_only_head(m, h)(x) - bias for h in range(m.num_heads)) + bias
    if which(m, x, out, CORE):
        return  # e.g. no out_proj also reorders the heads' outputs: charged once, by test_attention_matches_reference
    named = diagnose(m, x, out, LAYOUT)
    expect(max_abs_diff(out, permuted) <= TOL, "output after reordering the heads' weight slices",
           "the same output (each head uses its own slice)", f"a change of {max_abs_diff(out, permuted):.3g}{named}",
           hint)
    expect(max_abs_diff(out, summed) <= TOL, "output vs the sum of the heads run one at a time",
           "the same (heads do not mix)", f"a difference of {max_abs_diff(out, summed):.3g}{named}",
           "attention scores per head: Q_h K_h^T over d_k features, not over all dim features")


class DropoutSpy(nn.Dropout):
    """Stands in for self.attn_drop (an nn.Dropout, ``.p`` included): records what it is given, then drops."""

    def __init__(self, p):
        super().__init__(p)
        self.seen = []

    def forward(self, a):
        self.seen.append(a.detach().clone())
        return super().forward(a)


def _what_was_dropped(m, x, seen) -> str:
    """Names the tensor a forward gave to self.attn_drop (one call) when it is a known intermediate; else ''."""
    if len(seen) != 1:
        return ""
    B, N, C = x.shape
    with torch.no_grad():
        q, k, v = (heads_of(m, x, p) for p in (m.q_proj, m.k_proj, m.v_proj))
        raw = q @ k.transpose(-2, -1)
        scores = raw / math.sqrt(m.d_k)
        heads = scores.softmax(dim=-1) @ v
        merged = heads.transpose(1, 2).reshape(B, N, C)
        known = (("the scores before the softmax", scores), ("the scores before the softmax", raw),
                 ("exp(scores) before the softmax's normalisation", scores.exp()),
                 ("exp(scores) before the softmax's normalisation",
                  (scores - scores.amax(dim=-1, keepdim=True)).exp()),
                 ("the attention output (attn @ V) instead of the weights", heads),
                 ("the merged heads (before out_proj) instead of the weights", merged),
                 ("the output of out_proj instead of the weights", m.out_proj(merged)),
                 ("the input x instead of the weights", x), ("the queries instead of the weights", q),
                 ("the keys instead of the weights", k), ("the values instead of the weights", v))
    a = seen[0]
    for name, ref in known:
        if a.numel() == ref.numel() and max_abs_diff(a.reshape(-1), ref.reshape(-1)) < 1e-4:
            return f"; dropout applied to {name}"
    return ""


@points(4, "MultiHeadAttention.forward")
def test_attention_dropout_on_weights_in_train_only(impl):
    """self.attn_drop is applied to the (N x N) attention weights (softmax rows), only active in train mode"""
    B, N, dim, heads = 2, 6, 16, 4
    m = make(impl, dim, heads)
    spy = m.attn_drop = DropoutSpy(0.5)
    x = torch.randn(B, N, dim)
    hint = "attn = self.attn_drop(softmax(...)) before multiplying by V"
    with torch.no_grad():
        m.eval()
        e1, e2 = m(x), m(x)
        if not torch.equal(e1, e2):
            why = ("; dropout (or other randomness) active in eval mode, not through self.attn_drop (F.dropout keeps "
                   "training=True unless told otherwise; an nn.Dropout made inside forward is in train mode)"
                   ) if not spy.seen else ""
            expect(False, "two calls in eval mode", "identical outputs (no dropout)", f"different outputs{why}",
                   "use self.attn_drop: it only acts in train mode by itself")
        m.train()
        spy.seen.clear()
        functional = []  # F.dropout(..., self.attn_drop.p, training=self.training) is a dropout on the weights too
        t1, builtin = _run_traced(lambda: m(x), functional)
        first = list(spy.seen) or functional
        t2 = m(x)
    if builtin:
        return  # built-in attention drops by itself: charged once, by test_attention_uses_no_builtin_attention
    expect(first, "calls of self.attn_drop (or a dropout with its p) in a train-mode forward", "at least 1",
           "none (no dropout is applied)", hint)
    shapes = [tuple(a.shape) for a in first]
    expect(all(s[-2:] == (N, N) for s in shapes) and sum(a.numel() for a in first) % (B * N * N) == 0,
           "shape of the tensor given to self.attn_drop", f"attention weights, e.g. (B, h, N, N) = {(B, heads, N, N)}",
           f"{', '.join(map(str, shapes))}{_what_was_dropped(m, x, first)}", hint)
    for a in first:  # rows summing to 1 over the queries (a wrong softmax axis) or to another constant (weights
        # scaled after the softmax): test_attention_matches_reference's mistakes; the dropout is on the weights
        sums = [a.sum(dim=d) for d in (-1, -2)]
        normalised = bool((a >= -1e-6).all()) and any(s.min() > 0 and (s.max() - s.min()) < 1e-4 * s.max()
                                                      for s in sums)
        expect(normalised, "rows of the tensor given to self.attn_drop", "softmax weights (non-negative, each row "
               "summing to 1 over the keys)", f"rows summing to {a.sum(dim=-1).flatten()[0].item():.3g}, min value "
               f"{a.min().item():.3g}{_what_was_dropped(m, x, first)}", hint)
    expect(not torch.equal(t1, t2) and not torch.equal(t1, e1), "outputs in train mode with attn_drop p=0.5",
           "random (dropout active)", "deterministic", hint)
    spy.p = 0.0
    with torch.no_grad():
        t0 = m(x)
    expect(max_abs_diff(t0, e1) <= TOL, "train-mode output with attn_drop p=0", "the eval-mode output",
           f"a difference of {max_abs_diff(t0, e1):.3g}", "no other dropout or randomness inside the attention")


def _builtin(names) -> list[str]:
    return sorted({n for n in names if any(k in n.replace("_", "").lower() for k in BUILTIN_KERNELS)})


def _run_traced(fn, dropped=None):
    """``fn()`` with every torch function it reaches recorded (a TorchFunctionMode sees F.*, torch._C._nn.*,
    torch.ops.aten.* and nn.MultiheadAttention's paths alike, however they were looked up); returns (result, the
    built-in attention functions among them). ``dropped``: a list that gets the input of each dropout call."""
    from torch.overrides import TorchFunctionMode

    seen = []

    class Functions(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", None) or str(func)
            seen.append(name)
            if dropped is not None and name in ("dropout", "dropout_") and args and torch.is_tensor(args[0]):
                dropped.append(args[0].detach().clone())
            return func(*args, **(kwargs or {}))

    with Functions():
        result = fn()
    return result, _builtin(seen)


def _autograd_nodes(out) -> list[str]:
    """The names of the autograd graph's nodes behind ``out`` (what ran, whatever Python did or did not see)."""
    names, todo, done = [], [getattr(out, "grad_fn", None)], set()
    while todo:
        node = todo.pop()
        if node is None or node in done:
            continue
        done.add(node)
        names.append(node.name())
        todo.extend(n for n, _ in node.next_functions)
    return names


def _imported_from_torch(tree) -> dict[str, str]:
    """Local names bound by ``from torch... import NAME`` for a forbidden NAME -> NAME."""
    return {(a.asname or a.name): a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and (node.module or "").split(".")[0] == "torch" for a in node.names if a.name in FORBIDDEN}


def _forbidden_in_source(module) -> list[str]:
    """Uses of torch's built-in attention in the MultiHeadAttention class: ``<torch module>.NAME`` or a name
    imported from torch. A function or method of the student's own with such a name is not charged, nor a test
    of the module under ``if __name__ == "__main__"`` (outside the class); the run-time trace sees the rest."""
    tree = ast.parse(inspect.getsource(module))
    own = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    imported = _imported_from_torch(tree)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MultiHeadAttention"), None)
    found = []
    for node in ast.walk(cls) if cls else []:
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN and node.attr not in own and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append(f"{node.attr} (line {node.lineno})")
        elif isinstance(node, ast.Name) and node.id in imported and node.id not in own:
            found.append(f"{imported[node.id]} (line {node.lineno})")
    return found


@points(4, "MultiHeadAttention.forward")
def test_attention_uses_no_builtin_attention(impl):
    """Attention written by hand: no nn.MultiheadAttention / F.scaled_dot_product_attention in the class, and no
    built-in attention function or kernel reached at run time (any route, torch.ops.aten included)"""
    layer = impl.module(LAYER)
    found = _forbidden_in_source(layer)
    expect(not found, "built-in attention in layer.py", "none", ", ".join(found), "write the attention yourself")
    m = make(impl, 16, 4, p=0.1)
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        out, used = _run_traced(lambda: m.eval()(x))
    trained, used_train = _run_traced(lambda: m.train()(x))  # with autograd, as in training
    used = sorted({*used, *used_train, *_builtin(_autograd_nodes(trained))})
    expect(not used, "built-in attention called at run time", "none", ", ".join(used),
           "write the attention yourself (matmul, softmax, dropout)")
    expect_tensor(out, "output", (2, 5, 16))
