"""Tests for maskgit_kit.prepare_data on tiny generated sources in tmp_path (never the real data/)."""
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import utils  # the lab's own loaders must accept what the tool writes
from maskgit_kit import prepare_data as pd

REPO = Path(__file__).resolve().parents[1]

COUNTS = {"train": 11, "val": 4, "test": 5}  # 20 source images in all


def make_source_folder(root: Path) -> Path:
    """20 images of mixed sizes and modes (RGB, RGBA, L, P, 100x80, 30x200, a JPEG in a subfolder)."""
    rng = np.random.default_rng(0)
    src = root / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(20):
        h, w = [(64, 64), (80, 100), (200, 30), (17, 17)][i % 4]
        arr = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        mode = ["RGB", "RGBA", "L", "P"][i % 4]
        img = Image.fromarray(arr, "RGBA")
        img = img.convert(mode) if mode != "RGBA" else img
        if i == 19:
            img.convert("RGB").save(src / "sub" / f"img{i:02d}.jpg")
        else:
            img.save(src / f"img{i:02d}.png")
    (src / "notes.txt").write_text("not an image, ignored")
    return src


def run_folder(src: Path, out: Path, *extra: str) -> int:
    return pd.main(["folder", str(src), "--out", str(out), "--n-train", str(COUNTS["train"]),
                    "--n-val", str(COUNTS["val"]), "--n-test", str(COUNTS["test"]), "--quiet", *extra])


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_folder_layout_sizes_modes_and_masks(tmp_path):
    out = tmp_path / "out"
    assert run_folder(make_source_folder(tmp_path), out) == 0
    assert sorted(p.name for p in (out / "train").iterdir()) == [f"{i:05d}.png" for i in range(11)]
    assert sorted(p.name for p in (out / "val").iterdir()) == [f"{i:05d}.png" for i in range(4)]
    for folder, name in [("ground_truth", "image"), ("masked_image", "image"), ("mask64", "mask")]:
        assert sorted(p.name for p in (out / folder).iterdir()) == [f"{name}_{i:03d}.png" for i in range(5)]
    for p in list((out / "train").iterdir()) + list((out / "ground_truth").iterdir()):
        with Image.open(p) as img:
            assert (img.mode, img.size) == ("RGB", (64, 64)), p
    for i in range(5):
        mask = np.asarray(Image.open(out / "mask64" / f"mask_{i:03d}.png"))
        assert Image.open(out / "mask64" / f"mask_{i:03d}.png").mode == "L"
        assert mask.shape == (64, 64)
        assert set(np.unique(mask)) <= {0, 255}
        assert 0.15 <= (mask == 0).mean() <= 0.35
        gt = np.asarray(Image.open(out / "ground_truth" / f"image_{i:03d}.png"))
        masked = np.asarray(Image.open(out / "masked_image" / f"image_{i:03d}.png"))
        assert (masked[mask == 0] == 128).all()
        np.testing.assert_array_equal(masked[mask == 255], gt[mask == 255])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 0 and meta["splits"]["test"]["count"] == 5
    assert 0.15 <= meta["splits"]["test"]["mask_coverage"]["min"] <= meta["splits"]["test"]["mask_coverage"]["max"]
    assert (out / "README.md").is_file()
    # the lab's loaders read the result without complaint
    assert len(utils.LoadTrainData(out / "train")) == 11
    test = utils.LoadTestData(out / "masked_image", out / "mask64")
    test.validate()
    assert len(test) == 5


