"""The bidirectional transformer of MaskGIT (given code): token ids in, logits over the codebook out."""
import torch
import torch.nn as nn

from models.config import TransformerConfig

from .modules.layer import Encoder, TokenPredictor


class BidirectionalTransformer(nn.Module):
    """BERT-style encoder over the flattened 16x16 token grid.

    Inputs: token ids of shape (B, N), int64, values in [0, K] where K = num_codebook_vectors is the
    mask token. Output: logits of shape (B, N, K + 1). The output layer is tied to the token embedding
    (``TokenPredictor(x) @ tok_emb.weight.T + bias``), as in the course and in MaskGIT.

    Class-conditional (``cfg.num_classes = C > 0``, the TODO4 extension): the sequence is N + 1 tokens long (a class
    token after the image tokens) and the vocabulary K + 1 + C + 1 ids (codes, mask, C classes, "no class"), so the
    input is (B, N + 1) and the output (B, N + 1, K + C + 2); ``ClassConditionalTransformer`` wraps it.
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.num_image_tokens = cfg.num_image_tokens
        extra = cfg.num_classes + 1 if cfg.num_classes else 0  # the class ids and "no class"
        self.seq_len = cfg.num_image_tokens + (1 if cfg.num_classes else 0)
        self.vocab_size = cfg.num_codebook_vectors + 1 + extra  # +1: the mask token
        self.tok_emb = nn.Embedding(self.vocab_size, cfg.dim)
        self.pos_emb = nn.init.trunc_normal_(nn.Parameter(torch.zeros(self.seq_len, cfg.dim)), 0.0, 0.02)
        self.blocks = nn.Sequential(*[
            Encoder(cfg.dim, cfg.hidden_dim, cfg.num_heads, cfg.dropout, cfg.attn_dropout)
            for _ in range(cfg.n_layers)
        ])
        self.Token_Prediction = TokenPredictor(cfg.dim)
        self.LN = nn.LayerNorm(cfg.dim, eps=1e-12)
        self.drop = nn.Dropout(p=cfg.dropout)
        self.bias = nn.Parameter(torch.zeros(self.seq_len, self.vocab_size))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    def forward(self, x):
        B, N = x.shape
        if N != self.seq_len:
            what = " (the image tokens and the class token)" if self.seq_len != self.num_image_tokens else ""
            raise ValueError(f"expected {self.seq_len} tokens per image{what}, got {N}")
        h = self.drop(self.LN(self.tok_emb(x) + self.pos_emb))  # (B, N, dim)
        h = self.blocks(h)
        h = self.Token_Prediction(h)
        return h @ self.tok_emb.weight.T + self.bias  # (B, N, K + 1)
