"""The kit's default locations, resolved from this file so that every command works from any folder.

The package is installed in editable mode (``pip install -e .``), so ``KIT_ROOT`` is the folder that holds
``maskgit_kit/``, ``data/`` and ``checkpoints/`` (the repository, or a student release).
"""
from __future__ import annotations

from pathlib import Path

KIT_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = KIT_ROOT / "data" / "fashion64"
DEFAULT_GT_PATH = DATA_ROOT / "ground_truth"
DEFAULT_MASK_PATH = DATA_ROOT / "mask64"
DEFAULT_MASKED_PATH = DATA_ROOT / "masked_image"
CHECKPOINTS = KIT_ROOT / "checkpoints"
DEFAULT_CACHE_DIR = KIT_ROOT / ".cache"  # git-ignored
DEFAULT_BASELINES_DIR = DEFAULT_CACHE_DIR / "baselines"
