"""maskgit-score and maskgit_kit.scoring: validation, metrics, FID, the statistics cache and the points table.

Tiny generated benchmarks (a dozen 32x32 crops of scikit-image's photos) and FID on Inception's first block
(64-d) keep each test to seconds. FID tests skip, saying why, when the Inception weights are not in place.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from maskgit_kit.scoring import fid as fidmod
from maskgit_kit.scoring import score
from maskgit_kit.scoring.metrics import PSNR_CAP, image_metrics, pixel_metrics
from maskgit_kit.scoring.points import FID_POINTS, fid_points
from maskgit_kit.scoring.validation import SubmissionError, benchmark_from_ground_truth, load_images

needs_weights = pytest.mark.skipif(not fidmod.weights_path().is_file(),
                                   reason=f"FID Inception weights not at {fidmod.weights_path()} "
                                          "(run python -m maskgit_kit.fid_weights); no downloads in unit tests")
SIZE = 32


def photo_crops(n: int, size: int = SIZE) -> np.ndarray:
    """``n`` different natural-image crops (uint8 (n, size, size, 3)): FID needs varied, photo-like inputs."""
    sources = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        y, x = rng.integers(0, src.shape[0] - 4 * size), rng.integers(0, src.shape[1] - 4 * size)
        crop = src[y:y + 4 * size:4, x:x + 4 * size:4]  # (size, size, 3), every 4th pixel
        out.append(crop)
    return np.stack(out).astype(np.uint8)


def write_folder(folder, images, prefix="image_"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{prefix}{i:03d}.png")
    return folder


def noisy(images, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(images + rng.normal(0, sigma, images.shape), 0, 255).round().astype(np.uint8)


def make_benchmark(root, n=12, size=SIZE):
    """ground_truth/ + mask64/ (a square hole per image) under ``root``; returns (gt_dir, mask_dir, images)."""
    images = photo_crops(n, size)
    gt = write_folder(root / "ground_truth", images)
    masks = root / "mask64"
    masks.mkdir(parents=True)
    for i in range(n):
        m = np.full((size, size), 255, np.uint8)
        m[4 + i % 8: 16 + i % 8, 8:20] = 0
        Image.fromarray(m, "L").save(masks / f"mask_{i:03d}.png")
    return gt, masks, images


class PixelFeatures:
    """Instant, deterministic stand-in for InceptionFeatures: 4x4 average-pooled RGB (48-d)."""

    dims = 48
    precision = "fp32"
    id = "pixels-for-tests"

    def load(self):
        return None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        n, h, w, c = images.shape
        return images.reshape(n, 4, h // 4, 4, w // 4, c).mean(axis=(2, 4)).reshape(n, -1) / 255.0


@pytest.fixture
def bench(tmp_path):
    gt, masks, images = make_benchmark(tmp_path / "bench")
    return {"gt": gt, "masks": masks, "images": images, "root": tmp_path}


@pytest.fixture(scope="module")
def features():
    if not fidmod.weights_path().is_file():
        pytest.skip("FID Inception weights absent")
    f = fidmod.InceptionFeatures(dims=64, precision="fp32", batch_size=16)
    f.load()
    return f


# ---------------------------------------------------------------------------------------------------
# points table
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fid,points", [(0.0, 20), (39.99, 20), (40.0, 20), (40.01, 17), (45.0, 17), (45.5, 14),
                                        (50.0, 14), (52, 11), (55.0, 11), (60.0, 8), (62, 5), (65.0, 5),
                                        (65.01, 0), (300, 0), (float("nan"), 0), (None, 0)])
def test_points_table_boundaries(fid, points):
    assert fid_points(fid) == points


def test_points_table_is_the_course_table():
    assert FID_POINTS == ((40, 20), (45, 17), (50, 14), (55, 11), (60, 8), (65, 5))


# ---------------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------------

def test_validation_lists_every_bad_file_in_one_error(bench, tmp_path):
    pred = write_folder(tmp_path / "pred", bench["images"])
    (pred / "image_003.png").unlink()                                                   # missing
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(pred / "image_004.png")       # wrong size
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8), "L").save(pred / "image_005.png")  # wrong mode
    (pred / "image_006.png").write_bytes(b"not a png")                                 # unreadable
    shutil.copy(pred / "image_000.png", pred / "image_012.png")                         # extra
    (pred / "notes.txt").write_text("hi")                                               # extra
    (pred / ".DS_Store").write_text("")                                                 # hidden: ignored
    with pytest.raises(SubmissionError) as err:
        load_images(pred, benchmark_from_ground_truth(bench["gt"]))
    msg = str(err.value)
    assert len(err.value.problems) == 5, msg  # the two extra files share one line
    for name in ("image_003.png", "image_004.png", "image_005.png", "image_006.png", "image_012.png", "notes.txt"):
        assert name in msg
    assert "missing" in msg and "16x16" in msg and "mode RGB, found L" in msg and "unreadable" in msg
    assert ".DS_Store" not in msg


def test_validation_names_ranges_of_missing_files_and_empty_folders(bench, tmp_path):
    b = benchmark_from_ground_truth(bench["gt"])
    pred = write_folder(tmp_path / "pred", bench["images"][:2])
    with pytest.raises(SubmissionError, match=r"missing 10 file\(s\): image_002.png .. image_011.png \(10 files\)"):
        load_images(pred, b)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SubmissionError, match="empty folder: expected 12 files"):
        load_images(tmp_path / "empty", b)
    with pytest.raises(SubmissionError, match="folder not found"):
        load_images(tmp_path / "nowhere", b)


def test_cli_rejects_a_bad_folder_before_loading_any_model(bench, tmp_path, capsys, monkeypatch):
    pred = write_folder(tmp_path / "pred", bench["images"][:11])
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(pred / "image_000.png")
    monkeypatch.setattr(fidmod.InceptionFeatures, "load", lambda self: pytest.fail("model loaded before validation"))
    rc = score.main(["--predicted-path", str(pred), "--gt-path", str(bench["gt"]), "--mask-path", str(bench["masks"]),
                     "--json", str(tmp_path / "out.json")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "image_000.png: expected 32x32 pixels, found 8x8" in err and "image_011.png" in err
    assert not (tmp_path / "out.json").exists()


# ---------------------------------------------------------------------------------------------------
# PSNR / SSIM
# ---------------------------------------------------------------------------------------------------

def test_identical_images_give_capped_psnr_and_ssim_one(bench):
    holes = np.zeros(bench["images"].shape[:3], bool)
    holes[:, 5:15, 5:15] = True
    m = pixel_metrics(bench["images"], bench["images"].copy(), holes)
    assert m == {"psnr": PSNR_CAP, "ssim": 1.0, "psnr_hole": PSNR_CAP, "ssim_hole": 1.0}


def test_noisier_copy_scores_worse(bench):
    holes = np.ones(bench["images"].shape[:3], bool)
    a = pixel_metrics(bench["images"], noisy(bench["images"], 5), holes)
    b = pixel_metrics(bench["images"], noisy(bench["images"], 20), holes)
    assert PSNR_CAP > a["psnr"] > b["psnr"] and 1 > a["ssim"] > b["ssim"]
    # sigma 5 noise: PSNR = 10 log10(255^2 / 25) = 34.2 dB before clipping at 0/255 and rounding
    assert a["psnr"] == pytest.approx(34.2, abs=0.6)


def test_hole_metrics_see_only_the_hole():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    hole = np.zeros((SIZE, SIZE), bool)
    hole[8:24, 8:24] = True
    wrong_outside = gt.copy()
    wrong_outside[~hole] = 255 - gt[~hole]
    psnr, ssim, psnr_hole, ssim_hole = image_metrics(gt, wrong_outside, hole)
    assert psnr < 20 and psnr_hole == PSNR_CAP
    wrong_inside = gt.copy()
    wrong_inside[hole] = 0
    _, _, psnr_hole, ssim_hole2 = image_metrics(gt, wrong_inside, hole)
    assert psnr_hole < 20 and ssim_hole2 < 0.5
    # no hole at all: hole metrics do not apply (None in the set average)
    assert np.isnan(image_metrics(gt, gt, np.zeros_like(hole))[2])
    assert pixel_metrics(gt[None], gt[None], np.zeros_like(hole)[None])["psnr_hole"] is None


# ---------------------------------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,d", [(30, 64), (200, 16)])  # fewer images than dims (the real case) and more
def test_fast_frechet_distance_matches_pytorch_fid(n, d):
    rng = np.random.default_rng(n)
    a = np.maximum(rng.normal(size=(n + 7, d)), 0)
    b = np.maximum(rng.normal(size=(n, d)) * 1.3 + 0.2, 0)
    ref = fidmod.statistics(a)
    fast = fidmod.frechet_distance(ref, b, "fast")
    slow = fidmod.frechet_distance(ref, b, "pytorch-fid")
    assert fast == pytest.approx(slow, rel=1e-6, abs=1e-8)
    assert fidmod.frechet_distance(ref, a, "fast") == pytest.approx(0, abs=1e-8)


def test_equal_covariances_give_squared_mean_distance():
    """pytorch-fid's own hand-worked case: same covariance -> FID = |m1 - m2|^2."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(40, 8))
    shift = np.arange(8) / 4
    assert fidmod.frechet_distance(fidmod.statistics(a), a + shift) == pytest.approx(shift @ shift, rel=1e-9)


