"""The tokenizer a transformer was trained on: recorded in every checkpoint and token cache, checked on load.

A transformer predicts one VQGAN's code ids; over another VQGAN it inpaints nonsense without a word (issue 16:
the shipped grey tokenizer on colour photos scored FID 322). These tests train tiny runs with ``--vqgan-ckpt``
and check that a mismatched pair is one error naming both files, and that what may change (the decoder) does not
trip it.
"""
from __future__ import annotations

import hashlib

import pytest
import torch
from test_scripts import inpaint_args, train_args

import inpainting
import training_transformer
from conftest import REPO
from models.checkpoint import (
    CheckpointError,
    check_tokenizer,
    read_checkpoint,
    save_model_checkpoint,
    tokenizer_identity,
)
from models.config import load_maskgit_config
from models.loading import load_maskgit
from models.VQGAN import VQGAN
from token_cache import load_or_build_tokens
from utils import LoadTrainData


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def other_vqgan(setup, name: str, seed: int = 1, decoder_only_from=None):
    """A second tiny VQGAN file: new random weights, or ``decoder_only_from``'s with only the decoder changed."""
    cfg = setup["cfg"].vqgan
    torch.manual_seed(seed)
    model = VQGAN(cfg)
    if decoder_only_from is not None:
        state = read_checkpoint(decoder_only_from, "vqgan")["state_dict"]
        fresh = model.state_dict()
        model.load_state_dict({k: (fresh[k] if k.startswith("decoder.") else v.float()) for k, v in state.items()})
    path = setup["root"] / name
    save_model_checkpoint(path, "vqgan", cfg, model, half=True)
    return path


def test_the_shipped_transformer_records_the_shipped_vqgan(capsys):
    ckpt = read_checkpoint(REPO / "checkpoints" / "transformer.pt", "transformer")
    recorded = ckpt["tokenizer"]
    assert recorded["sha256"] == sha256(REPO / "checkpoints" / "vqgan.pt")
    assert recorded["config"]["num_codebook_vectors"] == ckpt["config"]["num_codebook_vectors"] == 512
    cfg = load_maskgit_config(REPO / "solutions" / "config" / "MaskGit.yml")
    model = load_maskgit(cfg, "cpu", transformer_ckpt=REPO / "checkpoints" / "transformer.pt")
    assert model.tokenizer["sha256"] == recorded["sha256"]
    assert "warning" not in capsys.readouterr().err  # it carries the identity: nothing to warn about


def test_training_records_the_tokenizer_in_every_checkpoint_and_cache(tiny_setup):
    vqgan_b = other_vqgan(tiny_setup, "vqgan_b.pt")
    training_transformer.main(train_args(tiny_setup, "--epochs", "2", "--vqgan-ckpt", str(vqgan_b)))
    folder = tiny_setup["root"] / "ckpt"
    for name in ("best.pt", "last.pt", "epoch_1.pt", "epoch_2.pt"):
        recorded = torch.load(folder / name, weights_only=True)["tokenizer"]
        assert recorded["sha256"] == sha256(vqgan_b), name  # the flag's VQGAN, not the config's vqgan.pt
        assert recorded["config"]["num_codebook_vectors"] == 16
    caches = sorted((tiny_setup["root"] / "cache").glob("*.pt"))
    assert [p.name.split("-")[0] for p in caches] == ["train", "val"]
    for path in caches:
        entry = torch.load(path, weights_only=True)
        assert entry["tokenizer"]["sha256"] == sha256(vqgan_b)
        assert entry["tokens"].dtype == torch.int16 and entry["tokens"].shape[1] == 256


def test_a_mismatched_pair_is_one_error_naming_both_files(tiny_setup, tmp_path):
    vqgan_b = other_vqgan(tiny_setup, "vqgan_b.pt")
    training_transformer.main(train_args(tiny_setup, "--epochs", "1", "--vqgan-ckpt", str(vqgan_b)))
    best = tiny_setup["root"] / "ckpt" / "best.pt"
    out = tmp_path / "out"
    # the config's own VQGAN (vqgan.pt) is not the one best.pt was trained on
    with pytest.raises(SystemExit) as exc:
        inpainting.main(inpaint_args(tiny_setup, out, "--load-transformer-ckpt-path", str(best)))
    message = str(exc.value)
    assert "best.pt: this transformer was trained on the tokenizer" in message
    assert str(vqgan_b) in message and str(tiny_setup["root"] / "vqgan.pt") in message
    assert "encoder/codebook weights" in message and "--vqgan-ckpt" in message
    assert not out.exists()  # found before anything was written
    # with the VQGAN it was trained on, it inpaints
    inpainting.main(inpaint_args(tiny_setup, out, "--load-transformer-ckpt-path", str(best), "--vqgan-ckpt",
                                 str(vqgan_b), "--total-iter", "2", "--no-save-steps"))
    assert len(list((out / "test_results").glob("*.png"))) == 5


