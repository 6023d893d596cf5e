"""experiments.py: a tiny sweep writes its CSV and figures, and a second run reuses the cached results."""
import csv
import shutil
from pathlib import Path

import experiments
import pytest
import torch

WEIGHTS = Path.home() / ".cache" / "torch" / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="FID weights not installed (run python -m maskgit_kit.fid_weights)")
def test_tiny_sweep_writes_results_and_resumes(tiny_setup, tmp_path, monkeypatch):
    d = tiny_setup["data"]
    gt = d / "ground_truth"
    shutil.copytree(d / "masked_image", gt)  # any images serve as ground truth here
    out = tmp_path / "exp"
    argv = ["--config", str(tiny_setup["config"]), "--mask-funcs", "cosine", "linear", "--total-iters", "1", "2",
            "--sweet-spots", "1", "--test-maskedimage-path", str(d / "masked_image"),
            "--test-mask-path", str(d / "mask64"), "--gt-path", str(gt), "--mask-path", str(d / "mask64"),
            "--out", str(out), "--fid-dims", "64", "--device", "cpu"]
    experiments.main(argv)
    rows = list(csv.DictReader((out / "results.csv").open()))
    # per schedule: T=1 -> S=1; T=2 -> S=1, 2; each with and without compositing
    assert len(rows) == 2 * 3 * 2
    assert {(r["mask_func"], r["total_iter"], r["sweet_spot"]) for r in rows} >= {("linear", "2", "1")}
    for name in ("gamma_curves.png", "fid_vs_T.png", "decoding_steps.png"):
        assert (out / name).stat().st_size > 1000
    table = (out / "results.md").read_text().splitlines()
    assert len(table) == 2 + len(rows) and table[2].startswith("| cosine | 1 | 1 | off | fp32 |")
    calls = []
    monkeypatch.setattr(experiments, "decode_sweet_spots", lambda *a, **k: calls.append(a))
    experiments.main(argv)
    assert calls == []  # everything came from results.jsonl
    assert list(csv.DictReader((out / "results.csv").open())) == rows


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="FID weights not installed (run python -m maskgit_kit.fid_weights)")
def test_sweep_cache_follows_the_vqgan_checkpoint(tiny_setup, tmp_path):
    """A re-trained tokenizer (same transformer) gives other images: cached rows must not be reused."""
    import torch

    from models.checkpoint import save_model_checkpoint
    from models.VQGAN import VQGAN

    d = tiny_setup["data"]
    shutil.copytree(d / "masked_image", d / "ground_truth")
    argv = ["--config", str(tiny_setup["config"]), "--mask-funcs", "cosine", "--total-iters", "1",
            "--test-maskedimage-path", str(d / "masked_image"), "--test-mask-path", str(d / "mask64"),
            "--gt-path", str(d / "ground_truth"), "--mask-path", str(d / "mask64"), "--out", str(tmp_path / "exp"),
            "--fid-dims", "64", "--device", "cpu", "--composite", "off", "--prefill", "none"]
    experiments.main(argv)
    torch.manual_seed(123)
    cfg = tiny_setup["cfg"].vqgan
    save_model_checkpoint(tiny_setup["root"] / "vqgan.pt", "vqgan", cfg, VQGAN(cfg), half=True)
    experiments.main(argv)
    lines = (tmp_path / "exp" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2  # the second run decoded again instead of reusing the first run's row


def test_reference_fids_are_parsed_and_drawn(tmp_path, capsys):
    args = experiments.build_parser().parse_args(["--reference", "biharmonic=36.16", "VQGAN ceiling=27.5"])
    assert args.reference == [("biharmonic", 36.16), ("VQGAN ceiling", 27.5)]
    for bad in ("biharmonic", "biharmonic=low", "=36"):
        with pytest.raises(SystemExit):
            experiments.build_parser().parse_args(["--reference", bad])
        assert "expected LABEL=FID such as biharmonic=36.16" in capsys.readouterr().err
    rows = [{"mask_func": "cosine", "total_iter": t, "sweet_spot": t, "composite": c, "fid": 30.0 + t}
            for t in (1, 4) for c in ("off", "on")]
    labels = experiments.plot_fid_vs_t(rows, tmp_path / "a.png", args.reference)
    assert labels == {"": ["cosine", "cosine (composited)", "biharmonic (36.2)", "VQGAN ceiling (27.5)"]}
    assert experiments.plot_fid_vs_t(rows, tmp_path / "b.png") == {"": ["cosine", "cosine (composited)"]}
    assert (tmp_path / "a.png").stat().st_size > 1000
    # the real-vs-real floor is drawn by default (the value of maskgit_kit.scoring.uncertainty), and 0 removes it
    from maskgit_kit.scoring.uncertainty import REAL_VS_REAL_FID, REAL_VS_REAL_N
    assert (experiments.REAL_VS_REAL_FID, experiments.REAL_VS_REAL_N) == (REAL_VS_REAL_FID, REAL_VS_REAL_N)
    floor = experiments.build_parser().parse_args([]).floor
    assert experiments.plot_fid_vs_t(rows, tmp_path / "c.png", floor=floor)[""][-1] == \
        "real vs real (two disjoint sets of 747 test images)"
    assert experiments.build_parser().parse_args(["--floor", "0"]).floor == 0


def test_fid_vs_t_has_a_panel_per_class_mode_and_guidance(tmp_path):
    rows = [{"mask_func": m, "total_iter": t, "sweet_spot": t, "composite": "off", "fid": 40.0 + t,
             "class_mode": mode, "guidance": g, "guidance_ramp": False}
            for mode, g in (("none", 1.0), ("test", 1.0), ("test", 2.0)) for m in ("cosine", "linear")
            for t in (1, 8)]
    labels = experiments.plot_fid_vs_t(rows, tmp_path / "p.png", floor=29.9)
    assert list(labels) == ["unconditional", "class test, guidance 1", "class test, guidance 2"]
    assert all(v == ["cosine", "linear", "real vs real (two disjoint sets of 747 test images)"]
               for v in labels.values())
    assert (tmp_path / "p.png").stat().st_size > 1000
    labels = experiments.plot_fid_vs_t(rows, tmp_path / "q.png", floor=76.2, floor_images=200)
    assert labels["unconditional"][-1] == "real vs real (two disjoint sets of 200 test images)"


def three_schedules_only(self, mode="cosine"):
    """gamma_func as a student who wrote exactly the graded three writes it."""
    schedules = {"cosine": lambda r: torch.cos(r * torch.pi / 2), "linear": lambda r: 1 - r,
                 "square": lambda r: 1 - r**2}
    if mode not in schedules:
        raise ValueError(f"unknown mask function {mode!r}; choose one of cosine, linear, square")
    return lambda r: schedules[mode](torch.as_tensor(r, dtype=torch.float32)).clamp(0.0, 1.0)


def test_schedules_are_checked_before_the_sweep(tiny_setup, tmp_path, monkeypatch):
    """A schedule gamma_func does not know fails at once, naming the flag; the defaults need the graded three."""
    from models.VQGAN_Transformer import MASK_FUNCS, MaskGit
    monkeypatch.setattr(MaskGit, "gamma_func", three_schedules_only)
    calls = []
    monkeypatch.setattr(experiments, "decode_sweet_spots", lambda *a, **k: calls.append(a))
    d, out = tiny_setup["data"], tmp_path / "exp"
    argv = ["--config", str(tiny_setup["config"]), "--mask-funcs", "cosine", "cubic", "--total-iters", "1",
            "--test-maskedimage-path", str(d / "masked_image"), "--test-mask-path", str(d / "mask64"),
            "--out", str(out), "--device", "cpu"]
    with pytest.raises(SystemExit, match="--mask-funcs cubic: unknown mask function 'cubic'"):
        experiments.main(argv)
    assert calls == [] and not out.exists()
    assert experiments.build_parser().get_default("mask_funcs") == list(MASK_FUNCS)
    experiments.plot_gamma_curves(MaskGit(tiny_setup["cfg"]), tmp_path / "gamma.png")  # the default curves
    assert (tmp_path / "gamma.png").stat().st_size > 1000


def course_gamma_func(self, mode="cosine"):
    """gamma_func as the course writes it: math on a float r, NotImplementedError for an unknown name."""
    import math
    if mode == "cosine":
        return lambda r: math.cos(math.pi * r / 2)
    if mode == "linear":
        return lambda r: 1 - r
    if mode == "square":
        return lambda r: 1 - r ** 2
    raise NotImplementedError


def test_given_code_calls_gamma_with_floats(tiny_setup, tmp_path, monkeypatch):
    """The given callers rely only on the contract (gamma takes a float): the curves and the schedule check."""
    import command_line
    from models.VQGAN_Transformer import MaskGit

    monkeypatch.setattr(MaskGit, "gamma_func", course_gamma_func)
    model = MaskGit(tiny_setup["cfg"])
    experiments.plot_gamma_curves(model, tmp_path / "gamma.png")
    assert (tmp_path / "gamma.png").stat().st_size > 1000
    command_line.check_mask_func(model, "square", "--mask-func")  # a graded one passes
    with pytest.raises(SystemExit, match="--mask-func cubic: unknown schedule"):
        command_line.check_mask_func(model, "cubic", "--mask-func")


# ----------------------------------------------------------------------------------------------------
# Class-conditional generation
# ----------------------------------------------------------------------------------------------------
CLASSES = ["Top", "Trouser", "Bag"]
TEST_LABELS = [0, 2, 1, 2, 0]


@pytest.fixture
def class_setup(tiny_setup):
    """The tiny setup with a class-conditional config (3 classes), test labels in meta.json and a generation
    split (every pixel hidden) beside the test split, as maskgit-prepare-data lays them out."""
    import json

    import numpy as np
    import yaml
    from PIL import Image

    root, d = tiny_setup["root"], tiny_setup["data"]
    cfg = yaml.safe_load(tiny_setup["config"].read_text())
    cfg["model_param"]["Transformer_param"]["num_classes"] = len(CLASSES)
    config = root / "config" / "MaskGit_class.yml"
    config.write_text(yaml.safe_dump(cfg))
    (d / "meta.json").write_text(json.dumps({"classes": CLASSES, "splits": {"test": {"labels": TEST_LABELS}}}))
    gen = d / "splits" / "generation"
    for sub in ("masked_image", "mask64"):
        (gen / sub).mkdir(parents=True)
    for i in range(len(TEST_LABELS)):
        Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(gen / "masked_image" / f"image_{i:03d}.png")
        Image.fromarray(np.zeros((64, 64), np.uint8), mode="L").save(gen / "mask64" / f"mask_{i:03d}.png")
    shutil.copytree(d / "masked_image", d / "ground_truth")
    return {**tiny_setup, "class_config": config, "generation": gen}


def generation_argv(setup, out, *extra):
    g = setup["generation"]
    return ["--config", str(setup["class_config"]), "--random-init", "--mask-funcs", "cosine", "--total-iters", "1",
            "2", "--test-maskedimage-path", str(g / "masked_image"), "--test-mask-path", str(g / "mask64"),
            "--gt-path", str(setup["data"] / "ground_truth"), "--out", str(out), "--fid-dims", "64",
            "--device", "cpu", "--fid-replicates", "20", "--class-grid", "2",
            "--classifier", str(setup["root"] / "no_classifier.pt"), *extra]


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="FID weights not installed (run python -m maskgit_kit.fid_weights)")
def test_generation_sweep_over_class_modes_and_guidance(class_setup, tmp_path, monkeypatch, capsys):
    out = tmp_path / "gen"
    argv = generation_argv(class_setup, out, "--class", "test", "none", "Bag", "--guidance", "1", "2")
    experiments.main(argv)
    rows = list(csv.DictReader((out / "results.csv").open()))
    # test x {1, 2}, none (guidance does not apply), Bag x {1, 2}; T in {1, 2}; generation: no composited rows
    runs = {(r["class_mode"], r["guidance"], r["total_iter"]) for r in rows}
    assert runs == {(m, g, t) for m, g in (("test", "1.0"), ("test", "2.0"), ("none", "1.0"), ("Bag", "1.0"),
                                           ("Bag", "2.0")) for t in ("1", "2")}
    assert len(rows) == 10 and {r["composite"] for r in rows} == {"off"}
    for r in rows:  # KID and FID's interval on every row; no classifier checkpoint: no accuracy
        assert float(r["fid_lo"]) <= float(r["fid_hi"]) and r["kid"] != "" and r["accuracy"] == ""
    log = capsys.readouterr().out
    assert "no classifier checkpoint" in log and "compositing changes nothing" in log
    for name in ("fid_vs_T.png", "decoding_steps.png", "class_grid.png"):
        assert (out / name).stat().st_size > 1000
    table = (out / "results.md").read_text()
    assert "| cosine | 2 | 2 | off | fp32 | Bag | 2 |" in table

    calls = []
    real = experiments.decode_sweet_spots
    monkeypatch.setattr(experiments, "decode_sweet_spots", lambda *a, **k: calls.append(a[7]) or real(*a, **k))
    experiments.main(argv)
    assert calls == []  # every run came from results.jsonl
    experiments.main(argv + ["--guidance-ramp", "--total-iters", "1"])  # the ramp is in the key of conditioned
    assert len(calls) == 4 and {c.mode for c in calls} == {"test", "Bag"} and all(c.ramp for c in calls)


