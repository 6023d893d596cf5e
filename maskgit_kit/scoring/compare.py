"""Is result folder A better than B? A paired comparison of two methods on the same test images.

Usage::

    maskgit-compare solutions/test_results .cache/baselines/biharmonic
    maskgit-compare A B --json compare.json --replicates 1000

Both folders are validated against the same ground truth (same names, so image i of A and image i of B inpaint
the same test image) and scored against the same ground-truth statistics. The differences FID(A) - FID(B) and
KID(A) - KID(B) are resampled over image indices, the same random half of the images for A and for B in each
replicate (half-sampling, see ``uncertainty.py``: the ordinary bootstrap with replacement is biased for FID at this
size). Reported: each difference, its 95 % interval and a two-sided p-value (how often the resampling noise of the
difference alone is as large as the difference seen), and a verdict on FID: "A better than B (significant at
5 %)" when the interval lies below 0, "B better than A ..." above 0, otherwise "no significant difference".
Lower is better for both FID and KID.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_json
from ..paths import DEFAULT_CACHE_DIR, DEFAULT_GT_PATH, DEFAULT_MASK_PATH
from .fid import FidUnavailable, InceptionFeatures, frechet_distance
from .options import add_scoring_args, make_features, uncertainty_settings
from .scorer import prepare_reference
from .uncertainty import (
    LEVEL,
    METHOD,
    SubsetFid,
    UncertaintySettings,
    half_subsets,
    kid_half_replicates,
    paired_difference,
)
from .validation import SubmissionError, benchmark_from_ground_truth, load_images

DEFAULT_REPLICATES = 1000  # a p-value resolution of 0.001; about 0.05 s per replicate and folder for 747 images


def verdict(fid_diff: dict[str, Any], level: float = LEVEL) -> str:
    """One line: which folder is better on FID, and whether the difference is significant."""
    alpha = round(100 * (1 - level))
    if fid_diff["ci"][1] < 0:
        return f"A better than B (significant at {alpha} %)"
    if fid_diff["ci"][0] > 0:
        return f"B better than A (significant at {alpha} %)"
    return f"no significant difference (at {alpha} %)"


def compare_features(ref_stats, acts_a: np.ndarray, acts_b: np.ndarray, settings: UncertaintySettings,
                     backend: str = "fast") -> dict[str, Any]:
    """The paired comparison from the two folders' features (same n, same image order) and the reference."""
    if acts_a.shape != acts_b.shape:
        raise ValueError(f"the folders' features differ in shape: {acts_a.shape} vs {acts_b.shape}")
    subsets = half_subsets(len(acts_a), settings.replicates, settings.seed)
    fid_a, fid_b = frechet_distance(ref_stats, acts_a, backend), frechet_distance(ref_stats, acts_b, backend)
    reps_a, reps_b = SubsetFid(ref_stats, acts_a).replicates(subsets), SubsetFid(ref_stats, acts_b).replicates(subsets)
    kid_a, kreps_a = kid_half_replicates(ref_stats.features, acts_a, subsets)
    kid_b, kreps_b = kid_half_replicates(ref_stats.features, acts_b, subsets)
    return {
        "fid": {"a": fid_a, "b": fid_b, **paired_difference(fid_a - fid_b, reps_a, reps_b)},
        "kid": {"a": kid_a, "b": kid_b, **paired_difference(kid_a - kid_b, kreps_a, kreps_b)},
        "method": METHOD, "seed": settings.seed, "n": len(acts_a),
    }


def run_compare(folder_a: str | Path, folder_b: str | Path, gt_dir: str | Path = DEFAULT_GT_PATH,
                mask_dir: str | Path = DEFAULT_MASK_PATH, features: InceptionFeatures | None = None,
                cache_dir: str | Path | None = DEFAULT_CACHE_DIR, backend: str = "fast",
                settings: UncertaintySettings | None = None) -> dict[str, Any]:
    """Validate both folders (before any model is loaded), then score and compare them."""
    start = time.perf_counter()
    settings = settings or UncertaintySettings(replicates=DEFAULT_REPLICATES)
    bench = benchmark_from_ground_truth(gt_dir)
    pred_a, pred_b = load_images(folder_a, bench), load_images(folder_b, bench)
    features = features or InceptionFeatures()
    ref = prepare_reference(gt_dir, mask_dir, features, cache_dir)
    t0 = time.perf_counter()
    acts_a, acts_b = features(pred_a), features(pred_b)
    t1 = time.perf_counter()
    result = compare_features(ref.stats, acts_a, acts_b, settings, backend)
    t2 = time.perf_counter()
    result["verdict"] = verdict(result["fid"])
    return {"a": str(folder_a), "b": str(folder_b), "gt_path": str(ref.gt_dir), "fid_dims": features.dims,
            **result, "timing": {"reference_s": ref.seconds, "inception_s": t1 - t0, "resampling_s": t2 - t1,
                                 "total_s": time.perf_counter() - start}}


def format_comparison(result: dict[str, Any]) -> str:
    def row(name: str, d: dict[str, Any], scale: float, spec: str) -> str:
        lo, hi = (scale * v for v in d["ci"])
        return (f"  {name:<12} A {scale * d['a']:{spec}}  B {scale * d['b']:{spec}}  "
                f"A - B {scale * d['difference']:+{spec}}  {round(100 * d['level'])} % interval "
                f"[{lo:+{spec}}, {hi:+{spec}}]  p = {d['p_value']:.3f}")

    return "\n".join([
        f"A: {result['a']}",
        f"B: {result['b']}",
        f"paired over {result['n']} images ({result['fid']['replicates']} random halves, seed {result['seed']}), "
        f"against {result['gt_path']}",
        row(f"FID ({result['fid_dims']}-d)", result["fid"], 1, ".2f"),
        row("KID (x 1000)", result["kid"], 1000, ".3f"),
        f"verdict: {result['verdict']}",
    ])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("a", type=Path, help="result folder A (image_000.png ..)")
    parser.add_argument("b", type=Path, help="result folder B, on the same test images")
    parser.add_argument("--json", type=Path, default=None, help="also write the comparison to this JSON file")
    parser.add_argument("--replicates", type=int, default=DEFAULT_REPLICATES, help="random halves resampled")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random halves")
    add_scoring_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = uncertainty_settings(args)  # a bad count or seed: one clear error before any work
    try:
        features = make_features(args)
        result = run_compare(args.a, args.b, args.gt_path, args.mask_path, features,
                             None if args.no_cache else args.cache_dir, args.fid_backend,
                             settings)
    except SubmissionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FidUnavailable as exc:
        print(f"error: FID weights unavailable: {exc}", file=sys.stderr)
        return 1
    print(format_comparison(result))
    if args.json is not None:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
