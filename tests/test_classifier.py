"""The generation classifier (maskgit_kit.scoring.classifier, tools/train_classifier.py, checkpoints/classifier.pt):
the shipped one recognises the real test images, wrong labels score near chance, bad input is one clear error,
and training is deterministic for a seed."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, tool
from maskgit_kit.class_labels import folder_labels
from maskgit_kit.images import DataError
from maskgit_kit.paths import DEFAULT_GT_PATH
from maskgit_kit.scoring import classifier as clf
from maskgit_kit.scoring.validation import Benchmark, SubmissionError, load_images

SAMPLE = 747  # all the test images: about 2 s to read and classify


@pytest.fixture(scope="module")
def shipped():
    return clf.load_classifier(REPO / "checkpoints" / "classifier.pt")


@pytest.fixture(scope="module")
def test_sample():
    bench = Benchmark(tuple(f"image_{i:03d}.png" for i in range(SAMPLE)), 64)
    images = load_images(DEFAULT_GT_PATH, bench, "ground truth", trusted=True)
    return images, np.asarray(folder_labels(DEFAULT_GT_PATH, SAMPLE)[1])


def copy_gt(dest, count):
    dest.mkdir()
    for i in range(count):
        shutil.copyfile(DEFAULT_GT_PATH / f"image_{i:03d}.png", dest / f"image_{i:03d}.png")
    return dest


def test_shipped_classifier_recognises_real_test_images(shipped, test_sample):
    images, labels = test_sample
    result = clf.class_accuracy(shipped, images, labels)
    assert result["n"] == SAMPLE and result["accuracy"] >= 0.85, result["accuracy"]
    lo, hi = result["ci95"]
    assert lo < result["accuracy"] < hi and hi - lo < 0.1
    assert set(result["per_class"]) <= set(shipped.classes) and len(result["per_class"]) == 10
    assert (REPO / "checkpoints" / "classifier.pt").stat().st_size < 2 * 2**20


def test_shuffled_labels_score_near_chance(shipped, test_sample):
    images, labels = test_sample
    wrong = np.random.default_rng(0).permutation(labels)
    assert clf.class_accuracy(shipped, images, wrong)["accuracy"] < 0.25
    shifted = (labels + 1) % 10  # every label wrong: only the classifier's own mistakes can hit
    assert clf.class_accuracy(shipped, images, shifted)["accuracy"] < 0.1


def test_predict_shape_and_dtype(shipped, test_sample):
    pred = clf.predict(shipped, test_sample[0][:5])
    assert pred.dtype == np.int64 and pred.shape == (5,)
    with pytest.raises(ValueError, match="uint8 images of shape"):
        clf.predict(shipped, test_sample[0][:5].astype(np.float32))
    with pytest.raises(ValueError, match="labels"):
        clf.class_accuracy(shipped, test_sample[0][:5], [1, 2])


def test_wilson_interval_by_hand():
    lo, hi = clf.wilson_interval(50, 100)  # p = 0.5, n = 100: 0.5 -+ 1.96 * sqrt(0.0025 + 0.000096) / 1.0384
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    lo, hi = clf.wilson_interval(0, 20)
    assert lo == 0.0 and 0.1 < hi < 0.2  # no hits still leaves room above 0


def test_cli_on_a_results_folder(tmp_path, shipped, test_sample, capsys):
    folder = copy_gt(tmp_path / "gen", 40)
    out = tmp_path / "r.json"
    assert clf.main(["--predicted-path", str(folder), "--class", "test", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    expected = clf.class_accuracy(shipped, *[a[:40] for a in test_sample])
    assert result["n"] == 40 and result["accuracy"] == expected["accuracy"]
    assert "recognised as their class" in capsys.readouterr().out
    # one class for all: the fraction of the 40 that are Trousers, by the classifier's own predictions
    assert clf.main(["--predicted-path", str(folder), "--class", "Trouser", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["accuracy"] == np.mean(np.asarray(expected["predictions"]) == 1)


def test_bad_class_and_folder_are_one_clear_error(tmp_path, shipped, capsys):
    folder = copy_gt(tmp_path / "gen", 3)
    with pytest.raises(DataError, match="--class .Hat.: no such class"):
        clf.classify_folder(folder, "Hat", shipped)
    with pytest.raises(DataError, match="--class 10: no such class id"):
        clf.classify_folder(folder, "10", shipped)
    with pytest.raises(SubmissionError, match="folder not found"):
        clf.classify_folder(tmp_path / "nowhere", "test", shipped)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SubmissionError, match="no image_000.png"):
        clf.classify_folder(tmp_path / "empty", "test", shipped)
    (folder / "image_001.png").unlink()
    os.symlink(DEFAULT_GT_PATH / "image_001.png", folder / "image_001.png")
    (folder / "image_005.png").write_bytes(b"not a png")
    with pytest.raises(SubmissionError) as info:
        clf.classify_folder(folder, "test", shipped)
    text = str(info.value)
    assert "image_001.png: a symbolic link" in text and "image_005.png: unreadable" in text
    assert "missing 2 file(s)" in text  # image_003, image_004
    assert clf.main(["--predicted-path", str(folder), "--class", "Hat"]) == 1
    assert "--class 'Hat'" in capsys.readouterr().err


def test_bad_checkpoint_is_one_clear_error(tmp_path, shipped):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((REPO / "checkpoints" / "classifier.pt").read_bytes()[:2000])
    with pytest.raises(DataError, match=f"{corrupt}: not a readable classifier checkpoint"):
        clf.load_classifier(corrupt)
    with pytest.raises(DataError, match="not found"):
        clf.load_classifier(tmp_path / "none.pt")
    ckpt = torch.load(REPO / "checkpoints" / "classifier.pt", weights_only=True)
    other = tmp_path / "other.pt"
    torch.save({**ckpt, "kind": "vqgan"}, other)
    with pytest.raises(DataError, match="not a generation-classifier checkpoint"):
        clf.load_classifier(other)
    torch.save({**ckpt, "config": {**ckpt["config"], "channels": [8, 8, 8]}}, other)
    with pytest.raises(DataError, match=f"{other}: weights do not fit"):
        clf.load_classifier(other)
    with pytest.raises(DataError, match="trained on the classes"):
        clf.load_classifier(REPO / "checkpoints" / "classifier.pt", classes=[str(i) for i in range(10)])


def make_benchmark(root, n_train=48, n_val=16, classes=("a", "b", "c")):
    """train/ and val/ of random 64x64 images whose class shows in their brightness, with meta.json labels."""
    rng = np.random.default_rng(0)
    splits = {}
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split).mkdir(parents=True)
        labels = [int(v) for v in rng.integers(0, len(classes), n)]
        for i, label in enumerate(labels):
            pixels = rng.integers(0, 60, (64, 64, 3)) + 90 * label
            Image.fromarray(pixels.astype(np.uint8)).save(root / split / f"{i:05d}.png")
        splits[split] = {"count": n, "labels": labels}
    (root / "meta.json").write_text(json.dumps({"classes": list(classes), "splits": splits}))
    return root


def test_tiny_training_is_deterministic_with_a_seed(tmp_path):
    train_classifier = tool("train_classifier")
    root = make_benchmark(tmp_path / "bench")
    cfg = clf.ClassifierConfig(channels=(4, 8), num_classes=3, downsample=4)
    torch.set_num_threads(1)

    def run(seed):
        ckpt, rows = train_classifier.train(root / "train", root / "val", epochs=2, batch_size=16, seed=seed,
                                            cfg=cfg, log=lambda _: None)
        return ckpt, rows

    try:
        first, rows = run(0)
        again, _ = run(0)
        other, _ = run(1)
    finally:
        torch.set_num_threads(2)
    assert len(rows) == 2 and set(rows[0]) == set(train_classifier.LOG_COLUMNS)
    for name, value in first["state_dict"].items():
        torch.testing.assert_close(value, again["state_dict"][name], rtol=0, atol=0)
    assert any(not torch.equal(v, other["state_dict"][k]) for k, v in first["state_dict"].items())
    assert first["classes"] == ["a", "b", "c"]
    # the CLI writes a checkpoint that loads, and the log; it refuses to overwrite without --force
    out, log = tmp_path / "c.pt", tmp_path / "log.csv"
    argv = ["--train-dir", str(root / "train"), "--val-dir", str(root / "val"), "--epochs", "1", "--batch-size", "16",
            "--threads", "1", "--out", str(out), "--log", str(log)]
    assert train_classifier.main(argv) == 0
    assert clf.load_classifier(out, classes=["a", "b", "c"]).cfg.num_classes == 3
    assert log.read_text().splitlines()[0] == ",".join(train_classifier.LOG_COLUMNS)
    assert train_classifier.main(argv) == 1
    torch.set_num_threads(2)


def test_training_without_labels_is_one_clear_error(tmp_path, capsys):
    train_classifier = tool("train_classifier")
    root = make_benchmark(tmp_path / "bench", n_train=4, n_val=4)
    (root / "meta.json").write_text(json.dumps({"source": "folder"}))
    argv = ["--train-dir", str(root / "train"), "--val-dir", str(root / "val"), "--out", str(tmp_path / "c.pt")]
    assert train_classifier.main(argv) == 1
    assert "meta.json: records no classes" in capsys.readouterr().err


@pytest.mark.parametrize("build", [lambda: clf.build_parser(), lambda: tool("train_classifier").build_parser()])
def test_help_renders(build):
    assert "--help" in build().format_help()
