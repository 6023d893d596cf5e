"""bench/run.py end to end with --quick on a tiny model: every section runs and reports its figures."""
import json

import pytest
import torch

from conftest import REPO, load_script

measure = load_script(REPO / "bench" / "measure.py")
bench = load_script(REPO / "bench" / "run.py")


def bench_args(setup, *extra):
    return ["--quick", "--threads", "1", "--config", str(setup["config"]), "--data-root", str(setup["data"]), *extra]


def test_quick_bench_reports_every_section(tiny_setup, tmp_path, capsys):
    out = tmp_path / "bench.json"
    results = bench.main(bench_args(tiny_setup, "--skip", "grader", "tokens1d", "--json", str(out)))
    saved = json.loads(out.read_text())
    assert saved["machine"]["cores"] >= 1 and saved["machine"]["torch"] == torch.__version__
    inp = saved["inpaint"]
    assert inp["images"] == 5 and inp["per_image_images"] == 2 and inp["per_image_indices"] == [0, 4]
    # the batched reference and the per-image loop use the same per-image generators: same tokens
    assert inp["batched_fp32_vs_per_image"]["identical_images"] == 1.0
    assert 0 <= inp["bf16_vs_fp32_one_step"]["sample_agreement"] <= 1
    assert saved["flops"]["peak_bf16"]["wall"] > 0 and saved["flops"]["forward_fp32"]["cpu"] > 0
    assert saved["steps"]["ratio"]["cpu"] > 1  # 256 steps take longer than 8
    gen = saved["generation"]  # generation from nothing, T = 8 vs T = 256 with the same model
    assert gen["images"] == 2 and gen["ratio"]["cpu"] > 1 and gen["step_ratio"] == 32
    assert gen["t256"]["cpu_s"] > gen["t8"]["cpu_s"] > 0 and not gen["class_conditional"]
    assert saved["training"]["cache_bf16"]["images_per_s"] > 0 and "grader" not in saved
    assert "weights: " in " ".join(results["notes"])
    table = capsys.readouterr().out
    assert "per-image loop" in table and "token cache vs encoding" in table and "machine:" in table
    assert "CPU time" in table and "6 generation T=256 vs T=8 (2 imgs, all tokens masked, fp32)" in table


def test_training_section_runs_without_a_train_split(tiny_setup, capsys):
    """A clean clone has no data/fashion64/train until `make data`: the bench times on ground_truth/ instead."""
    import shutil
    d = tiny_setup["data"]
    shutil.rmtree(d / "train")
    shutil.copytree(d / "masked_image", d / "ground_truth")
    results = bench.main(bench_args(tiny_setup, "--skip", "grader", "inpaint", "flops", "steps",
                                         "generation", "tokens1d"))
    assert results["training"]["images_dir"] == str(d / "ground_truth")
    assert results["training"]["cache_bf16"]["images_per_s"] > 0
    assert "make data" in capsys.readouterr().out


def test_batched_path_matches_inpaint_batch(tiny_setup, tiny_model):
    """The bench times the same computation as decoding.inpaint_batch (no drift between the two)."""
    import command_line
    import decoding
    from inpainting import iterative_decoding
    images, masks, indices = measure.load_test_split(tiny_setup["data"])
    ours = measure.inpaint_batched(tiny_model, images, masks, indices, total_iter=4, seed=3, batch_size=2)
    args = command_line.inpainting_parser().parse_args(["--total-iter", "4", "--seed", "3", "--no-save-steps"])
    settings = command_line.decode_settings(args, tiny_setup["cfg"])
    ref = torch.cat([decoding.inpaint_batch(tiny_model, images[s:s + 2], masks[s:s + 2], indices[s:s + 2], settings,
                                            iterative_decoding)[0] for s in range(0, len(images), 2)])
    torch.testing.assert_close(ours.images, ref, rtol=0, atol=1e-6)


def test_flop_count_by_hand(tiny_setup):
    cfg = tiny_setup["cfg"]  # N 256, dim 32, hidden 64, 2 layers, 17 ids
    per_layer = 2 * 256 * 32 * 32 * 4 + 2 * 256 * 256 * 32 * 2 + 2 * 256 * 32 * 64 * 2
    assert measure.transformer_flops(cfg) == 2 * per_layer + 2 * 256 * 32 * 32 + 2 * 256 * 32 * 17


def test_bad_data_root_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="--data-root.*masked_image"):
        bench.main(["--quick", "--data-root", str(tmp_path)])


def test_generation_does_not_depend_on_the_batch_size(tiny_model):
    """generate_batched pads its batches as pad_batch does: image i's tokens are the same in any batch."""
    one = measure.generate_batched(tiny_model, 3, total_iter=4, seed=1, batch_size=1)
    three = measure.generate_batched(tiny_model, 3, total_iter=4, seed=1, batch_size=3)
    assert torch.equal(one.tokens, three.tokens) and one.images.shape == (3, 3, 64, 64)
    assert ((one.tokens >= 0) & (one.tokens < tiny_model.num_codebook_vectors)).all()
    other = measure.generate_batched(tiny_model, 3, total_iter=4, seed=2, batch_size=3)
    assert not torch.equal(other.tokens, three.tokens)  # the seed matters: each image has its own generator


def test_generation_of_a_class_conditional_model(tiny_setup):
    """A class-conditional model generates through guided_decoding, image i conditioned on class i mod C."""
    import dataclasses

    from models.VQGAN_Transformer import MaskGit
    cfg = tiny_setup["cfg"]
    cfg = dataclasses.replace(cfg, transformer=dataclasses.replace(cfg.transformer, num_classes=3))
    torch.manual_seed(0)
    model = MaskGit(cfg).eval()
    calls = []
    real = measure.guided_decoding
    try:
        measure.guided_decoding = lambda m, z, mask, labels, *a, **k: calls.append((labels.tolist(), a[1])) or real(
            m, z, mask, labels, *a, **k)
        out = measure.generate_batched(model, 4, total_iter=2, batch_size=4, guidance=2.0)
    finally:
        measure.guided_decoding = real
    assert calls == [([0, 1, 2, 0], 2.0)] and out.tokens.shape == (4, 256)
