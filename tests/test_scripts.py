"""training_transformer.py and inpainting.py end to end on tiny data, and their bad-input errors."""
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import inpainting
import training_transformer
from conftest import write_tiny_config


def train_args(setup, *extra):
    d = setup["data"]
    return ["--config", str(setup["config"]), "--train-d-path", str(d / "train"), "--val-d-path", str(d / "val"),
            "--checkpoint-path", str(setup["root"] / "ckpt"), "--token-cache-dir", str(setup["root"] / "cache"),
            "--batch-size", "4", "--device", "cpu", "--precision", "fp32", *extra]


def inpaint_args(setup, out, *extra):
    d = setup["data"]
    return ["--config", str(setup["config"]), "--test-maskedimage-path", str(d / "masked_image"),
            "--test-mask-path", str(d / "mask64"), "--output-dir", str(out), "--device", "cpu",
            "--batch-size", "2", *extra]


def test_training_writes_checkpoints_log_and_resumes(tiny_setup):
    training_transformer.main(train_args(tiny_setup, "--epochs", "2"))
    ckpt = tiny_setup["root"] / "ckpt"
    for name in ("best.pt", "last.pt", "epoch_1.pt", "epoch_2.pt", "log.csv"):
        assert (ckpt / name).is_file(), name
    state = torch.load(ckpt / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and state["kind"] == "transformer"
    assert len((ckpt / "log.csv").read_text().strip().splitlines()) == 3
    assert list((tiny_setup["root"] / "cache").glob("train-*.pt"))  # token cache written
    with pytest.raises(SystemExit, match="already holds a training run"):
        training_transformer.main(train_args(tiny_setup, "--epochs", "3"))
    training_transformer.main(train_args(tiny_setup, "--epochs", "3", "--resume"))
    assert torch.load(ckpt / "last.pt", weights_only=True)["epoch"] == 3
    assert len((ckpt / "log.csv").read_text().strip().splitlines()) == 4


def test_training_init_from_starts_a_new_run_from_trained_weights(tiny_setup):
    training_transformer.main(train_args(tiny_setup, "--epochs", "1"))
    trained = tiny_setup["root"] / "ckpt" / "best.pt"
    second = tiny_setup["root"] / "ckpt2"
    # learning rate 1e-30 (0 is refused): the weights move by far less than float16's resolution, so best.pt can
    # only hold the ones the new run started from
    training_transformer.main(train_args(tiny_setup, "--epochs", "1", "--learning-rate", "1e-30", "--init-from",
                                         str(trained), "--checkpoint-path", str(second)))
    before = torch.load(trained, weights_only=True)["state_dict"]
    after = torch.load(second / "best.pt", weights_only=True)["state_dict"]
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # a fresh run (no --init-from) starts from random weights instead
    training_transformer.main(train_args(tiny_setup, "--epochs", "1", "--learning-rate", "1e-30", "--checkpoint-path",
                                         str(tiny_setup["root"] / "ckpt3")))
    fresh = torch.load(tiny_setup["root"] / "ckpt3" / "best.pt", weights_only=True)["state_dict"]
    assert not all(torch.equal(before[k], fresh[k]) for k in before)
    with pytest.raises(SystemExit, match="cannot be combined with --resume"):
        training_transformer.main(train_args(tiny_setup, "--epochs", "2", "--resume", "--init-from", str(trained),
                                             "--checkpoint-path", str(second)))
    with pytest.raises(SystemExit, match="nowhere.pt: transformer checkpoint not found"):
        training_transformer.main(train_args(tiny_setup, "--epochs", "1", "--overwrite", "--init-from",
                                             str(tiny_setup["root"] / "nowhere.pt")))


def test_training_without_token_cache_and_missing_data(tiny_setup):
    training_transformer.main(train_args(tiny_setup, "--epochs", "1", "--no-token-cache"))
    with pytest.raises(SystemExit, match="nowhere.*not found"):
        training_transformer.main(train_args(tiny_setup, "--epochs", "1", "--overwrite",
                                             "--train-d-path", str(tiny_setup["root"] / "nowhere")))


def test_inpainting_writes_outputs_in_order_and_deterministically(tiny_setup, tmp_path):
    out = tmp_path / "out"
    inpainting.main(inpaint_args(tiny_setup, out, "--total-iter", "4"))
    results = sorted(p.name for p in (out / "test_results").iterdir())
    assert results == [f"image_{i:03d}.png" for i in range(5)]
    assert Image.open(out / "test_results" / "image_000.png").size == (64, 64)
    assert sorted(p.name for p in (out / "mask_scheduling").iterdir()) == [f"test_{i}.png" for i in range(5)]
    assert (out / "imga" / "test_4.png").is_file()
    def read_all():
        return np.stack([np.asarray(Image.open(out / "test_results" / f"image_{i:03d}.png")) for i in range(5)])

    first = read_all()
    inpainting.main(inpaint_args(tiny_setup, out, "--total-iter", "4"))
    assert np.array_equal(read_all(), first)  # same seed, same images
    inpainting.main(inpaint_args(tiny_setup, out, "--total-iter", "4", "--batch-size", "5"))
    assert np.array_equal(read_all(), first)  # batching changes no pixel on the CPU (decoding.batch_padding)


def test_composite_keeps_known_pixels(tiny_setup, tmp_path):
    out = tmp_path / "out"
    inpainting.main(inpaint_args(tiny_setup, out, "--total-iter", "2", "--composite", "--no-save-steps"))
    d = tiny_setup["data"]
    res = np.asarray(Image.open(out / "test_results" / "image_002.png")).astype(int)
    src = np.asarray(Image.open(d / "masked_image" / "image_002.png")).astype(int)
    known = np.asarray(Image.open(d / "mask64" / "mask_002.png")) == 255
    assert np.abs(res[known] - src[known]).max() <= 1


def _existing_results(out):
    (out / "test_results").mkdir(parents=True)
    (out / "test_results" / "image_000.png").write_bytes(b"old")


@pytest.mark.parametrize("case,message", [
    ("missing_folder", "masked test images folder not found"),
    ("empty_folder", "no masked test images found"),
    ("wrong_size", "image_001.png: expected 64x64 pixels, found 32x32"),
    ("wrong_mode", "mask_002.png: expected image mode L, found RGB"),
    ("lonely_mask", "mask_009.png: mask without its image"),
    ("corrupt", "image_003.png: unreadable image"),
    ("mismatched_ckpt", r"big.pt: checkpoint does not fit the config: dim=64 \(config says 32\)"),
    ("missing_ckpt", "transformer checkpoint not found"),
])
def test_inpainting_bad_input(tiny_setup, tmp_path, case, message):
    d = tiny_setup["data"]
    extra = []
    if case == "missing_folder":
        shutil.rmtree(d / "masked_image")
    elif case == "empty_folder":
        shutil.rmtree(d / "masked_image")
        (d / "masked_image").mkdir()
    elif case == "wrong_size":
        Image.new("RGB", (32, 32)).save(d / "masked_image" / "image_001.png")
    elif case == "wrong_mode":
        Image.new("RGB", (64, 64)).save(d / "mask64" / "mask_002.png")
    elif case == "lonely_mask":
        Image.new("L", (64, 64)).save(d / "mask64" / "mask_009.png")
    elif case == "corrupt":
        (d / "masked_image" / "image_003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    elif case == "mismatched_ckpt":
        other = write_tiny_config(tmp_path / "other")
        text = other.read_text().replace("dim: 32", "dim: 64")
        other.write_text(text)
        from models.checkpoint import save_model_checkpoint
        from models.config import load_maskgit_config
        from models.Transformer.transformer import BidirectionalTransformer
        cfg = load_maskgit_config(other)
        save_model_checkpoint(tmp_path / "big.pt", "transformer", cfg.transformer,
                              BidirectionalTransformer(cfg.transformer))
        extra = ["--load-transformer-ckpt-path", str(tmp_path / "big.pt")]
    elif case == "missing_ckpt":
        extra = ["--load-transformer-ckpt-path", str(tmp_path / "nope.pt")]
    out = tmp_path / "out"
    _existing_results(out)
    with pytest.raises(SystemExit, match=message):
        inpainting.main(inpaint_args(tiny_setup, out, *extra))
    assert (out / "test_results" / "image_000.png").read_bytes() == b"old"  # nothing overwritten


@pytest.mark.parametrize("flags,message", [
    (["--mask-func", "triangle"], "invalid choice: 'triangle'"),
    (["--total-iter", "0"], "argument --total-iter: expected a positive integer, got 0"),
    (["--sweet-spot", "9"], "--sweet-spot 9"),
    (["--choice-temperature", "-1"], "argument --choice-temperature: expected a number >= 0, got -1"),
])
def test_inpainting_bad_flags(tiny_setup, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exc:
        inpainting.main(inpaint_args(tiny_setup, tmp_path, *flags))
    assert exc.value.code != 0
    assert message in capsys.readouterr().err + str(exc.value.code)


def test_inpainting_checks_the_schedule_before_writing(tiny_setup, tmp_path, monkeypatch):
    """--mask-func names an optional schedule the student's gamma_func lacks: one error naming the flag, no output."""
    from test_experiments import three_schedules_only

    from models.VQGAN_Transformer import MaskGit
    monkeypatch.setattr(MaskGit, "gamma_func", three_schedules_only)
    out = tmp_path / "out"
    _existing_results(out)
    with pytest.raises(SystemExit, match="--mask-func cubic: unknown mask function 'cubic'"):
        inpainting.main(inpaint_args(tiny_setup, out, "--mask-func", "cubic"))
    assert (out / "test_results" / "image_000.png").read_bytes() == b"old"
    inpainting.main(inpaint_args(tiny_setup, out, "--mask-func", "square", "--total-iter", "2"))  # a graded one
    assert len(list((out / "test_results").glob("*.png"))) == 5


def test_inpainting_resolves_settings_once(tiny_setup, tmp_path):
    """The config's choice temperature and schedule are resolved at the command line and recorded."""
    import json
    out = tmp_path / "out"
    inpainting.main(inpaint_args(tiny_setup, out, "--total-iter", "2", "--no-save-steps"))
    saved = json.loads((out / "test_results.json").read_text())
    assert saved["choice_temperature"] == 4.5 and saved["mask_func"] == "cosine" and saved["sample"] is False
    inpainting.main(inpaint_args(tiny_setup, out, "--total-iter", "2", "--choice-temperature", "0", "--mask-func",
                                 "linear", "--sampling", "categorical"))
    saved = json.loads((out / "test_results.json").read_text())
    assert saved["choice_temperature"] == 0.0 and saved["mask_func"] == "linear" and saved["sample"] is True


def test_inpainting_failure_midway_keeps_previous_results(tiny_setup, tmp_path, monkeypatch):
    """The output folders are swapped in only when every image is done: an error at batch 2 changes nothing."""
    real, calls = inpainting.iterative_decoding, []

    def second_batch_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(inpainting, "iterative_decoding", second_batch_fails)
    out = tmp_path / "out"
    _existing_results(out)
    with pytest.raises(RuntimeError, match="interrupted"):
        inpainting.main(inpaint_args(tiny_setup, out, "--total-iter", "2"))
    assert sorted(p.name for p in out.iterdir()) == ["test_results"]  # no staging folder left, nothing new
    assert [p.name for p in (out / "test_results").iterdir()] == ["image_000.png"]
    assert (out / "test_results" / "image_000.png").read_bytes() == b"old"