@needs_weights
def test_features_match_pytorch_fids_own_loader(bench, features):
    """Same numbers as pytorch-fid's path-based pipeline (its model, its loader) in fp32."""
    from pytorch_fid.fid_score import get_activations
    from pytorch_fid.inception import InceptionV3

    files = sorted(bench["gt"].glob("*.png"))
    theirs = get_activations(files, InceptionV3([0]).eval(), batch_size=6, dims=64)
    ours = features(bench["images"])
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


@needs_weights
def test_identical_folders_fid_zero_and_noisier_copy_worse(bench, tmp_path, features):
    cache = tmp_path / "cache"
    same = score.run_score(bench["gt"], bench["gt"], bench["masks"], features, cache)
    assert same["fid"] == pytest.approx(0, abs=1e-6)
    assert same["ssim"] == 1.0 and same["ssim_hole"] == 1.0 and same["points"] == 20 and same["n"] == 12
    little = score.run_score(write_folder(tmp_path / "a", noisy(bench["images"], 8)), bench["gt"], bench["masks"],
                             features, cache)
    much = score.run_score(write_folder(tmp_path / "b", noisy(bench["images"], 40)), bench["gt"], bench["masks"],
                           features, cache)
    assert 0 < little["fid"] < much["fid"]
    assert little["psnr"] > much["psnr"] and little["ssim"] > much["ssim"]


