"""The VQGAN tokenizer, its trainer and its evaluation script, on tiny configs and generated PNGs (CPU, seconds)."""
from __future__ import annotations

import csv
import dataclasses

import pytest
import torch

from conftest import TINY_VQGAN, tool, write_images
from models.checkpoint import CheckpointError, save_model_checkpoint
from models.config import VQGANConfig
from models.VQGAN import VQGAN, Codebook, codebook_usage, load_vqgan

eval_vqgan = tool("eval_vqgan")
vqgan_training = tool("vqgan_training")
train_vqgan = tool("train_vqgan")


def tiny_cfg(**changes) -> VQGANConfig:
    return dataclasses.replace(VQGANConfig(**TINY_VQGAN), **changes)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return VQGAN(tiny_cfg()).eval()


def test_encode_decode_shapes_dtypes_ranges(model):
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    z_q, indices, q_loss = model.encode(x)
    assert z_q.shape == (2, 8, 16, 16) and z_q.dtype == torch.float32
    assert indices.shape == (2, 16, 16) and indices.dtype == torch.int64
    assert 0 <= int(indices.min()) and int(indices.max()) < 16
    assert q_loss.dim() == 0 and float(q_loss.detach()) >= 0
    x_rec = model.decode(z_q)
    assert x_rec.shape == x.shape and x_rec.dtype == torch.float32 and torch.isfinite(x_rec).all()
    rec, ids, _ = model(x)
    torch.testing.assert_close(rec, x_rec)
    assert torch.equal(ids, indices)


def test_indices_to_latent_equals_encode(model):
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    z_q, indices, _ = model.encode(x)
    assert torch.equal(model.indices_to_latent(indices), z_q)  # exact: the straight-through adds z - z = 0
    assert torch.equal(model.indices_to_latent(indices.reshape(3, -1)), z_q)
    torch.testing.assert_close(model.decode_indices(indices.reshape(3, -1)), model.decode(z_q))


def test_codes_are_nearest_unit_vectors(model):
    """With l2-normalised codes every position's code is the one of highest cosine similarity."""
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    z = model.encoder(x)[0].reshape(8, -1).T                       # (256, D)
    codes = model.codebook.embedding.weight
    cos = torch.nn.functional.normalize(z, dim=1) @ torch.nn.functional.normalize(codes, dim=1).T
    _, indices, _ = model.encode(x)
    assert torch.equal(indices.reshape(-1), cos.argmax(dim=1))
    torch.testing.assert_close(model.indices_to_latent(indices).norm(dim=1), torch.ones(1, 16, 16))


def test_straight_through_gradient_reaches_encoder_and_codebook(model):
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    x_rec, _, q_loss = model.train()(x)
    x_rec.abs().mean().backward(retain_graph=True)
    enc_grad = model.encoder.model[0].weight.grad
    assert enc_grad is not None and enc_grad.abs().sum() > 0, "decoder loss must reach the encoder"
    assert model.codebook.embedding.weight.grad is None, "the reconstruction loss must not move the codes"
    q_loss.backward()
    assert model.codebook.embedding.weight.grad.abs().sum() > 0, "the codebook loss must move the codes"


def test_unnormalised_codebook_uses_euclidean_nearest():
    cb = Codebook(4, 2, l2_normalized=False)
    cb.embedding.weight.data = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    z = torch.tensor([[0.9, 0.1], [0.1, 0.2], [4.0, 4.0]]).T.reshape(1, 2, 1, 3)  # (B, D, h, w)
    z_q, indices, q_loss = cb(z)
    assert indices.tolist() == [[[1, 0, 3]]]
    expected = torch.tensor([[1.0, 0.0], [0.0, 0.0], [5.0, 5.0]]).T.reshape(1, 2, 1, 3)
    assert torch.equal(z_q, expected)
    # codebook + 0.25 x commitment = 1.25 x mean squared distance to the chosen codes
    torch.testing.assert_close(q_loss, 1.25 * ((z - expected) ** 2).mean())


def test_dead_code_restart_revives_unused_codes():
    torch.manual_seed(0)
    cb = Codebook(8, 4, l2_normalized=True).train()
    restarter = vqgan_training.DeadCodeRestarter(cb)
    z = torch.randn(2, 4, 4, 4)
    z[:, 0] = z[:, 0].abs() + 3.0                                       # every latent points along +e0
    cb.embedding.weight.data[:] = torch.tensor([-1.0, 0, 0, 0])         # codes 1..7 point away: never picked
    cb.embedding.weight.data[0] = torch.tensor([1.0, 0, 0, 0])
    for _ in range(3):
        _, indices, _ = cb(z)
    assert codebook_usage(indices, 8).distinct == 1
    cb.eval()
    cb(z)                                                               # eval forwards are not counted
    cb.train()
    assert restarter.restart(min_unused_steps=5) == 0                  # unused for 3 steps only
    assert restarter.restart(min_unused_steps=4) == 0
    assert restarter.restart(min_unused_steps=3) == 7
    latents = torch.nn.functional.normalize(z.permute(0, 2, 3, 1).reshape(-1, 4), dim=1)
    for code in cb.embedding.weight[1:]:                                # each now an encoder output of the batch
        assert torch.isclose(latents, code).all(dim=1).any()
    _, indices, _ = cb(z)
    assert codebook_usage(indices, 8).distinct == 8


