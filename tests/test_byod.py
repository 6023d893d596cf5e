"""Bring your own data, end to end (docs/instructors.md, "Bring your own data"): prepare -> train a VQGAN ->
train the transformer on that tokenizer -> inpaint -> score, on a tiny colour set from scikit-image's photos.

Also the trap the issue found: the CPU config names the shipped Fashion VQGAN, so a course that forgets the
tokenizer flag (or pairs the shipped Fashion transformer with its new colour VQGAN) gets one clear error instead of
a silent FID 322.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import skimage.data
import torch
import yaml
from PIL import Image

import inpainting
import training_transformer
from conftest import REPO, TINY_TRANSFORMER, tool
from maskgit_kit import prepare_data
from maskgit_kit.scoring import score

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def colour_crops(folder, n: int = 24, seed: int = 0) -> None:
    """``n`` random square crops (96 to 160 pixels) of scikit-image's bundled colour photos, saved as PNG."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)()[..., :3] for name in PHOTOS]
    for i in range(n):
        photo = photos[i % len(photos)]
        side = int(rng.integers(96, 161))
        y = int(rng.integers(0, photo.shape[0] - side))
        x = int(rng.integers(0, photo.shape[1] - side))
        Image.fromarray(np.ascontiguousarray(photo[y:y + side, x:x + side])).save(folder / f"photo_{i:02d}.png")


def byod_config(root):
    """A MaskGit config as a course would copy the CPU one: the kit's VQGAN architecture (config/VQGAN.yml) and
    VQ_CKPT_path still naming the shipped Fashion VQGAN; a small transformer so that the test trains in seconds."""
    transformer = {**TINY_TRANSFORMER, "num_codebook_vectors": 512}
    cfg = {"model_param": {
        "VQ_Configs": {"VQ_config_path": str(REPO / "solutions" / "config" / "VQGAN.yml"),
                       "VQ_CKPT_path": str(REPO / "checkpoints" / "vqgan.pt")},
        "Transformer_CKPT_path": "transformer_checkpoints/best.pt",
        "num_image_tokens": 256, "num_codebook_vectors": 512, "choice_temperature": 4.5, "gamma_type": "cosine",
        "label_smoothing": 0.1, "Transformer_param": transformer}}
    (root / "config").mkdir()
    path = root / "config" / "MaskGit.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_bring_your_own_data_end_to_end(tmp_path, capsys):
    torch.manual_seed(0)
    photos, data, root = tmp_path / "photos", tmp_path / "photos64", tmp_path / "course"
    root.mkdir()
    colour_crops(photos)

    # 1. prepare: maskgit-prepare-data folder ~/photos --out data/photos64
    assert prepare_data.main(["folder", str(photos), "--out", str(data), "--n-val", "4", "--n-test", "6",
                              "--quiet"]) == 0
    assert len(list((data / "train").glob("*.png"))) == 14
    gt = np.asarray(Image.open(data / "ground_truth" / "image_000.png"))
    assert gt.shape == (64, 64, 3) and np.abs(gt[..., 0].astype(int) - gt[..., 2]).max() > 30  # colour, not grey

    # 2. the tokenizer: tools/train_vqgan.py --data-root data/photos64 --export photos_vqgan.pt (one short epoch)
    tool("eval_vqgan"), tool("vqgan_training")  # its siblings first (conftest.load_script)
    train_vqgan = tool("train_vqgan")
    vqgan = tmp_path / "photos_vqgan.pt"
    assert train_vqgan.main(["--data-root", str(data), "--epochs", "1", "--partial", "1", "--batch-size", "7",
                             "--val-images", "4", "--disc-start", "0", "--checkpoint-path", str(tmp_path / "vq"),
                             "--export", str(vqgan), "--quiet", "--seed", "0"]) == 0
    meta = torch.load(vqgan, weights_only=True)["meta"]
    assert meta["data_root"] == str(data.resolve()) and meta["train_images"] == 14

    # 3. the transformer, on that tokenizer (--vqgan-ckpt; the config still names the Fashion VQGAN)
    config = byod_config(root)
    ckpt = root / "transformer_checkpoints"
    training_transformer.main(["--config", str(config), "--vqgan-ckpt", str(vqgan), "--train-d-path",
                               str(data / "train"), "--val-d-path", str(data / "val"), "--checkpoint-path", str(ckpt),
                               "--token-cache-dir", str(data / "token_cache"), "--epochs", "1", "--batch-size", "7",
                               "--device", "cpu", "--precision", "fp32"])
    recorded = torch.load(ckpt / "best.pt", weights_only=True)["tokenizer"]
    assert recorded["path"] == str(vqgan.resolve())

    # 4. inpaint with the pair
    out = root / "results"
    split = ["--test-maskedimage-path", str(data / "masked_image"), "--test-mask-path", str(data / "mask64")]
    inpainting.main(["--config", str(config), "--vqgan-ckpt", str(vqgan), "--load-transformer-ckpt-path",
                     str(ckpt / "best.pt"), *split, "--output-dir", str(out), "--total-iter", "2", "--device", "cpu",
                     "--no-save-steps"])
    assert sorted(p.name for p in (out / "test_results").iterdir()) == [f"image_{i:03d}.png" for i in range(6)]

    # 5. score against the set's own ground truth
    result_json = tmp_path / "score.json"
    assert score.main(["--predicted-path", str(out / "test_results"), "--gt-path", str(data / "ground_truth"),
                       "--mask-path", str(data / "mask64"), "--dims", "64", "--cache-dir", str(tmp_path / "cache"),
                       "--no-uncertainty", "--device", "cpu", "--json", str(result_json)]) in (0, None)
    result = json.loads(result_json.read_text())
    assert result["n"] == 6 and math.isfinite(result["fid"]) and result["psnr"] > 5

    # the trap: forgetting --vqgan-ckpt falls back on the config's Fashion VQGAN -> one error naming both files
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        inpainting.main(["--config", str(config), "--load-transformer-ckpt-path", str(ckpt / "best.pt"), *split,
                         "--output-dir", str(tmp_path / "wrong"), "--device", "cpu"])
    message = str(exc.value)
    assert "best.pt: this transformer was trained on the tokenizer" in message
    assert str(vqgan.resolve()) in message and str(REPO / "checkpoints" / "vqgan.pt") in message
    # and the shipped Fashion transformer over the new colour VQGAN: the same error, the other way round
    with pytest.raises(SystemExit) as exc:
        inpainting.main(["--config", str(REPO / "solutions" / "config" / "MaskGit.yml"), "--vqgan-ckpt", str(vqgan),
                         *split, "--output-dir", str(tmp_path / "wrong"), "--device", "cpu"])
    message = str(exc.value)
    assert "checkpoints/transformer.pt: this transformer was trained on the tokenizer checkpoints/vqgan.pt" in message
    assert str(vqgan.resolve()) in message and "encoder/codebook weights" in message
    assert not (tmp_path / "wrong").exists()
