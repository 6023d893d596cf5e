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


# ----------------------------------------------------------------------------------------------------
# Bad input: bit depths, hidden folders, --out inside the source, empty splits, --out a file
# ----------------------------------------------------------------------------------------------------

def test_16bit_png_is_scaled_not_clipped(tmp_path):
    """A 16-bit PNG came out almost all white (PIL clips I;16 to 255); now it is scaled by 255/65535."""
    v = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16  # 0 .. 65520
    Image.fromarray(v).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as img:
        assert img.mode == "I;16"
    out = pd.load_square_rgb(tmp_path / "deep.png")
    expected = np.round(v * (255 / 65535)).astype(np.uint8)
    np.testing.assert_array_equal(out, np.repeat(expected[..., None], 3, axis=2))
    assert abs(int(out.mean()) - 127) <= 1  # a mid-grey gradient, not white
    # 32-bit integer (mode I) holding 16-bit values: the same scale; outside 0..65535: refused by name
    Image.fromarray(v.astype(np.int32)).save(tmp_path / "deep.tif")
    np.testing.assert_array_equal(pd.load_square_rgb(tmp_path / "deep.tif"), out)
    Image.fromarray(v.astype(np.int32) - 5).save(tmp_path / "neg.tif")
    with pytest.raises(pd.PrepareError, match=r"neg\.tif: I image with values -5\.\.65515"):
        pd.load_square_rgb(tmp_path / "neg.tif")


def test_float_tiff_in_unit_range_is_scaled_outside_is_refused(tmp_path):
    f = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    Image.fromarray(f).save(tmp_path / "unit.tif")
    out = pd.load_square_rgb(tmp_path / "unit.tif")
    np.testing.assert_array_equal(out[..., 0], np.round(f.astype(np.float64) * 255).astype(np.uint8))
    assert 126 <= out.mean() <= 129  # was 0.5 on average: all black after PIL's clipping
    Image.fromarray(f * 255).save(tmp_path / "byte_range.tif")
    with pytest.raises(pd.PrepareError, match=r"byte_range\.tif: float image with values 0\.\.255: only \[0, 1\]"):
        pd.load_square_rgb(tmp_path / "byte_range.tif")
    g = f.copy()
    g[3, 3] = np.nan
    Image.fromarray(g).save(tmp_path / "nan.tif")
    with pytest.raises(pd.PrepareError, match=r"nan\.tif: float image .*NaN"):
        pd.load_square_rgb(tmp_path / "nan.tif")


def test_deep_images_end_to_end(tmp_path, capsys):
    """Through the CLI: 16-bit and float sources give mid-grey data, and a refused file is named."""
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        v = rng.integers(20000, 45000, (64, 64)).astype(np.uint16)
        Image.fromarray(v).save(src / f"d{i}.png")
    Image.fromarray(rng.uniform(0.3, 0.7, (64, 64)).astype(np.float32)).save(src / "f0.tif")
    out = tmp_path / "out"
    assert pd.main(["folder", str(src), "--out", str(out), "--n-train", "5", "--n-val", "1", "--n-test", "1",
                    "--quiet"]) == 0
    means = [np.asarray(Image.open(p)).mean() for d in ("train", "val", "ground_truth") for p in (out / d).iterdir()]
    assert len(means) == 7 and all(70 < m < 185 for m in means), means
    Image.fromarray(np.full((64, 64), 3.0, np.float32)).save(src / "f1.tif")
    assert pd.main(["folder", str(src), "--out", str(tmp_path / "o2"), "--quiet"]) == 1
    assert f"{src / 'f1.tif'}: float image with values 3..3" in capsys.readouterr().err


def test_hidden_files_and_folders_are_skipped(tmp_path):
    src = make_source_folder(tmp_path)
    (src / ".ipynb_checkpoints").mkdir()
    (src / "sub" / ".git" / "objects").mkdir(parents=True)
    for hidden in (src / ".ipynb_checkpoints" / "img00-checkpoint.png", src / "sub" / ".git" / "objects" / "x.png",
                   src / "._img01.png", src / ".thumb.png"):
        Image.new("RGB", (64, 64), (255, 0, 0)).save(hidden, format="PNG")
    files = pd.list_source_images(src)
    assert len(files) == 20 and not any(part.startswith(".") for f in files for part in f.relative_to(src).parts)
    out = tmp_path / "out"
    assert run_folder(src, out) == 0
    assert all("." not in Path(f).relative_to(src).parts[0][:1]
               for f in json.loads((out / "meta.json").read_text())["splits"]["test"]["source_files"])
    red = {p for d in ("train", "val", "ground_truth") for p in (out / d).iterdir()
           if (np.asarray(Image.open(p)) == [255, 0, 0]).all()}
    assert not red  # no hidden duplicate was ingested