def test_codebook_usage_statistics():
    usage = codebook_usage(torch.tensor([0, 0, 1, 1]), 8)
    assert usage.distinct == 2
    assert usage.perplexity == pytest.approx(2.0)
    assert codebook_usage(torch.arange(8), 8).perplexity == pytest.approx(8.0)


def test_patch_discriminator_shape():
    d = vqgan_training.PatchDiscriminator(3, 8, n_layers=3)
    assert d(torch.zeros(2, 3, 64, 64)).shape == (2, 1, 6, 6)


def test_checkpoint_roundtrip_half_storage(model, tmp_path):
    path = tmp_path / "vqgan.pt"
    save_model_checkpoint(path, "vqgan", model.cfg, model, half=True)
    stored = torch.load(path, weights_only=True)["state_dict"]
    assert stored["codebook.embedding.weight"].dtype == torch.float16
    loaded = load_vqgan(model.cfg, path, "cpu")
    assert not loaded.training
    for name, value in loaded.state_dict().items():
        assert value.dtype == model.state_dict()[name].dtype
        torch.testing.assert_close(value, model.state_dict()[name].half().float(), rtol=0, atol=0)
    ids = torch.randint(0, 16, (2, 16, 16))  # (ids, not images: float16 rounding may flip a near-tie code choice)
    torch.testing.assert_close(loaded.decode_indices(ids), model.decode_indices(ids), atol=2e-2, rtol=0)


def test_checkpoint_with_other_config_is_refused(model, tmp_path):
    path = tmp_path / "vqgan.pt"
    save_model_checkpoint(path, "vqgan", model.cfg, model, half=True)
    with pytest.raises(CheckpointError, match=r"vqgan\.pt.*num_codebook_vectors"):
        load_vqgan(tiny_cfg(num_codebook_vectors=32), path, "cpu")
    with pytest.raises(CheckpointError, match=r"missing\.pt"):
        load_vqgan(model.cfg, tmp_path / "missing.pt", "cpu")


# ---- tools/train_vqgan.py and tools/eval_vqgan.py ----

@pytest.fixture
def data_root(tmp_path):
    write_images(tmp_path / "data" / "train", 16, seed=0)
    write_images(tmp_path / "data" / "val", 4, seed=1)
    (tmp_path / "config.yml").write_text(__import__("yaml").safe_dump({"model_param": TINY_VQGAN}))
    return tmp_path


def train_args(root, *extra):
    argv = ["--config", str(root / "config.yml"), "--data-root", str(root / "data"), "--batch-size", "8",
            "--epochs", "1", "--checkpoint-path", str(root / "ckpt"), "--device", "cpu", "--disc-start", "1",
            "--disc-channels", "8", "--partial", "1", "--quiet", *extra]
    parser = train_vqgan.build_parser()
    args = parser.parse_args(argv)
    train_vqgan.check_args(parser, args)
    return args


