"""Data loading for the lab: image folders in the course layout, validated with clear errors.

Layout (built by ``maskgit-prepare-data`` (maskgit_kit/prepare_data.py))::

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
from torch.utils.data import Dataset

from maskgit_kit.device import resolve_device  # noqa: F401  (the scripts import it from here)
from maskgit_kit.images import IMAGE_SIZE, DataError, image_to_tensor, list_images, read_image, tensor_to_image  # noqa: F401
from maskgit_kit.paths import DATA_ROOT as DEFAULT_DATA_ROOT  # noqa: F401


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