def test_out_inside_the_source_is_never_ingested(tmp_path):
    """A rerun into src/out used to re-ingest the kit's own outputs (and so drew other images)."""
    src = make_source_folder(tmp_path)
    assert run_folder(src, tmp_path / "elsewhere") == 0
    inside = src / "prepared"
    assert run_folder(src, inside) == 0
    first = tree_bytes(inside)
    assert tree_bytes(tmp_path / "elsewhere") == first
    assert len(pd.list_source_images(src, exclude=[inside])) == 20
    assert run_folder(src, inside, "--force") == 0  # its 30+ PNGs are in the source tree now
    assert tree_bytes(inside) == first
    assert not any("prepared" in f for f in json.loads((inside / "meta.json").read_text())
                   ["splits"]["test"]["source_files"])


def test_source_inside_the_outputs_splits_is_refused(tmp_path, capsys):
    src = make_source_folder(tmp_path / "data" / "train")
    assert run_folder(src.parent, tmp_path / "data", "--force") == 1
    assert "the source folder" in capsys.readouterr().err
    assert run_folder(src, src) == 1
    assert len(pd.list_source_images(src)) == 20  # untouched


@pytest.mark.parametrize("flags,match", [
    (["--n-test", "0"], "--n-test 0: the test split would be empty"),
    (["--n-val", "0"], "--n-val 0: the val split would be empty"),
    (["--n-train", "0"], "--n-train 0: the train split would be empty"),
    (["--n-train", "-3"], "--n-train must be >= 0"),
])
def test_empty_or_negative_split_is_refused_before_anything_is_written(tmp_path, capsys, flags, match):
    src = make_source_folder(tmp_path)
    out = tmp_path / "out"
    assert run_folder(src, out, *flags) in (1, 2)
    assert match in capsys.readouterr().err
    assert not out.exists()


def test_defaults_that_leave_no_training_images_are_refused(tmp_path, capsys):
    src = make_source_folder(tmp_path)
    out = tmp_path / "out"
    assert pd.main(["folder", str(src), "--out", str(out), "--n-val", "10", "--n-test", "10", "--quiet"]) == 1
    assert "--n-train 0 (what is left of the source" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(pd.PrepareError, match="--n-test -1: must be >= 0"):
        pd.prepare("folder", out, ["train"], {"train": 3, "val": 1, "test": -1}, src_dir=src, progress=False)
    # a split that is not generated may be empty
    assert pd.main(["folder", str(src), "--out", str(out), "--n-train", "0", "--n-val", "2", "--n-test", "3",
                    "--splits", "val,test", "--quiet"]) == 0


def test_fashion_n_test_zero_is_refused_before_writing(tmp_path, capsys):
    src = tmp_path / "fashion"
    src.mkdir()
    write_idx(src / "train-images-idx3-ubyte.gz", np.zeros((30, 28, 28), np.uint8))
    write_idx(src / "t10k-images-idx3-ubyte.gz", np.zeros((10, 28, 28), np.uint8))
    out = tmp_path / "out"
    assert pd.main(["fashion-mnist", "--source-dir", str(src), "--out", str(out), "--n-train", "6",
                    "--n-val", "3", "--n-test", "0", "--quiet"]) == 1
    assert "--n-test 0: the test split would be empty" in capsys.readouterr().err
    assert not out.exists()


def test_out_that_is_a_file_is_one_clear_error(tmp_path, capsys):
    src = make_source_folder(tmp_path)
    target = tmp_path / "out.txt"
    target.write_text("keep me")
    assert run_folder(src, target) == 1
    assert f"--out {target}: is a file" in capsys.readouterr().err
    assert run_folder(src, target / "sub") == 1
    assert f"lies below {target}, which is a file" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    header = b"\x00\x00\x08\x01" + len(labels).to_bytes(4, "big")
    path.write_bytes(gzip.compress(header + labels.astype(np.uint8).tobytes()))


