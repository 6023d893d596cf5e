"""TODO1: MultiHeadAttention.forward (models/Transformer/modules/layer.py)."""
from __future__ import annotations

import ast
import copy
import inspect
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from maskgit_kit.autograder.check import expect, expect_tensor, max_abs_diff
from maskgit_kit.autograder.points import points

TODO = "TODO1"  # the TODO of every check in this file (see @points)

LAYER = "models.Transformer.modules.layer"
FORBIDDEN = ("MultiheadAttention", "scaled_dot_product_attention", "multi_head_attention_forward")
TOL = 1e-5
HINT = "out_proj(concat_h softmax(Q_h K_h^T / sqrt(d_k)) V_h), softmax over the keys (last axis)"


def make(impl, dim, heads, p=0.0, seed=0):
    torch.manual_seed(seed)
    return impl.module(LAYER).MultiHeadAttention(dim, num_heads=heads, attn_drop=p)


def heads_of(m, x, proj):
    B, N, C = x.shape
    return proj(x).view(B, N, m.num_heads, m.d_k).transpose(1, 2)  # (B, h, N, d_k): head h = features h*d_k..


def reference(m, x, variant="correct"):
    """The documented attention, or a common mistake of it (to name the mistake in the feedback)."""
    B, N, C = x.shape
    q, k, v = (heads_of(m, x, p) for p in (m.q_proj, m.k_proj, m.v_proj))
    if variant == "correct":
        out = F.scaled_dot_product_attention(q, k, v)
    elif variant == "no 1/sqrt(d_k) scale":
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
    elif variant == "scale 1/d_k instead of 1/sqrt(d_k)":
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0 / m.d_k)
    elif variant == "scale 1/sqrt(dim) instead of 1/sqrt(d_k)":
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(C))
    elif variant == "a causal mask (MaskGIT attends in both directions)":
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    elif variant == "softmax over the queries instead of the keys":
        out = ((q @ k.transpose(-2, -1)) / math.sqrt(m.d_k)).softmax(dim=-2) @ v
    elif variant == "heads merged without transposing back to (B, N, h, d_k)":
        return m.out_proj(F.scaled_dot_product_attention(q, k, v).reshape(B, N, C))
    elif variant == "no out_proj":
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
    return m.out_proj(out.transpose(1, 2).reshape(B, N, C))


VARIANTS = ("no 1/sqrt(d_k) scale", "scale 1/d_k instead of 1/sqrt(d_k)", "scale 1/sqrt(dim) instead of 1/sqrt(d_k)",
            "a causal mask (MaskGIT attends in both directions)", "softmax over the queries instead of the keys",
            "heads merged without transposing back to (B, N, h, d_k)", "no out_proj")


def diagnose(m, x, out) -> str:
    with torch.no_grad():
        for variant in VARIANTS:
            ref = reference(m, x, variant)
            if ref.shape == out.shape and max_abs_diff(ref, out) < 1e-4:
                return f"; your output equals attention with {variant}"
    return ""


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
    """Equals softmax(Q_h K_h^T / sqrt(d_k)) V_h per head, merged by out_proj (eval mode)"""
    m = make(impl, dim, heads, p=0.5).eval()  # dropout must be off in eval mode
    x = 2 * torch.randn(B, N, dim)
    with torch.no_grad():
        out = m(x)
        ref = reference(m, x)
    expect_tensor(out, "output", ref.shape)
    diff = max_abs_diff(out, ref)
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
    expect(max_abs_diff(base[0, 0], out_later[0, 0]) > 1e-6, "first token's output after changing the last token",
           "a change (bidirectional attention)", "no change", "do not apply a causal mask")
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
    expect(max_abs_diff(out, permuted) <= TOL, "output after reordering the heads' weight slices",
           "the same output (each head uses its own slice)", f"a change of {max_abs_diff(out, permuted):.3g}", hint)
    expect(max_abs_diff(out, summed) <= TOL, "output vs the sum of the heads run one at a time",
           "the same (heads do not mix)", f"a difference of {max_abs_diff(out, summed):.3g}",
           "attention scores per head: Q_h K_h^T over d_k features, not over all dim features")


