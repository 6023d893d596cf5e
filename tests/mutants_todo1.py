"""TODO1: realistic bugs (MUTANTS) the grader must catch in TODO1 only, and correct code written differently
(VARIANTS) that must score 100. See mutation_kit.py for the pieces."""
from __future__ import annotations

from mutation_kit import INPAINT, LAYER, MODEL, TRAIN, BodyMutant, Mutant, Variant  # noqa: F401

BLOCK = "multi-head attention"
SCORES = "scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d_k))"
DROP = "attn = self.attn_drop(scores.softmax(dim=-1))"
SPLIT = ".view(B, N, h, d_k).transpose(1, 2)"

MUTANTS = [
    Mutant("no_sqrt_dk_scale", LAYER, SCORES, "scores = q @ k.transpose(-2, -1)", "TODO1", "no 1/sqrt(d_k) scale"),
    Mutant("scale_times_sqrt_dk", LAYER, SCORES, "scores = (q @ k.transpose(-2, -1)) * math.sqrt(d_k)", "TODO1",
           "multiplied by sqrt(d_k) instead of divided"),
    Mutant("scale_by_dim", LAYER, "math.sqrt(d_k)", "math.sqrt(C)", "TODO1",
           "scale 1/sqrt(dim) instead of 1/sqrt(d_k)"),
    Mutant("causal_mask", LAYER, DROP,
           "attn = self.attn_drop(scores.masked_fill(scores.new_ones(N, N).triu(1).bool(), float('-inf'))"
           ".softmax(dim=-1))", "TODO1", "causal mask"),
    Mutant("softmax_wrong_axis", LAYER, "scores.softmax(dim=-1)", "scores.softmax(dim=-2)", "TODO1",
           "softmax over the queries"),
    Mutant("keys_as_values", LAYER, "out = attn @ v", "out = attn @ k", "TODO1", "the keys used as values"),
    Mutant("values_without_v_proj", LAYER, "v = self.v_proj(x).view(B, N, h, d_k)", "v = x.view(B, N, h, d_k)",
           "TODO1", "the values taken from x without v_proj"),
    Mutant("scale_after_softmax", LAYER, SCORES, "scores = q @ k.transpose(-2, -1)", "TODO1",
           "applied after the softmax",
           edits=((DROP, "attn = self.attn_drop(scores.softmax(dim=-1) / math.sqrt(d_k))"),)),
    Mutant("no_out_proj", LAYER, "return self.out_proj(out)", "return out", "TODO1", "no out_proj"),
    Mutant("heads_mixed", LAYER, "out = out.transpose(1, 2).reshape(B, N, C)", "out = out.reshape(B, N, C)",
           "TODO1", "heads merged without transposing"),
    Mutant("split_without_transpose", LAYER, SPLIT, ".view(B, h, N, d_k)", "TODO1",
           "heads split without the transpose", times=3),
    Mutant("no_head_split", LAYER, SPLIT, ".view(B, N, 1, C).transpose(1, 2)", "TODO1", "heads do not mix", times=3),
    Mutant("dropout_before_softmax", LAYER, DROP, "attn = self.attn_drop(scores).softmax(dim=-1)", "TODO1",
           "dropout applied to the scores before the softmax"),
    Mutant("dropout_on_output", LAYER, DROP, "attn = scores.softmax(dim=-1)", "TODO1",
           "dropout applied to the attention output (attn @ V) instead of the weights",
           edits=(("out = attn @ v", "out = self.attn_drop(attn @ v)"),)),
    Mutant("dropout_active_in_eval", LAYER, DROP,
           "attn = nn.functional.dropout(scores.softmax(dim=-1), self.attn_drop.p)", "TODO1",
           "dropout (or other randomness) active in eval mode"),
    BodyMutant("builtin_via_aten", LAYER, BLOCK, """
        import torch
        B, N, C = x.shape
        q, k, v = (p(x).view(B, N, self.num_heads, self.d_k).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        p = self.attn_drop.p if self.training else 0.0
        out = torch.ops.aten._scaled_dot_product_attention_math(q, k, v, dropout_p=p)[0]
        return self.out_proj(out.transpose(1, 2).reshape(B, N, C))
        """, "TODO1", "built-in attention called at run time"),
    BodyMutant("builtin_via_getattr", LAYER, BLOCK, """
        B, N, C = x.shape
        q, k, v = (p(x).view(B, N, self.num_heads, self.d_k).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        attend = getattr(nn.functional, "scaled_" + "dot_product_attention")
        out = attend(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(B, N, C))
        """, "TODO1", "built-in attention called at run time"),
]

