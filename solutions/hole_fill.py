"""Smooth the holes of a masked image before the VQGAN tokenizes it.

Why: the test images have their holes painted gray (128, 128, 128). The VQGAN encoder's receptive field is
wider than one 4x4 patch, so the paint leaks into the codes of the *known* tokens around each hole: on the
shipped checkpoints about two thirds of the known tokens next to a hole get a different code than the same
image without paint. The transformer was trained on tokens of clean images and has never seen those codes,
so it reads wrong context. Filling each hole with the harmonic interpolation of its border (Laplace's
equation, a few hundred Jacobi sweeps of a 4-neighbour average) removes the paint's edges; every token that
touches a hole is still masked and regenerated, so the fill never reaches the output directly.

Measured on the first 200 test images (T = 8, cosine, composited, shipped 5-epoch transformer): FID 71.0 with
the gray paint, 57.8 with this fill (scikit-image's biharmonic fill instead: 58.1; biharmonic inpainting
alone: 61.3). ``python inpainting.py --prefill none`` keeps the course's behaviour.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

PREFILLS = ("laplace", "none")


@torch.no_grad()
def laplace_fill(images: torch.Tensor, pixel_masks: torch.Tensor, iterations: int = 200) -> torch.Tensor:
    """Harmonic fill of the holes.

    images: (B, C, H, W); pixel_masks: (B, 1, H, W), 1 = known, 0 = hole. Returns a new tensor equal to
    ``images`` on known pixels; holes start at the image's mean known colour and relax towards the average
    of their 4 neighbours (borders replicated). An image without known pixels is returned unchanged.
    """
    known = (pixel_masks > 0.5).to(images.dtype)
    hole = 1 - known
    count = known.sum(dim=(2, 3), keepdim=True)
    mean = (images * known).sum(dim=(2, 3), keepdim=True) / count.clamp(min=1)
    filled = images * known + mean * hole
    channels = images.shape[1]
    kernel = images.new_tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]])
    kernel = kernel.view(1, 1, 3, 3).repeat(channels, 1, 1, 1)
    fixed = images * known
    for _ in range(iterations):
        neighbours = F.conv2d(F.pad(filled, (1, 1, 1, 1), mode="replicate"), kernel, groups=channels)
        filled = fixed + hole * neighbours
    return torch.where(count > 0, filled, images)


def prefill_holes(images: torch.Tensor, pixel_masks: torch.Tensor, method: str = "laplace") -> torch.Tensor:
    """``images`` with the holes filled by ``method`` (one of ``PREFILLS``; "none" returns them as given)."""
    if method == "none":
        return images
    if method == "laplace":
        return laplace_fill(images, pixel_masks)
    raise ValueError(f"prefill: unknown method {method!r}; expected one of {', '.join(PREFILLS)}")