def test_conditions_resolve_the_labels(class_setup):
    """--class test gives each image its own label, a name one label for all; guidance is irrelevant to none."""
    from models.config import load_maskgit_config
    from models.loading import load_maskgit
    from models.VQGAN_Transformer import NO_CLASS

    g = class_setup["generation"]
    args = experiments.build_parser().parse_args(
        ["--class", "test", "none", "2", "--guidance", "0", "3", "--test-maskedimage-path", str(g / "masked_image"),
         "--test-mask-path", str(g / "mask64")])
    cfg = load_maskgit_config(class_setup["class_config"])
    model = load_maskgit(cfg, "cpu")
    conds = experiments.conditions(args, model, 5)
    assert [(c.mode, c.guidance) for c in conds] == [("test", 0.0), ("test", 3.0), ("none", 1.0), ("Bag", 0.0),
                                                     ("Bag", 3.0)]
    assert conds[0].labels == TEST_LABELS and conds[2].labels == [NO_CLASS] * 5 and conds[3].labels == [2] * 5
    assert not conds[2].conditioned and conds[0].conditioned


def test_run_key_separates_class_guidance_ramp_and_config(tmp_path):
    args = experiments.build_parser().parse_args(["--test-maskedimage-path", "a", "--test-mask-path", "b",
                                                  "--config", "x.yml"])
    C = experiments.Condition
    keys = {experiments.run_key(args, "cosine", 8, 4.5, "d", c) for c in
            (C("none", [-1, -1]), C("test", [0, 1]), C("test", [0, 1], 2.0), C("test", [0, 1], 2.0, True),
             C("test", [1, 0]), C("Bag", [2, 2]))}
    assert len(keys) == 6
    base = experiments.run_key(args, "cosine", 8, 4.5, "d", C("test", [0, 1]))
    args.config = "y.yml"
    assert experiments.run_key(args, "cosine", 8, 4.5, "d", C("test", [0, 1])) != base
    assert experiments.run_key(args, "cosine", 8, 4.5, "other ckpt", C("test", [0, 1])) != \
        experiments.run_key(args, "cosine", 8, 4.5, "d", C("test", [0, 1]))
    assert experiments.run_key(args, "cosine", 8, 4.5, "d", C("test", [0, 1]), "classifier") != \
        experiments.run_key(args, "cosine", 8, 4.5, "d", C("test", [0, 1]))


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="FID weights not installed (run python -m maskgit_kit.fid_weights)")
def test_accuracy_column_uses_the_classifier(class_setup, tmp_path, monkeypatch):
    """With a classifier checkpoint, conditioned rows get class_accuracy's figures, unconditional ones none."""
    import sys
    import types

    import numpy as np

    seen = []
    fake = types.ModuleType("maskgit_kit.scoring.classifier")
    fake.load_classifier = lambda path=None, device="cpu": ("clf", str(path))
    fake.class_accuracy = lambda model, images, labels: seen.append((model, images.shape, list(labels))) or {
        "accuracy": 0.25, "n": len(images), "ci95": [0.1, 0.5]}
    monkeypatch.setitem(sys.modules, "maskgit_kit.scoring.classifier", fake)
    ckpt = tmp_path / "classifier.pt"
    ckpt.write_bytes(b"weights")
    out = tmp_path / "acc"
    argv = generation_argv(class_setup, out, "--class", "test", "none", "--total-iters", "1", "--class-grid", "0",
                           "--classifier", str(ckpt))
    experiments.main(argv)
    rows = {r["class_mode"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert (rows["test"]["accuracy"], rows["test"]["accuracy_lo"], rows["test"]["accuracy_hi"]) == ("0.25", "0.1",
                                                                                                   "0.5")
    assert rows["none"]["accuracy"] == ""
    assert seen == [(("clf", str(ckpt)), (5, 64, 64, 3), TEST_LABELS)]
    assert np.isclose(float(rows["test"]["fid"]), float(rows["test"]["fid"]))
    assert not (out / "class_grid.png").exists()  # --class-grid 0


def test_bad_generation_input_is_one_clear_error(class_setup, tmp_path, monkeypatch, capsys):
    out = tmp_path / "bad"
    with pytest.raises(SystemExit):
        experiments.main(generation_argv(class_setup, out, "--guidance", "nan"))
    assert "--guidance: expected a finite number, got nan" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"--class 'Dress': no such class; expected an id or a name: 0=Top"):
        experiments.main(generation_argv(class_setup, out, "--class", "Dress"))
    with pytest.raises(SystemExit, match=r"--class 7: no such class id; expected 0..2"):
        experiments.main(generation_argv(class_setup, out, "--class", "7"))
    with pytest.raises(SystemExit):
        experiments.main(["--split", "nosuch"])
    assert "--split: invalid choice: 'nosuch'" in capsys.readouterr().err
    import command_line
    monkeypatch.setattr(command_line, "DEFAULT_DATA_ROOT", tmp_path / "nodata")
    with pytest.raises(SystemExit, match="--split box: .* not found; generate the large-hole splits"):
        experiments.main(["--split", "box"])
    # a class or a guidance for an unconditional model
    d = class_setup["data"]
    plain = ["--config", str(class_setup["config"]), "--test-maskedimage-path", str(d / "masked_image"),
             "--test-mask-path", str(d / "mask64"), "--out", str(out), "--device", "cpu"]
    with pytest.raises(SystemExit, match="--guidance: the model of .* is unconditional"):
        experiments.main(plain + ["--guidance", "2"])
    with pytest.raises(SystemExit, match="--class test: the model of .* is unconditional"):
        experiments.main(plain + ["--class", "test"])
    assert not out.exists()


def test_tokens_are_encoded_once_per_sweep(tiny_setup, tiny_model, monkeypatch):
    """The masked images' tokens do not depend on the schedule or T: a sweep tokenizes each batch once, and the
    decoded images are the same as with fresh tokens."""
    from torch.utils.data import DataLoader

    from utils import LoadTestData

    d = tiny_setup["data"]
    loader = DataLoader(LoadTestData(d / "masked_image", d / "mask64"), batch_size=2)
    args = experiments.build_parser().parse_args(["--prefill", "none"])
    encoded = []
    real = experiments.tokens_of
    monkeypatch.setattr(experiments, "tokens_of", lambda *a: encoded.append(1) or real(*a))
    tokens = {}
    first = experiments.decode_sweet_spots(tiny_model, loader, 2, [2], args, 4.5, torch.device("cpu"), None, tokens)
    assert len(encoded) == len(tokens) == 3  # 5 images in batches of 2
    again = experiments.decode_sweet_spots(tiny_model, loader, 2, [2], args, 4.5, torch.device("cpu"), None, tokens)
    assert len(encoded) == 3
    fresh = experiments.decode_sweet_spots(tiny_model, loader, 2, [2], args, 4.5, torch.device("cpu"))
    assert (first[2][0] == again[2][0]).all() and (first[2][0] == fresh[2][0]).all()
