"""maskgit_kit/scoring/baselines.py: each baseline fills only the hole, the VQGAN ceiling loads the kit's checkpoint,
the table scores them all, and their images are reused while the inputs are unchanged."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_score import make_benchmark, write_folder

from conftest import REPO, TINY_VQGAN
from maskgit_kit.scoring import baselines
from maskgit_kit.scoring import fid as fidmod

SOLUTIONS = REPO / "solutions"  # the tree conftest.py activated (its VQGAN code is the same as lab/'s)

needs_weights = pytest.mark.skipif(not fidmod.weights_path().is_file(),
                                   reason=f"FID Inception weights not at {fidmod.weights_path()} "
                                          "(run python -m maskgit_kit.fid_weights); no downloads in unit tests")


def smooth_images(n=4, size=32):
    """Smooth colour ramps: biharmonic interpolation should recover them almost exactly."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    return np.stack([np.stack([40 + 150 * xx + 10 * i, 60 + 120 * yy, 200 - 100 * xx * yy], -1)
                     for i in range(n)]).round().astype(np.uint8)


def masked_split(images):
    holes = np.zeros(images.shape[:3], bool)
    holes[:, 10:22, 8:20] = True
    masked = images.copy()
    masked[holes] = 128
    return masked, holes


def test_fills_change_only_the_hole():
    gt = smooth_images()
    masked, holes = masked_split(gt)
    for fill in (baselines.gray_fill, baselines.mean_fill, baselines.biharmonic_fill):
        out = fill(masked, holes)
        assert out.dtype == np.uint8 and out.shape == gt.shape
        np.testing.assert_array_equal(out[~holes], masked[~holes])
    mean = baselines.mean_fill(masked, holes)
    expected = np.round(masked[0][~holes[0]].mean(axis=0))
    np.testing.assert_array_equal(mean[0][holes[0]], np.broadcast_to(expected, (holes[0].sum(), 3)))
    np.testing.assert_array_equal(baselines.gray_fill(masked, holes), masked)


def test_biharmonic_recovers_a_smooth_image():
    gt = smooth_images()
    masked, holes = masked_split(gt)
    out = baselines.biharmonic_fill(masked, holes)
    err_gray = np.abs(masked[holes].astype(int) - gt[holes]).mean()
    err_bih = np.abs(out[holes].astype(int) - gt[holes]).mean()
    assert err_bih < 2 < err_gray


def test_vqgan_ceiling_uses_the_kit_checkpoint(tmp_path):
    import yaml

    from models.checkpoint import save_model_checkpoint
    from models.config import load_vqgan_config
    from models.VQGAN import VQGAN

    cfg_path = tmp_path / "VQGAN.yml"
    cfg_path.write_text(yaml.safe_dump({"model_param": TINY_VQGAN}))
    cfg = load_vqgan_config(cfg_path)
    torch.manual_seed(0)
    save_model_checkpoint(tmp_path / "vqgan.pt", "vqgan", cfg, VQGAN(cfg))
    gt = smooth_images(3, 64)
    out = baselines.vqgan_reconstruction(gt, cfg_path, tmp_path / "vqgan.pt", batch_size=2, lab=SOLUTIONS)
    assert out.shape == gt.shape and out.dtype == np.uint8
    with pytest.raises(baselines.BaselineSkipped, match="missing.pt not found"):
        baselines.vqgan_reconstruction(gt, cfg_path, tmp_path / "missing.pt", lab=SOLUTIONS)
    (tmp_path / "broken.pt").write_bytes(b"junk")
    with pytest.raises(baselines.BaselineSkipped, match="not a readable torch checkpoint"):
        baselines.vqgan_reconstruction(gt, cfg_path, tmp_path / "broken.pt", lab=SOLUTIONS)


@needs_weights
def test_table_scores_each_baseline_and_reuses_images(tmp_path, capsys):
    gt, masks, images = make_benchmark(tmp_path / "bench")
    holes = np.stack([np.asarray(Image.open(masks / f"mask_{i:03d}.png")) < 128 for i in range(len(images))])
    masked = images.copy()
    masked[holes] = 128
    write_folder(tmp_path / "bench" / "masked_image", masked)
    out, table = tmp_path / "baselines", tmp_path / "table.json"
    argv = ["--out", str(out), "--gt-path", str(gt), "--mask-path", str(masks), "--masked-path",
            str(tmp_path / "bench" / "masked_image"), "--vqgan-ckpt", str(tmp_path / "none.pt"), "--dims", "64",
            "--precision", "fp32", "--cache-dir", str(tmp_path / "cache"), "--json", str(table)]
    assert baselines.main(argv) == 0
    text = capsys.readouterr().out
    rows = {r["name"]: r for r in json.loads(table.read_text())}
    assert set(rows) == set(baselines.BASELINES)
    assert rows["vqgan"]["status"] == "skipped" and "none.pt not found" in rows["vqgan"]["reason"]
    assert "skipped: " in text and "biharmonic" in text
    for name in ("gray", "mean", "biharmonic"):
        assert rows[name]["status"] == "ok" and rows[name]["n"] == len(images) and not rows[name]["reused"]
        assert sorted(p.name for p in (out / name).glob("*.png"))[-1] == f"image_{len(images) - 1:03d}.png"
    # the same inputs: images reused, same numbers; a changed mask: regenerated
    assert baselines.main(argv) == 0
    again = {r["name"]: r for r in json.loads(table.read_text())}
    assert all(again[n]["reused"] and again[n]["fid"] == rows[n]["fid"] for n in ("gray", "mean", "biharmonic"))
    Image.fromarray(np.full(holes.shape[1:], 255, np.uint8), "L").save(masks / "mask_000.png")
    assert baselines.main(argv + ["--only", "mean"]) == 0
    assert not json.loads(table.read_text())[0]["reused"]
