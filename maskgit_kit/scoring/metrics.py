"""PSNR and SSIM (scikit-image), over the whole image and over the hole only.

Why both: an inpainting method only changes the hole, so whole-image numbers are diluted by the ~75 % of
pixels that are copied from the input; the hole-only numbers show the difference between methods.
Per-image values are averaged over the set (the usual convention for PSNR/SSIM tables).
"""
from __future__ import annotations

import math

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

DATA_RANGE = 255
PSNR_CAP = 100.0  # dB for identical images: one 8-bit step in one pixel of a 64x64x3 image is already ~89 dB


def psnr(gt: np.ndarray, pred: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays of the same shape; ``PSNR_CAP`` when they are identical (not inf)."""
    if np.array_equal(gt, pred):
        return PSNR_CAP
    return min(PSNR_CAP, float(peak_signal_noise_ratio(gt, pred, data_range=DATA_RANGE)))


def ssim_map(gt: np.ndarray, pred: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean SSIM and the full SSIM map (H, W, 3) of two uint8 (H, W, 3) images (skimage defaults, 7x7)."""
    mssim, smap = structural_similarity(gt, pred, data_range=DATA_RANGE, channel_axis=-1, full=True)
    return float(mssim), smap


def image_metrics(gt: np.ndarray, pred: np.ndarray, hole: np.ndarray) -> tuple[float, float, float, float]:
    """(psnr, ssim, psnr_hole, ssim_hole) of one image; hole values are NaN when the mask has no hole.

    Hole SSIM averages the full SSIM map over the hole pixels, so each hole pixel's SSIM still sees its
    7x7 neighbourhood (including known pixels at the hole's border), as a whole-image SSIM would.
    """
    p, (s, smap) = psnr(gt, pred), ssim_map(gt, pred)
    if not hole.any():
        return p, s, math.nan, math.nan
    return p, s, psnr(gt[hole], pred[hole]), float(smap[hole].mean())


def pixel_metrics(gt: np.ndarray, pred: np.ndarray, holes: np.ndarray) -> dict[str, float | None]:
    """Set averages of ``image_metrics`` over uint8 (N, H, W, 3) arrays and bool (N, H, W) holes (True = hole).

    Returns ``psnr``, ``ssim``, ``psnr_hole``, ``ssim_hole`` (hole means skip images without a hole; None
    when no image has one).
    """
    if gt.shape != pred.shape or gt.shape[:3] != holes.shape:
        raise ValueError(f"shape mismatch: gt {gt.shape}, pred {pred.shape}, holes {holes.shape}")
    per_image = np.array([image_metrics(g, p, h) for g, p, h in zip(gt, pred, holes, strict=True)],
                         dtype=np.float64)  # (N, 4)
    means = {}
    for col, name in enumerate(("psnr", "ssim", "psnr_hole", "ssim_hole")):
        values = per_image[:, col]
        values = values[~np.isnan(values)]
        means[name] = float(values.mean()) if values.size else None
    return means
