"""Building blocks of the bidirectional transformer (the course's ``layers.py``).

TODO1 is ``MultiHeadAttention.forward``: multi-head self-attention written by hand. ``MLP``,
``TokenPredictor`` and ``Encoder`` are given.
"""
import math

import torch.nn as nn


class MultiHeadAttention(nn.Module):
    """Bidirectional multi-head self-attention (Vaswani et al., 2017), no causal mask.

    MaskGIT predicts every masked token from *all* other tokens, so each position attends to every
    position, before and after it.

    Given (do not rename, the grader reads them):
      - ``q_proj``, ``k_proj``, ``v_proj``: ``nn.Linear(dim, dim)`` projections to queries, keys, values.
        Output features ``h * d_k : (h + 1) * d_k`` belong to head ``h``.
      - ``out_proj``: ``nn.Linear(dim, dim)`` merging the heads back.
      - ``attn_drop``: ``nn.Dropout`` applied to the attention weights (active in train mode only).
      - ``num_heads``; ``d_k = dim // num_heads``: 768 / 16 = 48 in the course's (and config/MaskGit_gpu.yml)
        config, 256 / 8 = 32 in the CPU config config/MaskGit.yml.
    """

    def __init__(self, dim=768, num_heads=16, attn_drop=0.1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.d_k = dim // num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(attn_drop)

    def forward(self, x):
        """Self-attention over all tokens.

        Inputs:
          - x: float tensor of shape (B, N, dim): one embedding per token.
        Returns:
          - float tensor of shape (B, N, dim):
            ``out_proj(concat_h softmax(Q_h K_h^T / sqrt(d_k)) V_h)``, softmax over the keys (last axis),
            dropout (``self.attn_drop``) on the attention weights.
        Not allowed here: ``nn.MultiheadAttention``, ``F.scaled_dot_product_attention``,
        ``F.multi_head_attention_forward``.
        """
        # ============================== TODO1 ==============================
        # multi-head attention: split heads, scaled dot product, softmax, merge
        # (contract: see this function's docstring)
        # ===================================================================
        raise NotImplementedError("TODO1: multi-head attention: split heads, scaled dot product, softmax, merge")


class MLP(nn.Sequential):
    """Position-wise feed-forward network: dim -> hidden_dim -> dim."""

    def __init__(self, dim=768, hidden_dim=3072, drop_rate=0.1):
        super().__init__(
            nn.Linear(dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, dim),
            nn.Dropout(p=drop_rate),
        )


class TokenPredictor(nn.Sequential):
    """Maps the last hidden states to the embedding space, where they are compared to every token embedding."""

    def __init__(self, dim=768):
        super().__init__(
            nn.Linear(in_features=dim, out_features=dim),
            nn.GELU(),
            nn.LayerNorm(dim, eps=1e-12),
        )


class Encoder(nn.Module):
    """One post-LN transformer block (as in BERT and the course): x = LN(x + Attn(x)); x = LN(x + MLP(x))."""

    def __init__(self, dim=768, hidden_dim=1536, num_heads=16, drop_rate=0.1, attn_drop=0.1):
        super().__init__()
        self.Attention = MultiHeadAttention(dim, num_heads=num_heads, attn_drop=attn_drop)
        self.LayerNorm1 = nn.LayerNorm(dim, eps=1e-12)
        self.LayerNorm2 = nn.LayerNorm(dim, eps=1e-12)
        self.MLP = MLP(dim, hidden_dim, drop_rate)
        self.dropout = nn.Dropout(p=drop_rate)

    def forward(self, x):
        attn = self.Attention(x)
        x = self.LayerNorm1(x + self.dropout(attn))
        return self.LayerNorm2(x + self.MLP(x))