def test_train_val_test_are_disjoint_and_cover_distinct_sources(tmp_path):
    """Every source image lands in exactly one split; asking for more than the source holds is refused."""
    src = make_source_folder(tmp_path)
    out = tmp_path / "out"
    assert run_folder(src, out) == 0
    hashes = [p.read_bytes() for d in ("train", "val", "ground_truth") for p in sorted((out / d).iterdir())]
    assert len(set(hashes)) == 20
    assert run_folder(src, tmp_path / "too_many", "--n-train", "12") == 1  # 12 + 4 + 5 = 21 > 20 images


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    src = make_source_folder(tmp_path)
    assert run_folder(src, tmp_path / "a") == 0
    assert run_folder(src, tmp_path / "b") == 0
    assert run_folder(src, tmp_path / "c", "--seed", "1") == 0
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    assert tree_bytes(tmp_path / "a") != tree_bytes(tmp_path / "c")


def test_masks_depend_only_on_seed_and_index():
    np.testing.assert_array_equal(pd.make_mask(3, 7), pd.make_mask(3, 7))
    assert not np.array_equal(pd.make_mask(3, 7), pd.make_mask(3, 8))
    assert not np.array_equal(pd.make_mask(3, 7), pd.make_mask(4, 7))
    coverage = [pd.mask_coverage(pd.make_mask(0, i)) for i in range(60)]
    assert all(0.15 <= c <= 0.35 for c in coverage)
    assert 0.18 <= np.mean(coverage) <= 0.28  # the course's free-form holes cover about 20-25 %


def test_refuses_to_overwrite_unless_force(tmp_path, capsys):
    src = make_source_folder(tmp_path)
    out = tmp_path / "out"
    assert run_folder(src, out) == 0
    before = tree_bytes(out)
    assert run_folder(src, out, "--seed", "5") == 1
    assert "--force" in capsys.readouterr().err
    assert tree_bytes(out) == before  # nothing touched
    assert run_folder(src, out, "--seed", "5", "--force") == 0
    assert tree_bytes(out) != before
    assert not list(out.glob(".tmp-*")) and not list(out.glob(".old-*"))


def test_splits_generated_separately_match_all_at_once(tmp_path):
    src = make_source_folder(tmp_path)
    assert run_folder(src, tmp_path / "all") == 0
    assert run_folder(src, tmp_path / "parts", "--splits", "train,val") == 0
    assert not (tmp_path / "parts" / "mask64").exists()
    assert run_folder(src, tmp_path / "parts", "--splits", "test") == 0
    assert tree_bytes(tmp_path / "all") == tree_bytes(tmp_path / "parts")
    meta = json.loads((tmp_path / "parts" / "meta.json").read_text())
    assert set(meta["splits"]) == {"train", "val", "test"}


def test_corrupt_image_is_named_and_nothing_written(tmp_path, capsys):
    src = make_source_folder(tmp_path)
    bad = src / "img05.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    out = tmp_path / "out"
    assert run_folder(src, out) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "unreadable image" in err
    assert not out.exists() or not any(out.iterdir())
    # --skip-bad lists it and carries on with the 19 good images
    assert pd.main(["folder", str(src), "--out", str(out), "--n-train", "10", "--n-val", "4", "--n-test", "5",
                    "--skip-bad", "--quiet"]) == 0
    assert str(bad) in capsys.readouterr().err
    assert str(bad) in json.loads((out / "meta.json").read_text())["skipped_files"][0]


def test_bad_splits_flag(tmp_path, capsys):
    assert run_folder(make_source_folder(tmp_path), tmp_path / "out", "--splits", "train,tset") == 1
    assert "--splits" in capsys.readouterr().err


def write_idx(path: Path, images: np.ndarray) -> None:
    n, h, w = images.shape
    header = b"\x00\x00\x08\x03" + b"".join(int(v).to_bytes(4, "big") for v in (n, h, w))
    with gzip.open(path, "wb") as f:
        f.write(header + images.astype(np.uint8).tobytes())


