"""Data loading for the lab: image folders in the course layout, validated with clear errors.

Layout (built by ``tools/prepare_data.py``)::

    data/fashion64/train/*.png            64x64 RGB training images
    data/fashion64/val/*.png              64x64 RGB validation images
    data/fashion64/masked_image/image_000.png ...   test images, holes painted (128, 128, 128)
    data/fashion64/mask64/mask_000.png ...          8-bit gray masks: 0 = hole, 255 = known
    data/fashion64/ground_truth/image_000.png ...   the unmasked test images (for FID / PSNR / SSIM)

Images are returned as float tensors in [-1, 1] (the VQGAN's range); masks as float tensors in {0, 1}
with 1 = known pixel, shape (1, H, W).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_ROOT = REPO_ROOT / "data" / "fashion64"
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


def read_image(path: Path, mode: str = "RGB", size: int = IMAGE_SIZE) -> np.ndarray:
    """Read one image as uint8 array, insisting on ``mode`` and ``size`` x ``size``."""
    try:
        with Image.open(path) as img:
            img.load()
            found_mode, found_size = img.mode, img.size
            arr = np.asarray(img)
    except Exception as exc:
        raise DataError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from None
    if found_size != (size, size):
        raise DataError(f"{path}: expected {size}x{size} pixels, found {found_size[0]}x{found_size[1]}")
    if found_mode != mode:
        raise DataError(f"{path}: expected image mode {mode}, found {found_mode}")
    return arr


def image_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, H, W) in [-1, 1]."""
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(127.5).sub(1.0)


def tensor_to_image(x: torch.Tensor) -> np.ndarray:
    """float (3, H, W) in [-1, 1] -> uint8 (H, W, 3); values outside the range are clipped."""
    return x.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()


class LoadTrainData(Dataset):
    """Images of one folder (``train/`` or ``val/``) as (3, 64, 64) float tensors in [-1, 1].

    ``partial`` < 1 keeps the first fraction of the sorted files (quick experiments).
    """

    def __init__(self, root: str | Path, partial: float = 1.0, image_size: int = IMAGE_SIZE):
        if not 0 < partial <= 1:
            raise DataError(f"partial must be in (0, 1], got {partial}")
        files = list_images(root, "training images")
        self.files = files[: max(1, int(len(files) * partial))]
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        return image_to_tensor(read_image(self.files[i], "RGB", self.image_size))


_INDEX = re.compile(r"(\d+)$")


def _index_of(path: Path) -> int | None:
    m = _INDEX.search(path.stem)
    return int(m.group(1)) if m else None


class LoadTestData(Dataset):
    """Masked test images paired with their masks: item ``i`` = (image (3,H,W), mask (1,H,W), index).

    Pairs are matched by the number in the file name (``image_007.png`` <-> ``mask_007.png``); a mask
    without its image, or an image without its mask, is an error naming the file.
    """

    def __init__(self, image_root: str | Path, mask_root: str | Path, image_size: int = IMAGE_SIZE):
        images = list_images(image_root, "masked test images")
        masks = list_images(mask_root, "test masks")
        by_index_img = {_index_of(p): p for p in images}
        by_index_mask = {_index_of(p): p for p in masks}
        for p in images + masks:
            if _index_of(p) is None:
                raise DataError(f"{p}: file name must end in a number (image_000.png / mask_000.png)")
        lonely_masks = sorted(set(by_index_mask) - set(by_index_img))
        if lonely_masks:
            raise DataError(f"{by_index_mask[lonely_masks[0]]}: mask without its image in {image_root}")
        lonely_imgs = sorted(set(by_index_img) - set(by_index_mask))
        if lonely_imgs:
            raise DataError(f"{by_index_img[lonely_imgs[0]]}: image without its mask in {mask_root}")
        self.indices = sorted(by_index_img)
        self.image_files = [by_index_img[i] for i in self.indices]
        self.mask_files = [by_index_mask[i] for i in self.indices]
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        img = image_to_tensor(read_image(self.image_files[i], "RGB", self.image_size))
        mask = read_image(self.mask_files[i], "L", self.image_size)
        return img, torch.from_numpy((mask >= 128).astype(np.float32))[None], self.indices[i]

    def validate(self) -> None:
        """Read every file once so that a bad one fails before any output is written."""
        for i in range(len(self)):
            self[i]


def LoadMaskData(root: str | Path, image_size: int = IMAGE_SIZE) -> list[torch.Tensor]:
    """All masks of a folder as (1, H, W) float tensors in {0, 1} (1 = known), sorted by name."""
    return [torch.from_numpy((read_image(p, "L", image_size) >= 128).astype(np.float32))[None]
            for p in list_images(root, "masks")]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name != "cpu" and not name.startswith("cuda"):
        raise SystemExit(f"--device {name}: expected auto, cpu or cuda")
    return torch.device(name)