def test_resuming_with_another_tokenizer_is_refused(tiny_setup):
    training_transformer.main(train_args(tiny_setup, "--epochs", "1"))
    vqgan_b = other_vqgan(tiny_setup, "vqgan_b.pt")
    with pytest.raises(SystemExit, match=r"last.pt: this transformer was trained on the tokenizer .*vqgan.pt"):
        training_transformer.main(train_args(tiny_setup, "--epochs", "2", "--resume", "--vqgan-ckpt", str(vqgan_b)))
    training_transformer.main(train_args(tiny_setup, "--epochs", "2", "--resume"))  # the same tokenizer: fine


def test_a_decoder_fine_tune_keeps_the_transformer_valid(tiny_setup):
    """tools/train_vqgan.py --decoder-only writes a new file with the same codes: not a mismatch."""
    cfg = tiny_setup["cfg"]
    original = tiny_setup["root"] / "vqgan.pt"
    tuned = other_vqgan(tiny_setup, "vqgan_tuned.pt", seed=5, decoder_only_from=original)
    assert sha256(tuned) != sha256(original)
    a, b = tokenizer_identity(original), tokenizer_identity(tuned)
    assert a["codes_sha256"] == b["codes_sha256"] and a["sha256"] != b["sha256"]
    ckpt = {"tokenizer": a}
    check_tokenizer("t.pt", ckpt, b, cfg.transformer)  # no error
    with pytest.raises(CheckpointError, match="encoder/codebook weights"):
        check_tokenizer("t.pt", ckpt, tokenizer_identity(other_vqgan(tiny_setup, "vqgan_c.pt", seed=7)))


def test_config_differences_are_named(tiny_setup):
    cfg = tiny_setup["cfg"]
    given = tokenizer_identity(tiny_setup["root"] / "vqgan.pt")
    stored = {**given, "config": {**given["config"], "num_codebook_vectors": 32}}
    with pytest.raises(CheckpointError) as exc:
        check_tokenizer("t.pt", {"tokenizer": stored}, given, cfg.transformer)
    message = str(exc.value)
    assert "num_codebook_vectors 32 vs 16" in message
    assert "the recorded tokenizer has 32 codes, the transformer's config 16" in message
    stored = {**given, "config": {**given["config"], "channels": [8, 16]}}  # a 32x32 grid: 1024 tokens
    with pytest.raises(CheckpointError, match="makes 1024 tokens, the transformer's config 256"):
        check_tokenizer("t.pt", {"tokenizer": stored}, given, cfg.transformer)
    stored = {**given, "config": {**given["config"], "beta": 0.5}}  # a training-only weight: free to differ
    check_tokenizer("t.pt", {"tokenizer": stored}, given, cfg.transformer)


def test_an_older_checkpoint_without_the_identity_warns_in_one_line(tiny_setup, capsys):
    # tiny_setup's transformer.pt is saved without a tokenizer, as every checkpoint before the kit recorded it
    assert "tokenizer" not in torch.load(tiny_setup["root"] / "transformer.pt", weights_only=True)
    model = load_maskgit(tiny_setup["cfg"], "cpu", transformer_ckpt=tiny_setup["root"] / "transformer.pt")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "transformer.pt records no tokenizer" in err
    assert model.tokenizer["sha256"] == sha256(tiny_setup["root"] / "vqgan.pt")


def test_a_cache_recording_another_tokenizer_is_re_encoded(tiny_setup, capsys):
    model = load_maskgit(tiny_setup["cfg"], "cpu")
    dataset = LoadTrainData(tiny_setup["data"] / "train")
    cache = tiny_setup["root"] / "cache"
    vqgan = tiny_setup["root"] / "vqgan.pt"
    tokens = load_or_build_tokens(model, dataset, cache, vqgan, "cpu", "train")
    (path,) = cache.glob("train-*.pt")
    entry = torch.load(path, weights_only=True)
    forged = {"tokens": torch.zeros_like(entry["tokens"]), "tokenizer": {**entry["tokenizer"], "sha256": "0" * 64}}
    torch.save(forged, path)  # e.g. a cache file copied from another run
    again = load_or_build_tokens(model, dataset, cache, vqgan, "cpu", "train")
    assert torch.equal(again, tokens)
    assert "was encoded by another tokenizer" in capsys.readouterr().out
    torch.save(torch.zeros_like(tokens), path)  # an older kit's cache: a bare tensor, no tokenizer recorded
    assert torch.equal(load_or_build_tokens(model, dataset, cache, vqgan, "cpu", "train"), tokens)
    assert torch.load(path, weights_only=True)["tokenizer"]["sha256"] == sha256(vqgan)
