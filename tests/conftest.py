"""Shared fixtures: the reference implementation (solutions/, activated through the kit's lab loader), the kit's
scripts loaded by path, and tiny, fast model configs and data.

Test modules import the reference by its course names (``from models.VQGAN_Transformer import MaskGit``): this
file activates ``solutions/`` before pytest imports them.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from maskgit_kit import labtree

REPO = Path(__file__).resolve().parent.parent
REFERENCE = labtree.activate(REPO / "solutions")
save_model_checkpoint = REFERENCE.module("models.checkpoint").save_model_checkpoint
load_maskgit_config = REFERENCE.module("models.config").load_maskgit_config


def pytest_configure(config):
    for todo in ("todo1", "todo2", "todo3", "todo4", "todo5"):  # the mutation suite's parameters, by TODO (-k todo4)
        config.addinivalue_line("markers", f"{todo}: a mutant or variant of {todo.upper()}")


def load_script(path: Path):
    """Import a script of the kit (``tools/*.py``, ``bench/*.py``) by its path, under its file name, once.

    Scripts find their sibling scripts as Python does when they run (their own folder first), so a script
    whose siblings it imports is loaded after them (``load_script(eval_vqgan)`` before ``train_vqgan``)."""
    path = Path(path)
    name = path.stem
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def tool(name: str):
    """``tools/NAME.py`` as a module."""
    return load_script(REPO / "tools" / f"{name}.py")

TINY_VQGAN = {"image_channels": 3, "image_size": 64, "channels": [8, 16, 16], "num_res_blocks": 1,
              "attn_resolutions": [], "latent_dim": 8, "num_codebook_vectors": 16, "beta": 0.25,
              "l2_normalized_codes": True}
TINY_TRANSFORMER = {"num_image_tokens": 256, "num_codebook_vectors": 16, "dim": 32, "n_layers": 2,
                    "hidden_dim": 64, "num_heads": 4, "dropout": 0.1, "attn_dropout": 0.1}


def write_tiny_config(root: Path, transformer_ckpt: str = "transformer_checkpoints/best.pt") -> Path:
    """config/MaskGit.yml + config/VQGAN.yml for a tiny model under ``root`` (paths relative to root)."""
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "VQGAN.yml").write_text(yaml.safe_dump({"model_param": TINY_VQGAN}))
    maskgit = {"model_param": {
        "VQ_Configs": {"VQ_config_path": "config/VQGAN.yml", "VQ_CKPT_path": "vqgan.pt"},
        "Transformer_CKPT_path": transformer_ckpt,
        "num_image_tokens": 256, "num_codebook_vectors": 16, "choice_temperature": 4.5,
        "gamma_type": "cosine", "label_smoothing": 0.1, "Transformer_param": TINY_TRANSFORMER}}
    path = root / "config" / "MaskGit.yml"
    path.write_text(yaml.safe_dump(maskgit))
    return path


def write_images(folder: Path, n: int, seed: int, prefix: str = "", digits: int = 5) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        p = folder / f"{prefix}{i:0{digits}d}.png"
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


def write_test_split(root: Path, n: int = 5, seed: int = 1) -> tuple[Path, Path]:
    """masked_image/image_{i:03d}.png + mask64/mask_{i:03d}.png with a square hole each."""
    imgs = root / "masked_image"
    masks = root / "mask64"
    write_images(imgs, n, seed, prefix="image_", digits=3)
    masks.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        m = np.full((64, 64), 255, np.uint8)
        m[8 + 4 * i: 28 + 4 * i, 10:30] = 0
        Image.fromarray(m, mode="L").save(masks / f"mask_{i:03d}.png")
    return imgs, masks


@pytest.fixture
def tiny_setup(tmp_path):
    """A tiny runnable MaskGIT: config, random VQGAN + transformer checkpoints, train/val/test data."""
    torch.manual_seed(0)
    cfg_path = write_tiny_config(tmp_path, transformer_ckpt="transformer.pt")
    cfg = load_maskgit_config(cfg_path)
    from models.Transformer.transformer import BidirectionalTransformer
    from models.VQGAN import VQGAN
    save_model_checkpoint(tmp_path / "vqgan.pt", "vqgan", cfg.vqgan, VQGAN(cfg.vqgan), half=True)
    save_model_checkpoint(tmp_path / "transformer.pt", "transformer", cfg.transformer,
                          BidirectionalTransformer(cfg.transformer))
    write_images(tmp_path / "data" / "train", 8, seed=2)
    write_images(tmp_path / "data" / "val", 4, seed=3)
    write_test_split(tmp_path / "data")
    return {"root": tmp_path, "config": cfg_path, "cfg": cfg, "data": tmp_path / "data"}


@pytest.fixture
def tiny_model(tiny_setup):
    from models.loading import load_maskgit
    torch.manual_seed(0)
    return load_maskgit(tiny_setup["cfg"], "cpu", transformer_ckpt=tiny_setup["root"] / "transformer.pt")
