"""MaskGIT on TiTok's 1D tokens (issue 17): the config, the tokenizer adapter, training on cached 1D tokens, the
"regenerate all K tokens, keep the known pixels" inpainting, the tokenizer checks and the reconstruction script."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from test_titok import TINY, write_titok_config

from conftest import REPO, load_script, save_model_checkpoint, write_images, write_test_split, write_tiny_config
from models.checkpoint import CheckpointError, tokenizer_identity
from models.config import ConfigError, load_maskgit_config
from models.TiTok import TiTok, load_titok_config
from models.TiTok.teacher import save_titok
from models.TiTok.tokenizer import titok_identity
from models.VQGAN import VQGAN, load_vqgan

K = TINY["num_latent_tokens"]


def write_maskgit_titok(root, **changes):
    params = {"num_image_tokens": K, "num_codebook_vectors": TINY["codebook_size"], "dim": 32, "n_layers": 1,
              "hidden_dim": 64, "num_heads": 2, "dropout": 0.0, "attn_dropout": 0.0}
    top = {"TiTok_Configs": {"TiTok_config_path": "config/TiTok_tiny.yml", "TiTok_CKPT_path": "titok.pt"},
           "Transformer_CKPT_path": "transformer_checkpoints/best.pt", "num_image_tokens": K,
           "num_codebook_vectors": TINY["codebook_size"], "choice_temperature": 4.5, "gamma_type": "cosine",
           "label_smoothing": 0.1, "Transformer_param": params}
    for key, value in changes.items():
        (params if key.startswith("tp_") else top)[key.removeprefix("tp_")] = value
    path = root / "config" / "MaskGit_titok.yml"
    path.write_text(yaml.safe_dump({"model_param": top}))
    return path


@pytest.fixture
def setup(tmp_path):
    torch.manual_seed(0)
    titok_cfg = load_titok_config(write_titok_config(tmp_path))
    save_model_checkpoint(tmp_path / "vqgan.pt", "vqgan", titok_cfg.teacher, VQGAN(titok_cfg.teacher), half=True)
    save_titok(tmp_path / "titok.pt", TiTok(titok_cfg.titok), tokenizer_identity(tmp_path / "vqgan.pt"))
    write_images(tmp_path / "data" / "train", 8, seed=2)
    write_images(tmp_path / "data" / "val", 4, seed=3)
    write_test_split(tmp_path / "data", n=3)
    return {"root": tmp_path, "config": write_maskgit_titok(tmp_path), "titok_cfg": titok_cfg}


def test_config_names_titok_and_its_teacher(setup):
    cfg = load_maskgit_config(setup["config"])
    root = setup["root"]
    assert cfg.titok_ckpt_path == str(root / "titok.pt") and cfg.tokenizer_ckpt_path == cfg.titok_ckpt_path
    assert cfg.vqgan_ckpt_path == str(root / "vqgan.pt") and cfg.token_grid is None
    assert load_maskgit_config(REPO / "solutions" / "config" / "MaskGit.yml").token_grid == 16


@pytest.mark.parametrize("changes, message", [
    ({"num_image_tokens": 16}, "num_image_tokens is 16 but the TiTok config .*TiTok_tiny.yml implies 8"),
    ({"tp_num_codebook_vectors": 16}, "Transformer_param.num_codebook_vectors is 16 .* implies 32"),
    ({"VQ_Configs": {"VQ_config_path": "config/VQGAN.yml", "VQ_CKPT_path": "vqgan.pt"}}, "both VQ_Configs and"),
    ({"TiTok_Configs": {"TiTok_config_path": "config/TiTok_tiny.yml"}}, "TiTok_Configs needs .*TiTok_CKPT_path"),
])
def test_config_errors_name_the_field(setup, changes, message):
    with pytest.raises(ConfigError, match=message):
        load_maskgit_config(write_maskgit_titok(setup["root"], **changes))


def test_the_shipped_configs_read():
    for name, k, classes in (("MaskGit_titok32.yml", 32, 0), ("MaskGit_titok32_class.yml", 32, 10)):
        cfg = load_maskgit_config(REPO / "solutions" / "config" / name)
        assert cfg.num_image_tokens == k and cfg.transformer.num_classes == classes
        assert cfg.titok_ckpt_path.endswith("titok_k32.pt") and cfg.vqgan_ckpt_path.endswith("vqgan.pt")


def test_inpainting_regenerates_every_token_and_keeps_the_known_pixels(setup):
    from decoding import DecodeSettings, inpaint_batch
    from inpainting import guided_decoding, iterative_decoding
    from models.loading import load_maskgit
    from utils import LoadTestData

    model = load_maskgit(load_maskgit_config(setup["config"]))
    assert model.tokenizer["kind"] == "titok"
    data = LoadTestData(setup["root"] / "data" / "masked_image", setup["root"] / "data" / "mask64")
    images = torch.stack([data[i][0] for i in range(3)])
    masks = torch.stack([data[i][1] for i in range(3)])
    assert model.encode_to_z(images)[1].shape == (3, K)
    settings = DecodeSettings(choice_temperature=4.5, total_iter=4, composite=True)
    out, steps, token_masks = inpaint_batch(model, images, masks, [0, 1, 2], settings, iterative_decoding,
                                            guided_decoding=guided_decoding)
    assert out.shape == images.shape and len(steps) == 4
    assert token_masks[0].shape == (3, K) and token_masks[0].all()  # a 1D token is no place: all K regenerated
    assert not token_masks[-1].any()
    known = masks.bool().expand_as(images)
    assert torch.equal(out[known], images[known])
    full = torch.ones_like(masks)  # an image without a hole keeps all its tokens
    assert not model.vqgan.token_mask(full).any()


def train_args(setup, folder, *extra):
    script = load_script(REPO / "solutions" / "training_transformer.py")
    root = setup["root"]
    return script, script.training_parser().parse_args([
        "--config", str(setup["config"]), "--train-d-path", str(root / "data" / "train"),
        "--val-d-path", str(root / "data" / "val"), "--token-cache-dir", str(root / "cache"),
        "--checkpoint-path", str(root / folder), "--batch-size", "4", "--device", "cpu", "--precision", "fp32",
        "--warmup-steps", "1", *extra])


def test_training_on_1d_tokens_and_the_tokenizer_check(setup):
    script, args = train_args(setup, "run", "--epochs", "2")
    rows = script.train(args)
    assert len(rows) == 2 and all(np.isfinite(float(r["val_loss"])) for r in rows)
    caches = sorted((setup["root"] / "cache").glob("train-*.pt"))
    entry = torch.load(caches[0], weights_only=True)
    assert entry["tokens"].shape == (8, K) and entry["tokenizer"]["kind"] == "titok"
    best = setup["root"] / "run" / "best.pt"
    assert torch.load(best, weights_only=True)["tokenizer"]["path"].endswith("titok.pt")

    from models.loading import load_maskgit
    cfg = load_maskgit_config(setup["config"])
    load_maskgit(cfg, transformer_ckpt=best)  # its own tokenizer: fine
    torch.manual_seed(1)  # another TiTok (other encoder weights) of the same config
    teacher = tokenizer_identity(setup["root"] / "vqgan.pt")
    save_titok(setup["root"] / "titok.pt", TiTok(setup["titok_cfg"].titok), teacher)
    with pytest.raises(CheckpointError, match="best.pt.*trained on the tokenizer .*titok.pt"):
        load_maskgit(cfg, transformer_ckpt=best)


def test_identity_ignores_the_decoder_side(setup):
    path = setup["root"] / "titok.pt"
    before = titok_identity(path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["head.weight"] += 1  # a decoder fine-tune keeps every latent id
    torch.save(ckpt, path)
    after = titok_identity(path)
    assert after["codes_sha256"] == before["codes_sha256"] and after["sha256"] != before["sha256"]
    ckpt["state_dict"]["latent_tokens"] += 1
    torch.save(ckpt, path)
    assert titok_identity(path)["codes_sha256"] != before["codes_sha256"]


def test_titok_trained_on_another_teacher_is_refused(setup):
    from models.TiTok.tokenizer import load_titok_tokenizer
    root = setup["root"]
    torch.manual_seed(5)
    cfg = setup["titok_cfg"]
    save_model_checkpoint(root / "vqgan.pt", "vqgan", cfg.teacher, VQGAN(cfg.teacher), half=True)  # a new teacher
    with pytest.raises(CheckpointError, match="titok.pt: this TiTok was trained with the teacher"):
        load_titok_tokenizer(load_titok_config(root / "config" / "TiTok_tiny.yml"), root / "titok.pt")


def test_reconstruction_rows(setup):
    script = load_script(REPO / "solutions" / "reconstruction.py")
    from models.TiTok.tokenizer import load_titok_tokenizer
    cfg = setup["titok_cfg"]
    vqgan = load_vqgan(cfg.teacher, setup["root"] / "vqgan.pt")
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    rec, acc, enc, dec = script.reconstruct(script.VQGANTokenizer(vqgan), images, None, 2, "cpu")
    assert rec.shape == images.shape and rec.dtype == np.uint8 and acc == 1.0 and enc > 0 and dec > 0
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    teacher_codes = script.VQGANTokenizer(vqgan).encode(x)
    tok, _ = load_titok_tokenizer(load_titok_config(setup["root"] / "config" / "TiTok_tiny.yml"),
                                  setup["root"] / "titok.pt")
    wrapped = script.TiTok1D(tok)
    rec, acc, _, _ = script.reconstruct(wrapped, images, teacher_codes, 2, "cpu")
    with torch.no_grad():
        expected = (wrapped.codes(wrapped.encode(x)) == teacher_codes).float().mean().item()
    assert rec.shape == images.shape and acc == pytest.approx(expected)
    with pytest.raises(SystemExit):
        script.build_parser().parse_args(["--titok", "no-equals-sign"])


def test_bench_times_256_tokens_against_1d_tokens(setup, capsys):
    load_script(REPO / "bench" / "measure.py")  # run.py imports it by name, as test_bench.py loads it
    bench = load_script(REPO / "bench" / "run.py")
    config_2d = write_tiny_config(setup["root"])  # the same tiny VQGAN (TiTok's teacher), a random transformer
    results = bench.main(["--quick", "--threads", "1", "--config", str(config_2d), "--titok-config",
                          str(setup["config"]), "--data-root", str(setup["root"] / "data"), "--skip", "inpaint",
                          "flops", "steps", "generation", "training", "grader"])
    t1 = results["tokens1d"]
    assert t1["tokens"] == {"tokens2d": 256, "tokens1d": K} and t1["images"] == 2
    assert t1["tokens2d"]["cpu_s"] > 0 and t1["tokens1d"]["cpu_s"] > 0 and t1["ratio"]["cpu"] > 0
    assert "TiTok weights: " in " ".join(results["notes"])
    assert f"7 generation T=8: 256 tokens vs {K} TiTok tokens (2 imgs" in capsys.readouterr().out


def test_inpainting_script_writes_1d_token_masks(setup):
    from PIL import Image
    script = load_script(REPO / "solutions" / "inpainting.py")
    data, out = setup["root"] / "data", setup["root"] / "out"
    script.main(["--config", str(setup["config"]), "--random-init", "--composite", "--total-iter", "2",
                 "--test-maskedimage-path", str(data / "masked_image"), "--test-mask-path", str(data / "mask64"),
                 "--output-dir", str(out), "--device", "cpu"])
    assert len(list((out / "test_results").glob("*.png"))) == 3
    strip = np.asarray(Image.open(out / "mask_scheduling" / "test_0.png"))
    assert strip.shape[0] < strip.shape[1] / 2  # one strip of K tokens per step, not a 64x64 grid
