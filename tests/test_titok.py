"""TiTok (issue 17): the model's TODO5 parts, the quantiser, the training script and its bad-input errors."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

from conftest import REPO, TINY_VQGAN, load_script, save_model_checkpoint, write_images
from models.checkpoint import CheckpointError
from models.config import ConfigError
from models.TiTok import TiTok, TiTokConfig, TokenQuantizer, load_titok_config, usage_stats
from models.VQGAN import VQGAN

TINY = {"image_size": 64, "patch_size": 4, "num_latent_tokens": 8, "max_latent_tokens": 16, "width": 32,
        "encoder_layers": 1, "decoder_layers": 1, "num_heads": 4, "mlp_dim": 64, "dropout": 0.0,
        "codebook_size": 32, "code_dim": 8, "beta": 0.25, "l2_normalized_codes": True, "teacher_codes": 16,
        "teacher_grid": 16}


def write_titok_config(root, **changes):
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "VQGAN.yml").write_text(yaml.safe_dump({"model_param": TINY_VQGAN}))
    data = {"model_param": {"teacher": {"VQ_config_path": "config/VQGAN.yml", "VQ_CKPT_path": "vqgan.pt"},
                            "TiTok_param": {**TINY, **changes}}}
    path = root / "config" / "TiTok_tiny.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def tiny(tmp_path):
    torch.manual_seed(0)
    path = write_titok_config(tmp_path)
    cfg = load_titok_config(path)
    save_model_checkpoint(tmp_path / "vqgan.pt", "vqgan", cfg.teacher, VQGAN(cfg.teacher), half=True)
    write_images(tmp_path / "data" / "train", 8, seed=2)
    write_images(tmp_path / "data" / "val", 4, seed=3)
    return {"root": tmp_path, "config": path, "cfg": cfg}


def test_shapes_and_layout():
    torch.manual_seed(0)
    model = TiTok(TiTokConfig(**TINY)).eval()
    x, codes = torch.rand(2, 3, 64, 64) * 2 - 1, torch.randint(0, 16, (2, 16, 16))
    out = model(x, codes)
    assert out.logits.shape == (2, 16, 16, 16) and out.ids.shape == (2, 8) and out.ids.dtype == torch.int64
    grid_out = model.decode(model.encode(x)[0])
    assert grid_out.shape == (2, 256, 16)
    torch.testing.assert_close(out.logits[1, :, 3, 5], grid_out[1, 3 * 16 + 5], rtol=0, atol=0)
    assert torch.equal(model.decode_codes(model.encode(x)[0]), grid_out.argmax(-1).reshape(2, 16, 16))
    assert torch.equal(model.decode_ids(out.ids), model.decode_codes(model.encode(x)[0]))


def test_latents_are_the_latent_outputs():
    model = TiTok(TiTokConfig(**TINY))
    model.encoder_blocks = nn.Identity()
    patches = torch.randn(2, 256, 32)
    torch.testing.assert_close(model.encode_latents(patches),
                               (model.latent_tokens + model.latent_pos).expand(2, -1, -1), rtol=0, atol=0)
    model.encoder_blocks = nn.Sequential(nn.Linear(32, 32))  # per-token: the latent outputs ignore the patches
    a, b = model.encode_latents(patches), model.encode_latents(torch.randn(2, 256, 32))
    torch.testing.assert_close(a, b)


def test_decoder_input():
    model = TiTok(TiTokConfig(**TINY))
    latents = torch.randn(3, 8, 32)
    seq = model.decoder_input(latents)
    assert seq.shape == (3, 256 + 8, 32)
    torch.testing.assert_close(seq[2, :256], model.mask_token + model.grid_pos, rtol=0, atol=0)
    torch.testing.assert_close(seq[:, 256:], latents + model.decoder_latent_pos, rtol=0, atol=0)


def test_proxy_code_loss_axis():
    model = TiTok(TiTokConfig(**TINY))
    grid_out, codes = torch.randn(2, 256, 16), torch.randint(0, 16, (2, 16, 16))
    loss, logits = model.proxy_code_loss(grid_out, codes)
    torch.testing.assert_close(loss, F.cross_entropy(grid_out.reshape(-1, 16), codes.reshape(-1)))
    assert logits.shape == (2, 16, 16, 16)


def test_straight_through_and_usage():
    q = TokenQuantizer(8, 4, l2_normalized=True).train()
    z = torch.randn(2, 5, 4, requires_grad=True)
    z_q, ids, _ = q(z)
    torch.testing.assert_close(z_q.detach(), q.codes()[ids], rtol=0, atol=0)
    g = torch.randn_like(z_q)
    (z_q * g).sum().backward()
    zn = z.detach().clone().requires_grad_(True)
    (F.normalize(zn, dim=-1) * g).sum().backward()
    torch.testing.assert_close(z.grad, zn.grad)
    assert q.usage.sum() == 10 and torch.equal(q.usage, torch.bincount(ids.flatten(), minlength=8).float())
    stats = usage_stats(torch.tensor([0, 0, 1, 1]), 8)
    assert stats.distinct == 2 and stats.perplexity == pytest.approx(2.0)


def test_dead_code_restart():
    torch.manual_seed(0)
    q = TokenQuantizer(8, 4, l2_normalized=False).train()
    q.usage[:] = 1
    q.usage[[2, 5]] = 0
    before = q.embedding.weight.detach().clone()
    z = torch.randn(3, 4, 4)
    assert q.restart_dead_codes(z) == 2
    w = q.embedding.weight.detach()
    assert torch.equal(w[[0, 1, 3, 4, 6, 7]], before[[0, 1, 3, 4, 6, 7]])
    rows = z.reshape(-1, 4)
    for i in (2, 5):
        assert (rows == w[i]).all(1).any()
    assert q.usage.sum() == 0


def run_training(tiny, folder, *extra):
    script = load_script(REPO / "solutions" / "training_titok.py")
    root = tiny["root"]
    args = script.titok_parser().parse_args([
        "--config", str(tiny["config"]), "--train-d-path", str(root / "data" / "train"),
        "--val-d-path", str(root / "data" / "val"), "--token-cache-dir", str(root / "cache"),
        "--checkpoint-path", str(root / folder), "--batch-size", "4", "--warmup-steps", "1", "--device", "cpu",
        "--learning-rate", "3e-3", "--restart-every", "3", *extra])
    return script.train(args)


def test_training_lowers_the_loss_and_resume_is_exact(tiny, monkeypatch):
    rows = run_training(tiny, "full", "--epochs", "4")
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    script = load_script(REPO / "solutions" / "training_titok.py")
    original = script.TrainTiTok.train_one_epoch

    def stop_at_3(self, loader, epoch=0):  # the run is interrupted after epoch 2
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, loader, epoch)

    monkeypatch.setattr(script.TrainTiTok, "train_one_epoch", stop_at_3)
    with pytest.raises(KeyboardInterrupt):
        run_training(tiny, "split", "--epochs", "4")
    monkeypatch.setattr(script.TrainTiTok, "train_one_epoch", original)
    resumed = run_training(tiny, "split", "--epochs", "4", "--resume")
    assert [str(r["val_loss"]) for r in resumed] == [str(r["val_loss"]) for r in rows]
    a = torch.load(tiny["root"] / "full" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tiny["root"] / "split" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    best = torch.load(tiny["root"] / "full" / "best.pt", weights_only=True)
    assert best["kind"] == "titok" and best["teacher"]["path"].endswith("vqgan.pt")


def test_k_above_max(tmp_path):
    with pytest.raises(ConfigError, match="num_latent_tokens.*max_latent_tokens"):
        load_titok_config(write_titok_config(tmp_path, num_latent_tokens=17))
    with pytest.raises(ConfigError, match="max_latent_tokens"):
        load_titok_config(write_titok_config(tmp_path), num_latent_tokens=32)


def test_teacher_config_mismatch(tmp_path):
    with pytest.raises(ConfigError, match="teacher_codes"):
        load_titok_config(write_titok_config(tmp_path, teacher_codes=32))


def test_teacher_checkpoint_mismatch(tiny):
    other = dataclasses.replace(tiny["cfg"].teacher, num_codebook_vectors=32)
    bad = tiny["root"] / "other.pt"
    save_model_checkpoint(bad, "vqgan", other, VQGAN(other), half=True)
    from models.TiTok.teacher import check_teacher_checkpoint
    with pytest.raises(CheckpointError, match="other.pt.*num_codebook_vectors"):
        check_teacher_checkpoint(bad, tiny["cfg"].titok)
    grid = dataclasses.replace(tiny["cfg"].teacher, channels=[8, 16, 16, 16])
    save_model_checkpoint(bad, "vqgan", grid, VQGAN(grid), half=True)
    with pytest.raises(CheckpointError, match="8x8 grid"):
        check_teacher_checkpoint(bad, tiny["cfg"].titok)


def test_token_cache_of_another_teacher(tiny):
    run_training(tiny, "first", "--epochs", "1")
    cache = sorted((tiny["root"] / "cache").glob("train-*.pt"))[0]
    entry = torch.load(cache, weights_only=True)
    entry["tokenizer"] = {**entry["tokenizer"], "codes_sha256": "0" * 64, "path": "elsewhere/vqgan.pt"}
    torch.save(entry, cache)
    with pytest.raises(CheckpointError, match=f"{cache.name}.*another teacher"):
        run_training(tiny, "second", "--epochs", "1")