VARIANTS = [
    Variant("attention_einsum", ((LAYER, BLOCK, """
        import torch
        B, N, C = x.shape
        h, d = self.num_heads, self.d_k
        q = self.q_proj(x).reshape(B, N, h, d)
        k = self.k_proj(x).reshape(B, N, h, d)
        v = self.v_proj(x).reshape(B, N, h, d)
        weights = torch.einsum("bqhd,bkhd->bhqk", q, k).div(d ** 0.5).softmax(dim=-1)
        weights = self.attn_drop(weights)
        out = torch.einsum("bhqk,bkhd->bqhd", weights, v)
        return self.out_proj(out.reshape(B, N, C))
        """),), "einsum with (B, N, h, d) layout, no transposes", "TODO1"),
    Variant("attention_loop_over_heads", ((LAYER, BLOCK, """
        import torch
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        outs = []
        for i in range(self.num_heads):
            part = slice(i * self.d_k, (i + 1) * self.d_k)
            s = q[..., part] @ k[..., part].transpose(1, 2) / math.sqrt(self.d_k)
            a = self.attn_drop(torch.softmax(s, dim=-1))  # one (B, N, N) call per head
            outs.append(a @ v[..., part])
        return self.out_proj(torch.cat(outs, dim=-1))
        """),), "a Python loop over heads, self.attn_drop called once per head", "TODO1"),
    Variant("attention_bmm_flat_heads", ((LAYER, BLOCK, """
        import torch
        B, N, C = x.shape
        h, d_k = self.num_heads, self.d_k

        def split(t):  # (B, N, C) -> (B*h, N, d_k)
            return t.view(B, N, h, d_k).permute(0, 2, 1, 3).reshape(B * h, N, d_k)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        zeros = q.new_zeros(B * h, N, N)
        scores = torch.baddbmm(zeros, q, k.transpose(1, 2), beta=0.0, alpha=1.0 / math.sqrt(d_k))
        attn = nn.functional.dropout(torch.softmax(scores, dim=2), self.attn_drop.p, training=self.training)
        out = torch.bmm(attn, v).view(B, h, N, d_k).permute(0, 2, 1, 3).reshape(B, N, C)
        return self.out_proj(out)
        """),), "(B*h, N, d_k) with torch.baddbmm / torch.bmm; F.dropout with training=self.training",
        "TODO1"),
    Variant("attention_course_style", ((LAYER, BLOCK, """
        import torch
        batch_size, num_tokens, _ = x.size()
        query = self.q_proj(x).view(batch_size, num_tokens, self.num_heads, self.d_k).permute(0, 2, 1, 3)
        key = self.k_proj(x).view(batch_size, num_tokens, self.num_heads, self.d_k).permute(0, 2, 1, 3)
        value = self.v_proj(x).view(batch_size, num_tokens, self.num_heads, self.d_k).permute(0, 2, 1, 3)
        query = query / (self.d_k ** 0.5)  # the scale applied to q before the product
        attention_scores = torch.matmul(query, key.permute(0, 1, 3, 2))
        attention_probs = nn.Softmax(dim=-1)(attention_scores)
        attention_probs = self.attn_drop(attention_probs)
        context = torch.matmul(attention_probs, value).permute(0, 2, 1, 3).contiguous()
        context = context.view(batch_size, num_tokens, self.dim)
        return self.out_proj(context)
        """),), "course style: permute/contiguous, q scaled first, nn.Softmax", "TODO1"),
    Variant("attention_manual_softmax", ((LAYER, BLOCK, """
        import torch
        B, N, C = x.shape
        q = self.q_proj(x).view(B, N, self.num_heads, -1).transpose(1, 2)
        k = self.k_proj(x).view(B, N, self.num_heads, -1).transpose(1, 2)
        v = self.v_proj(x).view(B, N, self.num_heads, -1).transpose(1, 2)

        def scaled_dot_product_attention(q, k, v):  # the student's own helper: its name is not the built-in's
            s = q.matmul(k.transpose(2, 3)) * self.d_k ** -0.5
            e = torch.exp(s - s.max(dim=-1, keepdim=True).values)
            return self.attn_drop(e / e.sum(dim=-1, keepdim=True)).matmul(v)

        return self.out_proj(scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2))
        """),), "softmax written as exp / sum (max subtracted), in a helper named scaled_dot_product_attention",
        "TODO1"),
]
