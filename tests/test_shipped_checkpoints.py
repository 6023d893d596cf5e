"""The shipped checkpoints/: small, loadable with weights_only=True, fitting the solutions' config, and good.

The quality checks use a few committed test images, so a broken or mismatched checkpoint fails here rather
than in a student's first inpainting run.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from experiments import to_uint8
from skimage.metrics import peak_signal_noise_ratio

from conftest import REPO
from decoding import tokenize_masked
from inpainting import iterative_decoding
from models.checkpoint import CheckpointError, check_config, read_checkpoint
from models.config import load_maskgit_config
from models.loading import load_maskgit
from models.sampling import image_generators
from utils import LoadTestData

CKPT = REPO / "checkpoints"
DATA = REPO / "data" / "fashion64"
CFG = load_maskgit_config(REPO / "solutions" / "config" / "MaskGit.yml")


@pytest.mark.parametrize("name,kind,config", [("vqgan.pt", "vqgan", CFG.vqgan),
                                              ("transformer.pt", "transformer", CFG.transformer)])
def test_checkpoint_is_small_safe_and_fits_the_config(name, kind, config):
    path = CKPT / name
    assert path.stat().st_size <= 30 * 2**20
    ckpt = read_checkpoint(path, kind)  # torch.load(..., weights_only=True) inside
    check_config(path, ckpt, config)
    assert all(v.dtype == torch.float16 for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_config_mismatch_is_named(tmp_path):
    ckpt = read_checkpoint(CKPT / "vqgan.pt", "vqgan")
    other = dataclasses.replace(CFG.vqgan, num_codebook_vectors=1024)
    with pytest.raises(CheckpointError, match="num_codebook_vectors=512"):
        check_config(CKPT / "vqgan.pt", ckpt, other)


@pytest.fixture(scope="module")
def shipped():
    torch.manual_seed(0)
    model = load_maskgit(CFG, "cpu", transformer_ckpt=CKPT / "transformer.pt")
    data = LoadTestData(DATA / "masked_image", DATA / "mask64")
    items = [data[i] for i in range(16)]
    images = torch.stack([it[0] for it in items])
    masks = torch.stack([it[1] for it in items])
    gt = LoadTestData(DATA / "ground_truth", DATA / "mask64")
    truth = torch.stack([gt[i][0] for i in range(16)])
    return model, images, masks, [it[2] for it in items], truth


@torch.no_grad()
def test_vqgan_reconstructs_the_test_images(shipped):
    model, _, _, _, truth = shipped
    _, ids = model.encode_to_z(truth)
    rec = model.decode_to_image(ids)
    pairs = zip(to_uint8(truth), to_uint8(rec), strict=True)
    psnr = np.mean([peak_signal_noise_ratio(a, b, data_range=255) for a, b in pairs])
    assert psnr > 29.0  # checkpoints/README.md: 29.98 dB over the 747 test images
    assert len(ids.unique()) > 200  # no codebook collapse


@torch.no_grad()
def test_maskgit_fills_holes_better_than_gray(shipped):
    model, images, masks, indices, truth = shipped
    z, mask = tokenize_masked(model, images, masks)
    out, _ = iterative_decoding(model, z, mask, 8, generators=image_generators(indices, 0),
                                choice_temperature=CFG.choice_temperature)
    pred = model.decode_to_image(out)
    hole = masks < 0.5                                         # (B, 1, H, W), True in the hole
    err_pred = ((pred - truth).abs() * hole).sum() / hole.sum() / 3
    err_gray = ((images - truth).abs() * hole).sum() / hole.sum() / 3  # the masked input is gray in the hole
    assert err_pred < 0.5 * err_gray
    assert not torch.equal(out, z)                             # something was inpainted


def test_same_seed_same_images(shipped):
    model, images, masks, indices, _ = shipped
    z, mask = tokenize_masked(model, images[:4], masks[:4])
    runs = [iterative_decoding(model, z, mask, 8, generators=image_generators(indices[:4], 0),
                               choice_temperature=CFG.choice_temperature, sample=True)[0] for _ in range(2)]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(CheckpointError, match=str(tmp_path / "nope.pt")):
        read_checkpoint(Path(tmp_path / "nope.pt"), "vqgan")


def test_gpu_config_runs_over_the_shipped_vqgan():
    """config/MaskGit_gpu.yml: the course-sized transformer over checkpoints/vqgan.pt (which fits it), trained into
    the folder its comments name."""
    gpu = load_maskgit_config(REPO / "solutions" / "config" / "MaskGit_gpu.yml")
    assert Path(gpu.vqgan_ckpt_path) == CKPT / "vqgan.pt"
    check_config(CKPT / "vqgan.pt", read_checkpoint(CKPT / "vqgan.pt", "vqgan"), gpu.vqgan)
    t = gpu.transformer
    assert (t.dim, t.n_layers, t.hidden_dim, t.num_heads) == (768, 15, 1536, 16)
    text = (REPO / "solutions" / "config" / "MaskGit_gpu.yml").read_text()
    assert "--checkpoint-path transformer_checkpoints/gpu" in text
    assert Path(gpu.transformer_ckpt_path) == REPO / "solutions" / "transformer_checkpoints" / "gpu" / "best.pt"
