"""The VQGAN image tokenizer (given code): ``VQGAN`` for the model, ``load_vqgan`` for a checkpoint."""
from .codebook import Codebook, CodebookUsage, codebook_usage
from .vqgan import VQGAN, load_vqgan

__all__ = ["VQGAN", "Codebook", "CodebookUsage", "codebook_usage", "load_vqgan"]
