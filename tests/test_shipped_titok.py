"""The shipped TiTok track (issue 17): the TiTok tokenizers and the MaskGIT transformers on their 1D tokens are
small, safe to load, fit their configs and their teacher, and reproduce the README's reconstruction table."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from conftest import REPO, load_script
from maskgit_kit.scoring.metrics import psnr
from maskgit_kit.scoring.validation import benchmark_from_ground_truth, load_images
from models.checkpoint import check_config, read_checkpoint, tokenizer_identity
from models.config import load_maskgit_config
from models.loading import load_maskgit
from models.TiTok import load_titok_config
from models.TiTok.tokenizer import load_titok_tokenizer
from models.VQGAN import load_vqgan

CKPT = REPO / "checkpoints"
CONFIG = REPO / "solutions" / "config"
TABLE = REPO / "docs" / "results" / "reconstruction.csv"
TITOKS = [("titok_k32.pt", "TiTok_k32.yml", 32), ("titok_k64.pt", "TiTok_k64.yml", 64)]


@pytest.mark.parametrize("name,config,k", TITOKS)
def test_titok_is_small_safe_and_taught_by_the_shipped_vqgan(name, config, k):
    path = CKPT / name
    assert path.stat().st_size <= 30 * 2**20
    ckpt = read_checkpoint(path, "titok")  # weights_only=True inside
    cfg = load_titok_config(CONFIG / config)
    check_config(path, ckpt, cfg.titok)
    assert ckpt["config"]["num_latent_tokens"] == k
    assert all(v.dtype == torch.float16 for v in ckpt["state_dict"].values() if v.is_floating_point())
    shipped = tokenizer_identity(CKPT / "vqgan.pt")
    assert ckpt["teacher"]["codes_sha256"] == shipped["codes_sha256"]


@pytest.mark.parametrize("config,classes", [("MaskGit_titok32.yml", 0), ("MaskGit_titok32_class.yml", 10)])
def test_1d_transformers_load_on_their_tokenizer(config, classes):
    cfg = load_maskgit_config(CONFIG / config)
    assert (CKPT / cfg.transformer_ckpt_path).stat().st_size <= 30 * 2**20
    model = load_maskgit(cfg, transformer_ckpt=cfg.transformer_ckpt_path)  # checks the recorded tokenizer
    assert model.num_classes == classes and model.num_image_tokens == 32


def mean_psnr(images, rec) -> float:
    return float(np.mean([psnr(a, b) for a, b in zip(images, rec, strict=True)]))


def _table() -> dict:
    with TABLE.open(newline="") as f:
        return {int(r["tokens"]): r for r in csv.DictReader(f)}


def test_reconstruction_table_reproduces():
    """Proxy-code accuracy and PSNR of every shipped tokenizer on the 747 test images, as the README's table says
    (rFID / KID and the times are reconstruction.py's; the time depends on the machine)."""
    script = load_script(REPO / "solutions" / "reconstruction.py")
    gt = REPO / "data" / "fashion64" / "ground_truth"
    images = load_images(gt, benchmark_from_ground_truth(gt), "ground truth", trusted=True)
    table = _table()
    assert len(images) == int(table[256]["n"]) == 747
    vqgan_cfg = load_titok_config(CONFIG / "TiTok_k32.yml").teacher
    vqgan = script.VQGANTokenizer(load_vqgan(vqgan_cfg, CKPT / "vqgan.pt"))
    rec, acc, _, _ = script.reconstruct(vqgan, images, None, 64, "cpu")
    assert mean_psnr(images, rec) == pytest.approx(float(table[256]["psnr"]), abs=0.01)
    with torch.inference_mode():
        teacher = torch.cat([vqgan.encode(torch.from_numpy(images[s:s + 64]).permute(0, 3, 1, 2).float()
                                          .div(127.5).sub(1)) for s in range(0, len(images), 64)])
    for name, config, k in TITOKS:
        tok, _ = load_titok_tokenizer(load_titok_config(CONFIG / config), CKPT / name)
        rec, acc, _, _ = script.reconstruct(script.TiTok1D(tok), images, teacher, 64, "cpu")
        assert acc == pytest.approx(float(table[k]["proxy_acc"]), abs=2e-4), name
        assert mean_psnr(images, rec) == pytest.approx(float(table[k]["psnr"]), abs=0.01), name
