"""Repository locations and defaults, resolved from this file so that scripts work from any cwd."""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS_DIR = REPO_ROOT / "solutions"
TOOLS_DIR = REPO_ROOT / "tools"
DATA_ROOT = REPO_ROOT / "data" / "fashion64"
DEFAULT_GT_PATH = DATA_ROOT / "ground_truth"
DEFAULT_MASK_PATH = DATA_ROOT / "mask64"
DEFAULT_MASKED_PATH = DATA_ROOT / "masked_image"
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache"  # git-ignored
DEFAULT_BASELINES_DIR = DEFAULT_CACHE_DIR / "baselines"


def add_to_sys_path(*folders: Path) -> None:
    """Make ``solutions/`` (``import utils``, ``models``) and ``tools/`` importable, as the kit's scripts do."""
    for folder in folders:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))