def read_log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_writes_checkpoints_and_log_then_resumes(data_root):
    torch.manual_seed(0)
    summary = train_vqgan.train(train_args(data_root))               # 2 steps, the second with the GAN loss
    ckpt = data_root / "ckpt"
    assert summary["steps"] == 2
    best = torch.load(ckpt / "best.pt", weights_only=True)
    assert best["kind"] == "vqgan" and best["config"] == TINY_VQGAN
    assert all(v.dtype == torch.float16 for v in best["state_dict"].values() if v.is_floating_point())
    last = torch.load(ckpt / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and last["step"] == 2 and "optimizer" in last and "disc" in last
    rows = read_log(ckpt / "log.csv")
    assert [r["epoch"] for r in rows] == ["1"]
    assert float(rows[0]["val_psnr"]) > 0 and 1 <= int(rows[0]["val_distinct_codes"]) <= 16
    assert float(rows[0]["train_d_loss"]) > 0                         # the PatchGAN trained on step 2

    with pytest.raises(train_vqgan.TrainError, match="--resume"):    # a second fresh run must not overwrite
        train_vqgan.train(train_args(data_root))
    export = data_root / "out" / "vqgan.pt"
    summary = train_vqgan.train(train_args(data_root, "--resume", "--epochs", "2", "--export", str(export)))
    assert summary["steps"] == 4
    assert [r["epoch"] for r in read_log(ckpt / "log.csv")] == ["1", "2"]
    assert torch.load(ckpt / "last.pt", weights_only=True)["epoch"] == 2
    model = load_vqgan(VQGANConfig(**TINY_VQGAN), export, "cpu")       # the export is a loadable checkpoint
    metrics = eval_vqgan.evaluate_checkpoint(export, data_root / "data" / "val", data_root / "config.yml")
    assert metrics["images"] == 4 and 0 < metrics["ssim"] <= 1 and metrics["psnr"] > 0
    assert model.cfg.num_codebook_vectors == 16


def test_start_from_epoch_must_match_last_state(data_root):
    train_vqgan.train(train_args(data_root))
    with pytest.raises(CheckpointError, match="holds epoch 1"):
        train_vqgan.train(train_args(data_root, "--epochs", "4", "--start-from-epoch", "2"))


def test_missing_data_folder_is_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        train_vqgan.main(["--data-root", str(tmp_path / "nowhere"), "--checkpoint-path", str(tmp_path / "c")])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err and "not found" in err
    assert not (tmp_path / "c").exists()                               # nothing written before the data is checked


@pytest.mark.parametrize("flag,value", [("--epochs", "0"), ("--partial", "1.5"), ("--learning-rate", "0"),
                                        ("--batch-size", "-1"), ("--learning-rate", "nan"), ("--learning-rate", "inf"),
                                        ("--disc-weight", "nan"), ("--l2-weight", "inf"), ("--warmup-steps", "-1")])
def test_bad_flags_are_refused(flag, value, capsys):
    with pytest.raises(SystemExit) as exc:
        train_vqgan.main([flag, value])
    assert exc.value.code == 2 and flag in capsys.readouterr().err


def test_decoder_only_fine_tune_keeps_every_code(data_root):
    """--init-from + --decoder-only: the decoder learns, the codes of every image stay the same."""
    torch.manual_seed(0)
    train_vqgan.train(train_args(data_root))
    start = data_root / "ckpt" / "best.pt"
    base = load_vqgan(VQGANConfig(**TINY_VQGAN), start, "cpu")
    args = train_args(data_root, "--init-from", str(start), "--decoder-only", "--epochs", "2",
                      "--checkpoint-path", str(data_root / "ft"), "--learning-rate", "1e-2")
    train_vqgan.train(args)
    tuned = VQGAN(VQGANConfig(**TINY_VQGAN))
    tuned.load_state_dict(torch.load(data_root / "ft" / "last.pt", weights_only=True)["state_dict"])
    before, after = base.state_dict(), tuned.state_dict()
    frozen = [k for k in before if not k.startswith("decoder.") and before[k].is_floating_point()]
    assert frozen and all(torch.equal(before[k].float(), after[k].float()) for k in frozen)
    assert any(not torch.equal(before[k].float(), after[k].float()) for k in before if k.startswith("decoder."))
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    assert torch.equal(base.encode(x)[1], tuned.eval().encode(x)[1])


def test_decoder_only_needs_init_from(capsys):
    with pytest.raises(SystemExit) as exc:
        train_vqgan.main(["--decoder-only"])
    assert exc.value.code == 2 and "--init-from" in capsys.readouterr().err


def test_course_sized_vqgan_config_names_the_command_that_writes_its_checkpoint():
    """tools/config/VQGAN_gpu.yml (instructor side): the config loads, and the train_vqgan command in its comments
    parses and writes into the folder whose best.pt the comments name."""
    from conftest import REPO
    from models.config import load_vqgan_config

    path = REPO / "tools" / "config" / "VQGAN_gpu.yml"
    cfg = load_vqgan_config(path)
    assert (cfg.num_codebook_vectors, cfg.latent_size, cfg.attn_resolutions) == (1024, 16, [16])
    lines = [line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#")]
    start = next(i for i, line in enumerate(lines) if line.startswith("python tools/train_vqgan.py"))
    command = lines[start]
    while command.endswith("\\"):
        start += 1
        command = command[:-1] + " " + lines[start]
    argv = command.split()[2:]
    parser = train_vqgan.build_parser()
    args = parser.parse_args(argv)
    train_vqgan.check_args(parser, args)
    assert (REPO / args.config).resolve() == path.resolve()
    assert f"It writes {args.checkpoint_path}/best.pt" in " ".join(lines)
    assert not (REPO / "solutions" / "config" / "VQGAN_gpu.yml").exists()  # not shipped to students