def test_fashion_labels_follow_their_images(tmp_path):
    """Each split's labels in meta.json are the Fashion-MNIST labels of exactly the images written, in file order."""
    rng = np.random.default_rng(1)
    src = tmp_path / "fashion"
    src.mkdir()
    train, test = rng.integers(0, 256, (30, 28, 28), np.uint8), rng.integers(0, 256, (10, 28, 28), np.uint8)
    train_labels, test_labels = rng.integers(0, 10, 30), rng.integers(0, 10, 10)
    write_idx(src / "train-images-idx3-ubyte.gz", train)
    write_idx(src / "t10k-images-idx3-ubyte.gz", test)
    write_idx_labels(src / "train-labels-idx1-ubyte.gz", train_labels)
    write_idx_labels(src / "t10k-labels-idx1-ubyte.gz", test_labels)
    out = tmp_path / "out"
    assert pd.main(["fashion-mnist", "--source-dir", str(src), "--out", str(out), "--n-train", "6",
                    "--n-val", "3", "--n-test", "4", "--quiet"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["classes"] == list(pd.FASHION_CLASSES)
    test_split = meta["splits"]["test"]
    assert test_split["labels"] == [int(test_labels[j]) for j in test_split["source_indices"]]
    # train: find each written image's source by its pixels
    ups = [np.asarray(Image.fromarray(t).resize((64, 64), Image.Resampling.BICUBIC)) for t in train]
    for k, label in enumerate(meta["splits"]["train"]["labels"]):
        img = np.asarray(Image.open(out / "train" / f"{k:05d}.png"))[..., 0]
        (j,) = [j for j, u in enumerate(ups) if np.array_equal(u, img)]
        assert label == train_labels[j]


def test_fashion_label_file_that_does_not_fit_is_named(tmp_path, capsys):
    src = tmp_path / "fashion"
    src.mkdir()
    write_idx(src / "train-images-idx3-ubyte.gz", np.zeros((30, 28, 28), np.uint8))
    write_idx(src / "t10k-images-idx3-ubyte.gz", np.zeros((10, 28, 28), np.uint8))
    write_idx_labels(src / "train-labels-idx1-ubyte.gz", np.zeros(29, np.uint8))
    write_idx_labels(src / "t10k-labels-idx1-ubyte.gz", np.zeros(10, np.uint8))
    assert pd.main(["fashion-mnist", "--source-dir", str(src), "--out", str(tmp_path / "out"), "--n-train", "6",
                    "--n-val", "3", "--n-test", "4", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "train-labels-idx1-ubyte.gz" in err and "29 labels" in err
    assert not (tmp_path / "out").exists()


def make_class_folders(root: Path, per_class: dict[str, int]) -> Path:
    src = root / "classes"
    rng = np.random.default_rng(2)
    for name, n in per_class.items():
        (src / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(src / name / f"{i}.png")
    return src


def test_folder_of_class_subfolders_gets_labels(tmp_path):
    from maskgit_kit import class_labels
    src = make_class_folders(tmp_path, {"cat": 7, "dog": 6, "owl": 7})
    out = tmp_path / "out"
    assert run_folder(src, out) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["classes"] == ["cat", "dog", "owl"]
    sources = {s: meta["splits"][s] for s in ("train", "val", "test")}
    assert all(len(v["labels"]) == v["count"] for v in sources.values())
    for i, f in enumerate(sources["test"]["source_files"]):  # each test image's label is its folder's class
        assert meta["classes"][sources["test"]["labels"][i]] == Path(f).parent.name
    names, labels = class_labels.folder_labels(out / "splits" / "box" / "masked_image", 5)
    assert labels == sources["test"]["labels"] and names == ["cat", "dog", "owl"]
    assert class_labels.folder_labels(out / "train", 11)[1] == sources["train"]["labels"]


def test_flat_folder_has_no_classes(tmp_path):
    from maskgit_kit import class_labels
    from maskgit_kit.images import DataError
    out = tmp_path / "out"
    assert run_folder(make_source_folder(tmp_path), out) == 0  # images at the top level: no classes
    assert json.loads((out / "meta.json").read_text())["classes"] is None
    with pytest.raises(DataError, match=r"meta.json: records no classes"):
        class_labels.folder_labels(out / "train", 3)


def test_empty_class_folder_is_one_clear_error(tmp_path, capsys):
    src = make_class_folders(tmp_path, {"cat": 10, "dog": 10})
    (src / "zebra").mkdir()
    assert run_folder(src, tmp_path / "out") == 1
    assert "zebra: class folder holds no image files" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_parse_class_by_id_or_name_and_errors():
    from maskgit_kit.class_labels import parse_class
    from maskgit_kit.images import DataError
    names = list(pd.FASHION_CLASSES)
    assert parse_class("3", names) == 3 and parse_class("dress", names) == 3 and parse_class("Ankle boot", names) == 9
    for bad in ("10", "-1", "2.5", "nan", "inf", "Hat", ""):
        with pytest.raises(DataError, match=r"--class"):
            parse_class(bad, names)


def test_committed_benchmark_records_fashion_labels():
    meta = json.loads((REPO / "data" / "fashion64" / "meta.json").read_text())
    assert meta["classes"] == list(pd.FASHION_CLASSES)
    test_split = meta["splits"]["test"]
    labels = pd.read_idx_labels(pd.DEBIAN_FASHION_DIR / "t10k-labels-idx1-ubyte.gz", 10000) \
        if (pd.DEBIAN_FASHION_DIR / "t10k-labels-idx1-ubyte.gz").is_file() else None
    assert len(test_split["labels"]) == 747 and set(test_split["labels"]) == set(range(10))
    if labels is not None:
        assert test_split["labels"] == [int(labels[j]) for j in test_split["source_indices"]]
