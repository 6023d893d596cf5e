"""Image files of the benchmark: listing, reading with a clear error, and converting to and from tensors.

Shared by the lab's data loaders, the scoring and the tools, so that every part of the kit refuses a bad file
with the same message (the file's path and what was expected).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SIZE = 64
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class DataError(ValueError):
    """A data folder or file is missing or not in the expected format."""


def list_images(folder: str | Path, what: str = "images") -> list[Path]:
    """Sorted image files of ``folder``; raises if the folder is missing or holds no images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{folder}: no {what} found (expected *.png files)")
    return files


def read_image(path: Path, mode: str = "RGB", size: int = IMAGE_SIZE, data: bytes | None = None) -> np.ndarray:
    """Read one image as a uint8 array, insisting on ``mode`` and ``size`` x ``size``.

    ``data``: the file's bytes, already read (by a caller that checked what kind of file it is); ``path`` then
    only names it in messages. Size and mode are checked from the header, before any pixel is decoded, so a
    huge or exotic file costs nothing. Every failure is one ``DataError`` naming ``path``.
    """
    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as img:
            found_mode, found_size = img.mode, img.size
            if found_size != (size, size):
                raise DataError(f"{path}: expected {size}x{size} pixels, found {found_size[0]}x{found_size[1]}")
            if found_mode != mode:
                raise DataError(f"{path}: expected image mode {mode}, found {found_mode}")
            img.load()
            arr = np.asarray(img)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types on a corrupt or truncated file
        raise DataError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from None
    if arr.dtype != np.uint8 or arr.shape[:2] != (size, size):  # e.g. a mode whose decoder yields no 8-bit array
        raise DataError(f"{path}: unreadable image (decoded to {arr.dtype} {arr.shape})")
    return arr


def image_to_tensor(arr: np.ndarray):
    """uint8 (H, W, 3) -> float (3, H, W) in [-1, 1]."""
    import torch

    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(127.5).sub(1.0)


def tensor_to_image(x) -> np.ndarray:
    """float (3, H, W) in [-1, 1] -> uint8 (H, W, 3); values outside the range are clipped."""
    return x.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()
