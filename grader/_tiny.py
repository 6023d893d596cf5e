"""Tiny, randomly initialised models and data for the checks (CPU, milliseconds).

Built with the graded folder's own (given) config, VQGAN and checkpoint code. 64x64 images -> 16x16 = 256 tokens,
a codebook of K = 16 codes (mask id 16), a 2-layer transformer of width 32.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

K = 16
N = 256
VQGAN = {"image_channels": 3, "image_size": 64, "channels": [8, 16, 16], "num_res_blocks": 1,
         "attn_resolutions": [], "latent_dim": 8, "num_codebook_vectors": K, "beta": 0.25,
         "l2_normalized_codes": True}
TRANSFORMER = {"num_image_tokens": N, "num_codebook_vectors": K, "dim": 32, "n_layers": 2, "hidden_dim": 64,
               "num_heads": 4, "dropout": 0.1, "attn_dropout": 0.1}
TOP = {"num_image_tokens": N, "num_codebook_vectors": K, "choice_temperature": 4.5, "gamma_type": "cosine",
       "label_smoothing": 0.1}  # model_param's keys as config/MaskGit.yml spells them


def config(impl, label_smoothing: float = 0.1):
    """A MaskGitConfig built directly from the dataclasses (no files)."""
    c = impl.module("models.config")
    top = {("mask_func" if k == "gamma_type" else k): v for k, v in TOP.items()}  # the YAML key's name in code
    return c.MaskGitConfig(vqgan=c.VQGANConfig(**VQGAN), transformer=c.TransformerConfig(**TRANSFORMER),
                           vqgan_config_path="", vqgan_ckpt_path="", transformer_ckpt_path="",
                           **{**top, "label_smoothing": label_smoothing})


def maskgit(impl, seed: int = 0):
    """A random tiny MaskGit in eval mode; the mask-token logit is pushed down so that it never wins an argmax
    (the contract does not say whether confidences are normalised over K or K + 1 classes)."""
    torch.manual_seed(seed)
    model = impl.module("models.VQGAN_Transformer").MaskGit(config(impl)).eval()
    with torch.no_grad():
        model.transformer.bias[:, K] = -30.0
    return model


def tokens_and_mask(batch: int = 3, seed: int = 0, fractions=(0.2, 0.5, 0.8)):
    """Random token ids (B, N) in [0, K) and a random mask (B, N) with a different density per image."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randint(0, K, (batch, N), generator=g)
    mask = torch.rand(batch, N, generator=g) < torch.tensor(fractions[:batch])[:, None]
    return z, mask


def write_run_setup(impl, root: Path, n_images: int = 5) -> dict:
    """config/MaskGit.yml + config/VQGAN.yml, random checkpoints and a tiny test split under ``root``."""
    torch.manual_seed(0)
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "VQGAN.yml").write_text(yaml.safe_dump({"model_param": VQGAN}))
    mp = {"VQ_Configs": {"VQ_config_path": "config/VQGAN.yml", "VQ_CKPT_path": "vqgan.pt"},
          "Transformer_CKPT_path": "transformer.pt", **TOP, "Transformer_param": TRANSFORMER}
    cfg_path = root / "config" / "MaskGit.yml"
    cfg_path.write_text(yaml.safe_dump({"model_param": mp}))
    cfg = impl.module("models.config").load_maskgit_config(cfg_path)
    save = impl.module("models.checkpoint").save_model_checkpoint
    save(root / "vqgan.pt", "vqgan", cfg.vqgan, impl.module("models.VQGAN").VQGAN(cfg.vqgan))
    transformer = impl.module("models.Transformer.transformer").BidirectionalTransformer(cfg.transformer)
    with torch.no_grad():  # the mask token never wins: predicting it is test_step_never_predicts_mask_token's
        transformer.bias[:, K] = -30.0
    save(root / "transformer.pt", "transformer", cfg.transformer, transformer)

    rng = np.random.default_rng(1)
    images, masks = root / "masked_image", root / "mask64"
    images.mkdir()
    masks.mkdir()
    for i in range(n_images):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(images / f"image_{i:03d}.png")
        m = np.full((64, 64), 255, np.uint8)
        m[8 + 4 * i: 28 + 4 * i, 10:30] = 0  # a different hole per image
        Image.fromarray(m, mode="L").save(masks / f"mask_{i:03d}.png")
    return {"config": cfg_path, "images": images, "masks": masks}
