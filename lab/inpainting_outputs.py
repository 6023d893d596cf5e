"""The three output folders of ``inpainting.py`` (given code), written all or nothing.

    test_results/image_{i:03d}.png   the inpainted 64x64 image i (same numbering as the test files)
    mask_scheduling/test_{i}.png     the latent mask before decoding and after each step (white = known)
    imga/test_{i}.png                the masked input, then the decoded image after each step

Why staged: the folders are filled in a staging folder and swapped in only when every image is done
(``maskgit_kit.atomic.replacing_dirs``), so an error half-way leaves the previous results complete.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.utils import save_image

from maskgit_kit import atomic
from utils import tensor_to_image

OUTPUT_DIRS = ("test_results", "mask_scheduling", "imga")
SETTINGS_FILE = "test_results.json"


class OutputError(ValueError):
    """The output folder cannot take the results (found before any work is done)."""


def check_output_dir(root, flag: str = "--output-dir") -> Path:
    """Raise ``OutputError`` naming ``flag`` and the path unless ``root`` can take the outputs: a real folder (or one
    that can be made) that this user may write, whose ``test_results/``, ``mask_scheduling/``, ``imga/`` are folders
    and ``test_results.json`` a file where they exist, none of them a symbolic link (the results are swapped in by
    renaming, so a link would be replaced, not written through). Called before the model is loaded."""
    root = Path(root)
    if root.is_symlink():
        raise OutputError(f"{flag} {root}: is a symbolic link (to {os.readlink(root)}); give the real folder")
    if root.exists() and not root.is_dir():
        raise OutputError(f"{flag} {root}: is a file, not a folder")
    existing = root
    while not existing.exists():  # a folder to be made: its nearest existing parent must be a writable folder
        if existing.is_symlink():
            raise OutputError(f"{flag} {root}: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{flag} {root}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {root}: {existing} is not writable")
    for name in (*OUTPUT_DIRS, SETTINGS_FILE):
        path = root / name
        if path.is_symlink():
            raise OutputError(f"{flag} {root}: {name} is a symbolic link (to {os.readlink(path)}); remove it")
        if path.exists() and path.is_dir() != (name != SETTINGS_FILE):
            kind = "a folder" if path.is_dir() else "a file"
            raise OutputError(f"{flag} {root}: {name} is {kind}, expected {'a file' if path.is_dir() else 'a folder'}")
    return root


class InpaintingOutputs:
    """``with InpaintingOutputs(folder, image_size, latent_size) as out: out.save(i, ...)`` for every image."""

    def __init__(self, root, image_size: int, latent_size: int):
        self.root = Path(root)
        self.image_size, self.latent_size = image_size, latent_size
        self._replacing = None
        self._staging: Path | None = None

    def __enter__(self) -> InpaintingOutputs:
        check_output_dir(self.root)
        self._replacing = atomic.replacing_dirs(self.root, OUTPUT_DIRS)
        self._staging = self._replacing.__enter__()
        for name in OUTPUT_DIRS:
            (self._staging / name).mkdir()
        return self

    def __exit__(self, *exc) -> bool:
        self._staging = None
        return bool(self._replacing.__exit__(*exc))

    def save(self, i: int, output: torch.Tensor, masks: list[torch.Tensor], steps: list[torch.Tensor]) -> None:
        """Write test image ``i``: ``output`` float (3, H, W) in [-1, 1]; ``masks`` bool (N,) each, True = masked,
        before the first step and after each; ``steps`` float (3, H, W) in [-1, 1] each, the masked input first
        (nothing is written to imga/ when ``steps`` is empty)."""
        stage, h = self._staging, self.latent_size
        Image.fromarray(tensor_to_image(output)).save(stage / "test_results" / f"image_{i:03d}.png")
        if masks[0].numel() == h * h:
            grid = torch.stack([(~m).float().view(1, h, h) for m in masks])
            grid = F.interpolate(grid, size=self.image_size, mode="nearest")
        else:  # 1D tokens (TiTok): no place in the image; each mask drawn as a strip of its K tokens
            grid = torch.stack([(~m).float().view(1, 1, -1) for m in masks])
            grid = F.interpolate(grid, size=(max(1, self.image_size // 8), self.image_size), mode="nearest")
        save_image(grid, stage / "mask_scheduling" / f"test_{i}.png", nrow=len(masks), padding=1)
        if steps:
            seq = torch.stack([s.cpu() for s in steps])
            save_image(seq.add(1).div(2), stage / "imga" / f"test_{i}.png", nrow=len(seq), padding=1)

    def write_settings(self, settings: dict) -> None:
        """``test_results.json`` beside the folders: the flags and settings of this run."""
        atomic.write_text(self.root / SETTINGS_FILE, json.dumps(settings, indent=2, default=str))
