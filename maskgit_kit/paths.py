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

# The benchmark's named test splits: the same 747 ground-truth images under different masks (maskgit-prepare-data
# writes them). "strokes" is the course-like test split (thin free-form holes); the others hide much more, where
# MaskGIT's mask schedule and number of steps matter.
SPLITS = {
    "strokes": "thin free-form strokes, about 22 % of the pixels (the course's kind of holes)",
    "box": "one large box, about half of the image",
    "outpaint-half": "one half of the image hidden (left, right, top or bottom)",
    "outpaint-border": "everything but the central 32x32 square hidden (outpainting)",
    "generation": "every pixel hidden (generation from nothing)",
}
SPLITS_ROOT = DATA_ROOT / "splits"


def split_paths(name: str, data_root: Path = DATA_ROOT) -> tuple[Path, Path]:
    """(masked_image folder, mask64 folder) of the named test split; ``ValueError`` naming the choices."""
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
    base = data_root if name == "strokes" else data_root / "splits" / name
    return base / "masked_image", base / "mask64"
