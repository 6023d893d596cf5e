"""maskgit_kit.scoring.uncertainty: the FID interval (half-sampling), KID, paired differences, precision/recall.

Synthetic feature arrays throughout (no Inception pass): each test runs in about a second.
"""
from __future__ import annotations

import numpy as np
import pytest

from maskgit_kit.scoring import fid as fidmod
from maskgit_kit.scoring import uncertainty as unc


def relu_features(rng, n: int, d: int = 24, k: int = 8, shift: float = 0.0, basis=None) -> np.ndarray:
    """Non-negative, correlated features like Inception's pool3: ReLU of a low-rank Gaussian."""
    basis = rng.normal(size=(k, d)) / np.sqrt(k) if basis is None else basis
    return np.maximum((rng.normal(size=(n, k)) + shift) @ basis + 0.3, 0)


@pytest.mark.parametrize("n,d", [(40, 64), (120, 16)])  # fewer images than dims (the real case) and more
def test_subset_fid_equals_the_frechet_distance_of_the_subset(n, d):
    rng = np.random.default_rng(n)
    ref = fidmod.statistics(np.maximum(rng.normal(size=(n + 9, d)), 0))
    acts = np.maximum(rng.normal(size=(n, d)) * 1.2 + 0.1, 0)
    sub = unc.SubsetFid(ref, acts)
    assert sub.fid() == pytest.approx(fidmod.frechet_distance(ref, acts), rel=1e-7)
    for members in unc.half_subsets(n, 3, seed=5):
        assert sub.fid(members) == pytest.approx(fidmod.frechet_distance(ref, acts[members]), rel=1e-7)


def test_half_subsets_are_distinct_halves_and_depend_only_on_n_and_seed():
    a, b = unc.half_subsets(11, 50, seed=3), unc.half_subsets(11, 50, seed=3)
    assert a.shape == (50, 5) and np.array_equal(a, b)  # the same for every folder: paired
    assert all(len(set(row)) == 5 and row.min() >= 0 and row.max() < 11 for row in a)
    assert not np.array_equal(a, unc.half_subsets(11, 50, seed=4))
    assert len({tuple(row) for row in a}) > 40
    with pytest.raises(ValueError, match="at least 4"):
        unc.half_subsets(3, 10)


def test_fid_interval_covers_the_fid_of_fresh_image_sets():
    """The interval from one set of n images covers the FIDs of other sets of n from the same distribution.

    For a correct 95 % interval around an unbiased point estimate, a fresh set's FID (which varies as much as
    the point estimate itself) falls inside about 83 % of the time (P(|N(0, 2)| < 1.96)). A zero-width interval
    covers nothing; one shifted by the resampling bias (as the with-replacement bootstrap's is) covers far
    less; one much too wide covers everything. The point estimate lies inside.
    """
    rng = np.random.default_rng(0)
    d, n, k = 24, 150, 8
    basis = rng.normal(size=(k, d)) / np.sqrt(k)
    ref = fidmod.statistics(relu_features(rng, n, basis=basis))
    fresh = np.array([fidmod.frechet_distance(ref, relu_features(rng, n, shift=0.3, basis=basis))
                      for _ in range(60)])
    settings = unc.UncertaintySettings(replicates=200, seed=1)
    covered, widths = [], []
    for _ in range(12):
        acts = relu_features(rng, n, shift=0.3, basis=basis)
        point = fidmod.frechet_distance(ref, acts)
        lo, hi = unc.fid_interval(ref, acts, settings, point)["fid_ci"]
        assert lo < point < hi
        covered.append(np.mean((fresh >= lo) & (fresh <= hi)))
        widths.append(hi - lo)
    coverage = float(np.mean(covered))
    assert 0.65 <= coverage <= 0.97, coverage
    # the width matches the real spread: 2 x 1.96 sd of the fresh sets' FIDs, within a factor 1.5
    assert np.mean(widths) == pytest.approx(2 * 1.96 * fresh.std(ddof=1), rel=0.5)


def test_fid_interval_result_fields():
    rng = np.random.default_rng(2)
    ref = fidmod.statistics(relu_features(rng, 40), keep_features=True)
    out = unc.fid_interval(ref, relu_features(rng, 30), unc.UncertaintySettings(replicates=25, seed=7))
    assert len(out["fid_ci"]) == 2 and out["fid_ci"][0] < out["fid_ci"][1] and out["fid_se"] > 0
    res = out["fid_resamples"]
    assert res["method"] == "half-sampling" and res["seed"] == 7 and res["n"] == 30 and len(res["replicates"]) == 25


