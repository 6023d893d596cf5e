"""Scoring a result folder against the benchmark: validation, FID, PSNR/SSIM and points together.

``Reference`` is the ground-truth side (images, holes, Inception statistics and features), prepared once and
reused for every folder scored in a process: the leaderboard and the baseline table score many folders per run.
With ``uncertainty`` settings a score also gets the FID's interval, KID and precision/recall (``uncertainty.py``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .fid import InceptionFeatures, Statistics, frechet_distance, reference_statistics
from .metrics import pixel_metrics
from .points import MAX_POINTS, fid_points
from .uncertainty import UncertaintySettings, score_uncertainty
from .validation import Benchmark, benchmark_from_ground_truth, load_holes, load_images

METRICS = ("fid", "psnr", "ssim", "psnr_hole", "ssim_hole")


@dataclass
class Reference:
    """Ground truth, its holes and its cached Inception statistics."""

    gt_dir: Path
    mask_dir: Path
    bench: Benchmark
    images: np.ndarray  # uint8 (N, H, W, 3)
    holes: np.ndarray   # bool (N, H, W), True = hole
    stats: Statistics
    key: str            # cache key of the statistics (ground-truth content + feature settings)
    stats_cached: bool
    seconds: float


def prepare_reference(gt_dir: str | Path, mask_dir: str | Path, features: InceptionFeatures,
                      cache_dir: str | Path | None) -> Reference:
    """Load and check the ground truth and masks, and get its statistics (cached under ``cache_dir``)."""
    start = time.perf_counter()
    gt_dir, mask_dir = Path(gt_dir), Path(mask_dir)
    bench = benchmark_from_ground_truth(gt_dir)
    images = load_images(gt_dir, bench, "ground truth", trusted=True)  # instructor data: links allowed
    holes = load_holes(mask_dir, bench)
    files = [gt_dir / name for name in bench.names]
    stats, key, cached = reference_statistics(files, images, features, cache_dir)
    return Reference(gt_dir, mask_dir, bench, images, holes, stats, key, cached, time.perf_counter() - start)


def score_images(pred: np.ndarray, ref: Reference, features: InceptionFeatures, backend: str = "fast",
                 uncertainty: UncertaintySettings | None = None) -> dict[str, Any]:
    """Metrics of uint8 (N, H, W, 3) results, image i being the inpainting of ground-truth image i.

    ``uncertainty``: also ``fid_ci``, ``fid_se``, ``fid_resamples``, ``kid`` and ``prdc`` from the same features.
    """
    t0 = time.perf_counter()
    acts = features(pred)
    t1 = time.perf_counter()
    fid = frechet_distance(ref.stats, acts, backend)
    t2 = time.perf_counter()
    pix = pixel_metrics(ref.images, pred, ref.holes)
    t3 = time.perf_counter()
    extra = score_uncertainty(ref.stats, acts, uncertainty, fid) if uncertainty is not None else {}
    t4 = time.perf_counter()
    return {
        "fid": fid, **pix, "n": len(pred), "points": fid_points(fid), "max_points": MAX_POINTS,
        "fid_dims": features.dims, "precision": features.precision, "fid_backend": backend, **extra,
        "timing": {"inception_s": t1 - t0, "frechet_s": t2 - t1, "psnr_ssim_s": t3 - t2,
                   "uncertainty_s": t4 - t3},
    }


def score_folder(pred_dir: str | Path, ref: Reference, features: InceptionFeatures,
                 backend: str = "fast", uncertainty: UncertaintySettings | None = None) -> dict[str, Any]:
    """Validate ``pred_dir`` (raises ``SubmissionError`` listing every bad file) and score it."""
    t0 = time.perf_counter()
    pred = load_images(pred_dir, ref.bench)
    load_s = time.perf_counter() - t0
    result = score_images(pred, ref, features, backend, uncertainty)
    result["timing"] = {"load_s": load_s, **result["timing"], "total_s": time.perf_counter() - t0}
    return {"predicted_path": str(pred_dir), "gt_path": str(ref.gt_dir), "mask_path": str(ref.mask_dir), **result}
