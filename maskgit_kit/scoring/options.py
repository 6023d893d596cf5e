"""The benchmark and FID options that score, baselines and leaderboard share, and the feature extractor they ask
for."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..device import resolve_device
from ..paths import DEFAULT_CACHE_DIR, DEFAULT_GT_PATH, DEFAULT_MASK_PATH
from .fid import BACKENDS, FID_DIMS, PRECISIONS, InceptionFeatures
from .uncertainty import UncertaintySettings


def add_scoring_args(parser: argparse.ArgumentParser) -> None:
    """The benchmark and FID options shared by score.py, baselines.py and leaderboard.py."""
    parser.add_argument("--gt-path", type=Path, default=DEFAULT_GT_PATH, help="ground-truth images")
    parser.add_argument("--mask-path", type=Path, default=DEFAULT_MASK_PATH,
                        help="masks (mask_000.png ..; 0 = hole) for the hole-only metrics")
    parser.add_argument("--dims", type=int, default=2048, choices=FID_DIMS,
                        help="Inception feature size for FID (2048 = pool3, the standard FID)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="Inception arithmetic; bf16 is faster on CPUs with native bf16 but moves FID "
                             "by about 1.5 %% (not for grading)")
    parser.add_argument("--fid-backend", default="fast", choices=BACKENDS,
                        help="fast: exact trace via a symmetric eigenproblem; pytorch-fid: its "
                             "calculate_frechet_distance (scipy sqrtm, 20-80 s on 2 cores)")
    parser.add_argument("--batch-size", type=int, default=100,
                        help="images per Inception forward (larger is faster on CPU: 48 -> 96 gave +8 %%)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                        help="where ground-truth FID statistics are cached (under fid_stats/)")
    parser.add_argument("--no-cache", action="store_true", help="recompute ground-truth statistics")


def make_features(args: argparse.Namespace) -> InceptionFeatures:
    """The Inception feature extractor the options ask for (built lazily: nothing is loaded yet)."""
    if args.threads < 0:
        raise SystemExit(f"--threads {args.threads}: expected 0 (default) or a positive count")
    if args.batch_size < 1:
        raise SystemExit(f"--batch-size {args.batch_size}: expected a positive count")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return InceptionFeatures(args.dims, resolve_device(args.device), args.precision, args.batch_size)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def add_uncertainty_args(parser: argparse.ArgumentParser, replicates: int = UncertaintySettings.replicates) -> None:
    """The FID interval / KID / precision-recall options (score.py, leaderboard.py, compare.py)."""
    parser.add_argument("--no-uncertainty", action="store_true",
                        help="skip the FID interval, KID and precision/recall (about 10 s for 747 images)")
    parser.add_argument("--replicates", type=int, default=replicates,
                        help="half-samples behind the FID interval (and the paired comparisons)")
    parser.add_argument("--seed", type=int, default=UncertaintySettings.seed,
                        help="seed of the half-samples and KID subsets (the same for every folder: paired)")


def uncertainty_settings(args: argparse.Namespace) -> UncertaintySettings | None:
    """The settings the options ask for, or None with ``--no-uncertainty``; a bad count is one clear error."""
    if getattr(args, "no_uncertainty", False):
        return None
    if args.replicates < 10:
        raise SystemExit(f"--replicates {args.replicates}: expected at least 10")
    if args.seed < 0:
        raise SystemExit(f"--seed {args.seed}: expected a non-negative integer")
    return UncertaintySettings(replicates=args.replicates, seed=args.seed)