class DropoutSpy(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.drop = nn.Dropout(p)
        self.p = p
        self.shapes = []

    def forward(self, a):
        self.shapes.append(tuple(a.shape))
        return self.drop(a)


@points(4, "MultiHeadAttention.forward")
def test_attention_dropout_on_weights_in_train_only(impl):
    """self.attn_drop is applied to the (N x N) attention weights, and only changes the output in train mode"""
    B, N, dim, heads = 2, 6, 16, 4
    m = make(impl, dim, heads)
    spy = m.attn_drop = DropoutSpy(0.5)
    x = torch.randn(B, N, dim)
    hint = "attn = self.attn_drop(softmax(...)) before multiplying by V"
    with torch.no_grad():
        m.eval()
        e1, e2 = m(x), m(x)
        expect(torch.equal(e1, e2), "two calls in eval mode", "identical outputs (no dropout)", "different outputs",
               "dropout must only act in train mode (self.attn_drop does this by itself)")
        m.train()
        spy.shapes.clear()
        t1, t2 = m(x), m(x)
    expect(len(spy.shapes) == 2, "calls of self.attn_drop per forward in train mode", 1, f"{len(spy.shapes) / 2:g}",
           hint)
    shape = spy.shapes[0]
    expect(shape[-2:] == (N, N) and math.prod(shape) == B * heads * N * N, "shape of the tensor given to "
           "self.attn_drop", f"attention weights, e.g. (B, h, N, N) = {(B, heads, N, N)}", shape, hint)
    expect(not torch.equal(t1, t2) and not torch.equal(t1, e1), "outputs in train mode with attn_drop p=0.5",
           "random (dropout active)", "deterministic", hint)
    spy.drop.p = 0.0
    with torch.no_grad():
        t0 = m(x)
    expect(max_abs_diff(t0, e1) <= TOL, "train-mode output with attn_drop p=0", "the eval-mode output",
           f"a difference of {max_abs_diff(t0, e1):.3g}", "no other dropout or randomness inside the attention")


def _forbidden_in_source(module) -> list[str]:
    tree = ast.parse(inspect.getsource(module))
    found, aliases = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.name in FORBIDDEN:
                    found.append(f"import of {a.name}")
                    aliases.add(a.asname or a.name)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MultiHeadAttention"), None)
    docstrings = {id(n.body[0].value) for n in ast.walk(cls) if cls and isinstance(getattr(n, "body", None), list)
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for node in ast.walk(cls) if cls else []:
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            name = next((f for f in FORBIDDEN if f in node.value), None)
        if name in FORBIDDEN or name in aliases:
            found.append(f"{name} (line {node.lineno})")
    return found


@points(4, "MultiHeadAttention.forward")
def test_attention_uses_no_builtin_attention(impl, monkeypatch):
    """Attention written by hand (no nn.MultiheadAttention / F.scaled_dot_product_attention)"""
    layer = impl.module(LAYER)
    found = _forbidden_in_source(layer)
    expect(not found, "built-in attention in layer.py", "none", ", ".join(found), "write the attention yourself")

    used = []

    def trap(name):
        def call(*args, **kwargs):
            used.append(name)
            raise AssertionError(f"{name} called")
        return call

    monkeypatch.setattr(F, "scaled_dot_product_attention", trap("F.scaled_dot_product_attention"))
    monkeypatch.setattr(torch._C._nn, "scaled_dot_product_attention", trap("scaled_dot_product_attention"))
    monkeypatch.setattr(F, "multi_head_attention_forward", trap("F.multi_head_attention_forward"))
    monkeypatch.setattr(nn.MultiheadAttention, "forward", trap("nn.MultiheadAttention"))
    m = make(impl, 16, 4).eval()
    try:
        with torch.no_grad():
            out = m(torch.randn(2, 5, 16))
    except AssertionError:
        if not used:
            raise
        out = None
    expect(not used, "built-in attention called at run time", "none", ", ".join(used), "write the attention yourself")
    expect_tensor(out, "output", (2, 5, 16))
