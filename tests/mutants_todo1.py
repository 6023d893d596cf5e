"""TODO1: realistic bugs (MUTANTS) the grader must catch in TODO1 only, and correct code written differently
(VARIANTS) that must score 100. See mutation_kit.py for the pieces."""
from __future__ import annotations

from mutation_kit import INPAINT, LAYER, MODEL, TRAIN, BodyMutant, Mutant, Variant  # noqa: F401

MUTANTS = [
    Mutant("no_sqrt_dk_scale", LAYER, "scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d_k))",
           "scores = q @ k.transpose(-2, -1)", "TODO1", "no 1/sqrt(d_k) scale"),
    Mutant("causal_mask", LAYER, "attn = self.attn_drop(scores.softmax(dim=-1))",
           "attn = self.attn_drop(scores.masked_fill(scores.new_ones(N, N).triu(1).bool(), float('-inf'))"
           ".softmax(dim=-1))", "TODO1", "causal mask"),
    Mutant("softmax_wrong_axis", LAYER, "scores.softmax(dim=-1)", "scores.softmax(dim=-2)", "TODO1",
           "softmax over the queries"),
    Mutant("heads_mixed", LAYER, "out = out.transpose(1, 2).reshape(B, N, C)", "out = out.reshape(B, N, C)",
           "TODO1", "heads merged without transposing"),
    Mutant("no_head_split", LAYER, ".view(B, N, h, d_k).transpose(1, 2)", ".view(B, N, 1, C).transpose(1, 2)", "TODO1",
           "heads do not mix", times=3),
]

VARIANTS: list[Variant] = []