@needs_weights
def test_ground_truth_statistics_cache_is_keyed_by_content(bench, tmp_path, features):
    cache = tmp_path / "cache"
    first = score.run_score(bench["gt"], bench["gt"], bench["masks"], features, cache)
    second = score.run_score(bench["gt"], bench["gt"], bench["masks"], features, cache)
    assert not first["gt_stats_cached"] and second["gt_stats_cached"]
    files = list((cache / "fid_stats").glob("*.npz"))
    assert len(files) == 1
    # the same images in another folder reuse the entry; a changed image never gets the stale one
    moved = shutil.copytree(bench["gt"], tmp_path / "gt_copy")
    assert score.run_score(bench["gt"], moved, bench["masks"], features, cache)["gt_stats_cached"]
    Image.fromarray(noisy(bench["images"][:1], 30)[0]).save(moved / "image_000.png")
    changed = score.run_score(bench["gt"], moved, bench["masks"], features, cache)
    assert not changed["gt_stats_cached"] and changed["fid"] > 0
    assert len(list((cache / "fid_stats").glob("*.npz"))) == 2
    # a damaged cache file is recomputed, not trusted
    files[0].write_bytes(b"garbage")
    again = score.run_score(bench["gt"], bench["gt"], bench["masks"], features, cache)
    assert not again["gt_stats_cached"] and again["fid"] == pytest.approx(0, abs=1e-6)