def direct_kid(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 written out pair by pair."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_the_direct_formula():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(9, 5)), rng.normal(size=(7, 5)) + 0.5
    assert unc.SubsetKid(x, y).kid() == pytest.approx(direct_kid(x, y), rel=1e-10)
    r, f = np.array([0, 2, 5, 8]), np.array([1, 3, 6])
    assert unc.SubsetKid(x, y).kid(r, f) == pytest.approx(direct_kid(x[r], y[f]), rel=1e-10)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(4)
    settings = unc.UncertaintySettings(kid_subsets=50, seed=0)
    same = [unc.kid(rng.normal(size=(80, 16)), rng.normal(size=(80, 16)), settings) for _ in range(20)]
    means = np.array([s["mean"] for s in same])
    # the unbiased estimate averages to 0: |mean| within 3 standard errors (a biased V-statistic would not be)
    assert abs(means.mean()) < 3 * means.std(ddof=1) / np.sqrt(len(means))
    assert all(s["std"] > 0 and s["subset_size"] == 40 and s["subsets"] == 50 for s in same)
    other = unc.kid(rng.normal(size=(80, 16)), rng.normal(size=(80, 16)) + 0.7, settings)
    assert other["mean"] > 5 * other["std"] > 0


def test_paired_difference_finds_a_real_difference_and_none_between_identical_sets():
    rng = np.random.default_rng(5)
    d, n = 24, 120
    basis = rng.normal(size=(8, d)) / np.sqrt(8)
    ref = fidmod.statistics(relu_features(rng, n, basis=basis))
    good = relu_features(rng, n, shift=0.1, basis=basis)
    bad = good + 0.4 * np.abs(rng.normal(size=good.shape))  # the same images, each one degraded
    subsets = unc.half_subsets(n, 200, seed=0)
    reps_good, reps_bad = (unc.SubsetFid(ref, a).replicates(subsets) for a in (good, bad))
    fid_good, fid_bad = fidmod.frechet_distance(ref, good), fidmod.frechet_distance(ref, bad)
    diff = unc.paired_difference(fid_good - fid_bad, reps_good, reps_bad)
    assert diff["significant"] and diff["ci"][1] < 0 and diff["p_value"] < 0.01
    same = unc.paired_difference(0.0, reps_good, reps_good)
    assert not same["significant"] and same["p_value"] == 1.0 and same["ci"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="same length"):
        unc.paired_difference(0.0, reps_good, reps_good[:-1])


def test_prdc_of_a_set_with_itself_is_perfect_and_of_a_far_set_is_zero():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(60, 12))
    same = unc.prdc_metrics(x, x.copy(), 5)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0 and same["nearest_k"] == 5
    far = unc.prdc_metrics(x, x + 100, 5)
    assert far["precision"] == far["recall"] == far["coverage"] == 0.0
    with pytest.raises(ValueError, match="more than 5 images"):
        unc.prdc_metrics(x[:5], x[:5], 5)


def test_score_uncertainty_needs_the_reference_features():
    rng = np.random.default_rng(7)
    acts = relu_features(rng, 30)
    with pytest.raises(ValueError, match="no features"):
        unc.score_uncertainty(fidmod.statistics(acts), acts, unc.UncertaintySettings(replicates=10))
    out = unc.score_uncertainty(fidmod.statistics(acts, keep_features=True), acts,
                                unc.UncertaintySettings(replicates=10))
    assert set(out) >= {"fid_ci", "fid_se", "fid_resamples", "kid", "prdc", "uncertainty"}
    assert out["fid_ci"][0] == 0.0 < out["fid_ci"][1]  # FID 0 (the set with itself): the interval stops at 0


def test_settings_reject_non_positive_counts():
    with pytest.raises(ValueError, match="replicates must be a positive count"):
        unc.UncertaintySettings(replicates=0)
    assert unc.UncertaintySettings().id != unc.UncertaintySettings(seed=1).id


def test_tiny_sets_skip_what_cannot_be_resampled():
    rng = np.random.default_rng(8)
    acts = relu_features(rng, 3)
    out = unc.score_uncertainty(fidmod.statistics(acts, keep_features=True), acts, unc.UncertaintySettings())
    assert out == {"uncertainty_skipped": "3 images: the interval and KID need at least 4"}
    acts = relu_features(rng, 5)
    out = unc.score_uncertainty(fidmod.statistics(acts, keep_features=True), acts, unc.UncertaintySettings())
    assert out["prdc"] is None and len(out["fid_ci"]) == 2
