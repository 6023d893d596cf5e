"""Score one folder of inpainted test images: FID, PSNR and SSIM (whole image and hole only) and points.

Usage::

    maskgit-score --predicted-path lab/test_results           # or: python -m maskgit_kit.scoring.score ...
    maskgit-score --predicted-path data/fashion64/ground_truth    # sanity check: FID 0, SSIM 1

The folder must hold exactly ``image_000.png`` .. ``image_746.png`` (one per ground-truth image, same
names), each 64x64 RGB; every problem is listed in one error before any scoring work.

Besides FID, the report gives its 95 % interval over the images (half-sampling, see ``uncertainty.py``), KID
(mean and std over subsets) and precision / recall / density / coverage, all from the same Inception features
(``--no-uncertainty`` skips them; they add about 10 s for 747 images). For scale: two disjoint sets of 747 real
test images are about 30 FID apart.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_json
from ..paths import DEFAULT_CACHE_DIR, DEFAULT_GT_PATH, DEFAULT_MASK_PATH
from .fid import FidUnavailable, InceptionFeatures
from .options import add_scoring_args, add_uncertainty_args, make_features, uncertainty_settings
from .points import FLOOR_NOTE, band
from .scorer import prepare_reference, score_images
from .table import fmt, text_table
from .uncertainty import DEFAULT_SETTINGS, UncertaintySettings
from .validation import SubmissionError, benchmark_from_ground_truth, load_images


def run_score(pred_dir: str | Path, gt_dir: str | Path = DEFAULT_GT_PATH, mask_dir: str | Path = DEFAULT_MASK_PATH,
              features: InceptionFeatures | None = None,
              cache_dir: str | Path | None = DEFAULT_CACHE_DIR, backend: str = "fast",
              uncertainty: UncertaintySettings | None = DEFAULT_SETTINGS) -> dict[str, Any]:
    """Everything ``score.py`` does except printing: returns the result dict (with ``timing``).

    ``uncertainty=None`` leaves out the FID interval, KID and precision/recall.

    The folder is validated before the Inception model is loaded, so a malformed submission fails in
    a second. Raises ``SubmissionError`` for a malformed folder (or
    ground truth / masks) and ``FidUnavailable`` without FID weights.
    """
    start = time.perf_counter()
    bench = benchmark_from_ground_truth(gt_dir)
    pred = load_images(pred_dir, bench)
    load_s = time.perf_counter() - start
    features = features or InceptionFeatures()
    features.load()
    model_s = time.perf_counter() - start - load_s
    ref = prepare_reference(gt_dir, mask_dir, features, cache_dir)
    result = score_images(pred, ref, features, backend, uncertainty)
    result = {"predicted_path": str(pred_dir), "gt_path": str(ref.gt_dir), "mask_path": str(ref.mask_dir),
              **result, "gt_stats_cached": ref.stats_cached}
    result["timing"] = {"load_s": load_s, "model_s": model_s, "reference_s": ref.seconds, **result["timing"],
                        "total_s": time.perf_counter() - start}
    return result


def format_result(result: dict[str, Any]) -> str:
    """The readable report: one table (whole image / hole only), the points and the time."""
    rows = [[f"FID ({result['fid_dims']}-d)", fmt(result["fid"], ".2f"), ""]]
    if "fid_ci" in result:
        lo, hi = result["fid_ci"]
        level = round(100 * result["uncertainty"]["level"])
        kid, prdc = result["kid"], result["prdc"]
        rows += [[f"  {level} % interval", f"{lo:.2f} .. {hi:.2f}", ""],
                 ["KID (x 1000)", f"{1000 * kid['mean']:.2f} +- {1000 * kid['std']:.2f}", ""],
                 *([f"{name} (k={prdc['nearest_k']})", fmt(prdc[name], ".3f"), ""]
                   for name in ("precision", "recall", "density", "coverage") if prdc)]
    rows += [["PSNR (dB)", fmt(result["psnr"], ".2f"), fmt(result["psnr_hole"], ".2f")],
             ["SSIM", fmt(result["ssim"], ".4f"), fmt(result["ssim_hole"], ".4f")]]
    t = result["timing"]
    cached = "cached" if result.get("gt_stats_cached") else "computed and cached"
    lines = [
        f"Scored {result['n']} images in {result['predicted_path']}",
        f"against {result['gt_path']} (holes from {result['mask_path']})",
        "",
        text_table(["metric", "whole image", "hole only"], rows),
        "",
        f"points: {result['points']} / {result['max_points']}  ({band(result['fid'])}; {FLOOR_NOTE})",
    ]
    if "uncertainty_skipped" in result:
        lines.append(f"no interval or KID: {result['uncertainty_skipped']}")
    if "fid_ci" in result:
        lines.append(f"interval: FID of random halves of the images (B = {len(result['fid_resamples']['replicates'])}"
                     f", seed {result['fid_resamples']['seed']}); KID: mean +- std over "
                     f"{result['kid']['subsets']} subsets of {result['kid']['subset_size']}")
    lines.append(f"time: {t['total_s']:.1f} s  (model {t['model_s']:.1f}, ground truth {t['reference_s']:.1f} "
                 f"[{cached}], load {t['load_s']:.1f}, Inception {t['inception_s']:.1f} [{result['precision']}], "
                 f"Frechet {t['frechet_s']:.1f}, PSNR/SSIM {t['psnr_ssim_s']:.1f}"
                 + (f", interval/KID/PRDC {t['uncertainty_s']:.1f})" if "fid_ci" in result else ")"))
    return "\n".join(lines)


TARGET_SECONDS = 90  # the budget for the 747-image split on the 2-core CPU, cache warm


def benchmark_scoring(pred_dir: str | Path = DEFAULT_GT_PATH, gt_dir: str | Path = DEFAULT_GT_PATH,
                      mask_dir: str | Path = DEFAULT_MASK_PATH, cache_dir: str | Path = DEFAULT_CACHE_DIR,
                      precision: str = "fp32", dims: int = 2048, backend: str = "fast") -> dict[str, Any]:
    """The bench figure: seconds ``score.py`` spends on ``pred_dir`` with the ground-truth cache warm.

    The cache is warmed first (not timed); the timed run then starts from a fresh, unloaded model as the
    command does (only the interpreter's imports are not counted, about 2 s).
    """
    prepare_reference(gt_dir, mask_dir, InceptionFeatures(dims, precision=precision), cache_dir)
    result = run_score(pred_dir, gt_dir, mask_dir, InceptionFeatures(dims, precision=precision), cache_dir, backend,
                       uncertainty=None)  # the speed of the network and the FID: the figure tracked over time
    t = result["timing"]
    return {"seconds": round(t["total_s"], 2), "images": result["n"], "target_s": TARGET_SECONDS,
            "within_target": t["total_s"] <= TARGET_SECONDS,
            "inception_images_per_s": round(result["n"] / t["inception_s"], 2), "precision": result["precision"],
            "threads": torch.get_num_threads(), "fid": result["fid"],
            "timing": {k: round(v, 2) for k, v in t.items()}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--predicted-path", type=Path, required=True,
                        help="folder of inpainted images image_000.png .. (e.g. test_results)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    add_scoring_args(parser)
    add_uncertainty_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        features = make_features(args)
        result = run_score(args.predicted_path, args.gt_path, args.mask_path, features,
                           None if args.no_cache else args.cache_dir, args.fid_backend, uncertainty_settings(args))
    except SubmissionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FidUnavailable as exc:
        print(f"error: FID weights unavailable: {exc}", file=sys.stderr)
        return 1
    print(format_result(result))
    if args.json is not None:
        existed = args.json.exists()
        write_json(args.json, result)
        print(f"{'replaced' if existed else 'wrote'} {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