def test_fashion_source_from_fake_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "fashion"
    src.mkdir()
    train = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)
    write_idx(src / "train-images-idx3-ubyte.gz", train)
    write_idx(src / "t10k-images-idx3-ubyte.gz", test)
    np.testing.assert_array_equal(pd.read_idx_images(src / "train-images-idx3-ubyte.gz"), train)
    out = tmp_path / "out"
    assert pd.main(["fashion-mnist", "--source-dir", str(src), "--out", str(out), "--n-train", "6",
                    "--n-val", "3", "--n-test", "4", "--quiet"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert {k: v["count"] for k, v in meta["splits"].items()} == {"train": 6, "val": 3, "test": 4}
    # ground truth i is test image source_indices[i], bicubic-upsampled and replicated to RGB
    for i, j in enumerate(meta["splits"]["test"]["source_indices"]):
        gt = np.asarray(Image.open(out / "ground_truth" / f"image_{i:03d}.png"))
        expected = np.asarray(Image.fromarray(test[j]).resize((64, 64), Image.Resampling.BICUBIC))
        np.testing.assert_array_equal(gt, np.repeat(expected[..., None], 3, axis=2))
    assert "Zalando SE" in (out / "LICENSE-fashion-mnist.txt").read_text()
    # train and val come from disjoint training images
    train_imgs = {p.read_bytes() for d in ("train", "val") for p in (out / d).iterdir()}
    assert len(train_imgs) == 9


def test_fashion_bad_idx_file_is_named(tmp_path, capsys):
    src = tmp_path / "fashion"
    src.mkdir()
    (src / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"garbage" * 10))
    write_idx(src / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8))
    assert pd.main(["fashion-mnist", "--source-dir", str(src), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    assert "train-images-idx3-ubyte.gz" in capsys.readouterr().err


BENCH = REPO / "data" / "fashion64"


def test_committed_benchmark_test_split():
    """The committed test split: 747 aligned triples, binary masks in range, holes exactly 128."""
    meta = json.loads((BENCH / "meta.json").read_text())
    assert meta["splits"]["test"]["count"] == 747
    for folder in ("ground_truth", "masked_image", "mask64"):
        assert len(list((BENCH / folder).glob("*.png"))) == 747
    masks = np.stack([np.asarray(Image.open(p)) for p in sorted((BENCH / "mask64").glob("*.png"))])
    assert masks.shape == (747, 64, 64) and set(np.unique(masks)) == {0, 255}
    coverage = (masks == 0).mean(axis=(1, 2))
    assert coverage.min() >= 0.15 and coverage.max() <= 0.35
    for i in (0, 373, 746):
        masked = np.asarray(Image.open(BENCH / "masked_image" / f"image_{i:03d}.png"))
        gt = np.asarray(Image.open(BENCH / "ground_truth" / f"image_{i:03d}.png"))
        assert (masked[masks[i] == 0] == 128).all()
        np.testing.assert_array_equal(masked[masks[i] == 255], gt[masks[i] == 255])
    assert "Copyright (c) 2017 Zalando SE" in (BENCH / "LICENSE-fashion-mnist.txt").read_text()


@pytest.mark.skipif(not (pd.DEBIAN_FASHION_DIR / pd.FASHION_FILES["test"]).is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_committed_test_split_regenerates_byte_for_byte(tmp_path):
    meta = json.loads((BENCH / "meta.json").read_text())
    assert pd.main(["fashion-mnist", "--out", str(tmp_path), "--splits", "test", "--seed", str(meta["seed"]),
                    "--n-train", "12000", "--n-val", "3000", "--n-test", "747", "--quiet"]) == 0
    for folder in ("ground_truth", "masked_image", "mask64"):
        assert tree_bytes(tmp_path / folder) == tree_bytes(BENCH / folder), folder


def test_fashion_missing_files_and_failed_download_is_one_clear_error(tmp_path, monkeypatch, capsys):
    import torchvision.datasets

    def no_network(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", no_network)
    out = tmp_path / "out"
    assert pd.main(["fashion-mnist", "--source-dir", str(tmp_path / "nowhere"), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "nowhere/train-images-idx3-ubyte.gz" in err and "download failed" in err and "--source-dir" in err
    assert not out.exists()