@needs_weights
def test_cli_prints_table_and_writes_json(bench, tmp_path, capsys):
    pred = write_folder(tmp_path / "pred", noisy(bench["images"], 10))
    out = tmp_path / "score.json"
    rc = score.main(["--predicted-path", str(pred), "--gt-path", str(bench["gt"]), "--mask-path",
                     str(bench["masks"]), "--dims", "64", "--precision", "fp32", "--cache-dir",
                     str(tmp_path / "cache"), "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    result = json.loads(out.read_text())
    for key in ("fid", "psnr", "ssim", "psnr_hole", "ssim_hole", "n", "points", "timing"):
        assert key in result
    assert result["n"] == 12 and result["fid_dims"] == 64
    assert f"{result['fid']:.2f}" in text and "hole only" in text and "points:" in text and "time:" in text


# ---------------------------------------------------------------------------------------------------
# damaged FID-statistics cache: detected, reported in one line naming the file, rebuilt
# ---------------------------------------------------------------------------------------------------

@pytest.fixture
def stats_cache(bench, tmp_path):
    """A freshly written cache entry for the bench's ground truth (stand-in features) and a way to reread it."""
    files = sorted(bench["gt"].glob("image_*.png"))
    cache = tmp_path / "cache"
    feats = PixelFeatures()

    def read():
        return fidmod.reference_statistics(files, bench["images"], feats, cache)

    first, _, cached = read()
    assert not cached and first.features.dtype == np.float32 and first.features.shape == (12, 48)
    (path,) = (cache / "fid_stats").glob("*.npz")
    return {"read": read, "path": path, "good": first, "bytes": path.read_bytes()}


def _same(a, b):
    return np.array_equal(a.mu, b.mu) and np.array_equal(a.sigma, b.sigma) and np.array_equal(a.features, b.features)


def _assert_rebuilt(stats_cache, capsys, reason):
    stats, _, cached = stats_cache["read"]()
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert not cached and _same(stats, stats_cache["good"])
    assert len(lines) == 1 and lines[0].startswith(f"warning: {stats_cache['path']}: damaged FID-statistics cache")
    assert reason in lines[0], lines[0]
    again, _, cached = stats_cache["read"]()  # the rebuilt entry is good again
    assert cached and _same(again, stats_cache["good"]) and capsys.readouterr().err == ""


def test_statistics_cache_entry_is_reused_with_its_features(stats_cache, capsys):
    stats, _, cached = stats_cache["read"]()
    assert cached and _same(stats, stats_cache["good"]) and capsys.readouterr().err == ""
    assert stats.mu.dtype == np.float64 and stats.sigma.dtype == np.float64  # from the float64 features: FID as before


@pytest.mark.parametrize("damage,reason", [
    (lambda data: data[: len(data) // 2], "unreadable"),                 # truncated
    (lambda data: b"", "unreadable"),                                    # zero bytes
    (lambda data: b"this is not a zip file" * 10, "unreadable"),         # garbage
    (lambda data: data[:-200], "unreadable"),                            # end of the zip directory cut off
])
def test_truncated_empty_or_garbage_cache_is_rebuilt(stats_cache, capsys, damage, reason):
    stats_cache["path"].write_bytes(damage(stats_cache["bytes"]))
    _assert_rebuilt(stats_cache, capsys, reason)


def test_every_bit_flip_is_either_harmless_or_detected_and_rebuilt(stats_cache, capsys):
    data = stats_cache["bytes"]
    detected = 0
    for pos in range(0, len(data), 53):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << (pos % 8)
        stats_cache["path"].write_bytes(bytes(flipped))
        stats, _, cached = stats_cache["read"]()
        err = capsys.readouterr().err
        assert _same(stats, stats_cache["good"]), f"byte {pos}: wrong statistics served"
        if cached:
            assert err == ""  # the flip hit a part of the zip that carries no data
        else:
            detected += 1
            assert err.count("\n") == 1 and str(stats_cache["path"]) in err
    assert detected > 0.9 * len(range(0, len(data), 53))  # the array data (CRC-checked) is most of the file


@pytest.mark.parametrize("arrays,reason", [
    ({"mu": np.zeros(47), "sigma": np.eye(48), "n": np.int64(12), "features": np.zeros((12, 48), np.float32)},
     "mu has shape (47,)"),
    ({"mu": np.zeros(48), "sigma": np.eye(47), "n": np.int64(12), "features": np.zeros((12, 48), np.float32)},
     "sigma has shape (47, 47)"),
    ({"mu": np.zeros(48), "sigma": np.eye(48), "n": np.int64(12), "features": np.zeros((11, 48), np.float32)},
     "features has shape (11, 48)"),
    ({"mu": np.zeros(48), "sigma": np.full((48, 48), np.nan), "n": np.int64(12),
      "features": np.zeros((12, 48), np.float32)}, "sigma is not finite"),
    ({"mu": np.ones(48), "sigma": np.eye(48), "n": np.int64(12), "features": np.zeros((12, 48), np.float32)},
     "mu is not the mean"),
    ({"mu": np.zeros(48), "sigma": np.eye(48), "n": np.int64(12)}, "missing features"),  # a version-1 entry
    ({"mu": np.zeros(48), "sigma": np.eye(48), "n": np.zeros(3), "features": np.zeros((12, 48), np.float32)},
     "unreadable"),
])
def test_cache_with_wrong_shapes_nan_or_missing_arrays_is_rebuilt(stats_cache, capsys, arrays, reason):
    np.savez(stats_cache["path"], **arrays)
    _assert_rebuilt(stats_cache, capsys, reason)


def test_cache_with_nan_features_is_rebuilt(stats_cache, capsys):
    good = stats_cache["good"]
    features = good.features.copy()
    features[3, 7] = np.nan
    np.savez(stats_cache["path"], mu=good.mu, sigma=good.sigma, n=np.int64(12), features=features)
    _assert_rebuilt(stats_cache, capsys, "features is not finite")


# ---------------------------------------------------------------------------------------------------
# the interval, KID and precision/recall in the result, the table and the JSON
# ---------------------------------------------------------------------------------------------------

def test_score_result_has_interval_kid_and_prdc_and_the_flag_leaves_them_out(bench, tmp_path):
    pred = write_folder(tmp_path / "pred", noisy(bench["images"], 10))
    args = (pred, bench["gt"], bench["masks"], PixelFeatures(), tmp_path / "cache")
    result = score.run_score(*args)
    lo, hi = result["fid_ci"]
    assert lo <= result["fid"] <= hi and lo < hi
    assert result["kid"]["subset_size"] == 6 and result["kid"]["std"] > 0
    assert set(result["prdc"]) == {"precision", "recall", "density", "coverage", "nearest_k"}
    assert len(result["fid_resamples"]["replicates"]) == 200 and result["uncertainty"]["method"] == "half-sampling"
    text = score.format_result(result)
    assert f"{lo:.2f} .. {hi:.2f}" in text and "KID (x 1000)" in text and "coverage (k=5)" in text
    assert "FID 29.9 against each other" in text
    json.dumps(result, allow_nan=False)  # strict JSON
    plain = score.run_score(*args, uncertainty=None)
    assert plain["fid"] == result["fid"] and not {"fid_ci", "kid", "prdc"} & set(plain)
    assert "% interval" not in score.format_result(plain) and "KID" not in score.format_result(plain)
