"""Build the lab's 64x64 inpainting benchmark: train/val images, and a test split with free-form masks.

Two sources:

* ``fashion-mnist``: Debian's ``/usr/share/datasets/fashion-mnist/*-ubyte.gz`` (torchvision's download
  where that package is missing). train/val are drawn, disjoint, from the 60k training set; test from t10k.
  28x28 gray is upsampled to 64x64 with PIL's bicubic filter and replicated to RGB.
* ``folder SRC_DIR``: any folder of images (any size/mode), converted to RGB, centre-cropped to a square
  and resized to 64x64 with antialiasing. Hidden files and folders (any path component starting with ``.``:
  ``.ipynb_checkpoints/``, ``.git/``, macOS ``._*`` files) are skipped, and so is everything under ``--out``
  when it lies inside the source folder (the kit's own outputs are never ingested). Bit depths: 16-bit
  images (PIL modes ``I;16*``, and ``I`` with values in 0..65535) are scaled by 255/65535 (rounded, the same
  as ``v >> 8`` up to rounding); float images (mode ``F``, e.g. a float TIFF) must hold values in [0, 1]
  and are scaled by 255; a float image outside [0, 1] (or with NaN) and an ``I`` image outside 0..65535 are
  refused, naming the file, since their range is not defined.

Layout written under ``--out`` (the one ``solutions/utils.py`` reads)::

    train/00000.png ...              val/00000.png ...
    ground_truth/image_000.png ...   unmasked test images
    mask64/mask_000.png ...          8-bit L masks, 0 = hole, 255 = known
    masked_image/image_000.png ...   test images with holes painted exactly (128, 128, 128)
    meta.json, README.md             provenance: source, seed, counts, mask coverage, class labels

Class labels (for class-conditional MaskGIT and the generation classifier): Fashion-MNIST's ten labels, or, for
a folder whose images all lie in first-level sub-folders, one class per sub-folder (sorted names). ``meta.json``
holds ``classes`` (the names, id = position) and ``splits.<split>.labels``: one id per image, in file order
(``train/00000.png`` is entry 0; ``image_{i:03d}.png`` of every test folder is entry i).

Everything is a deterministic function of the source and ``--seed``: the split selection does not depend
on which splits are generated, and mask ``i`` depends only on (seed, i). Each split is written to a
temporary folder and moved into place, so an interrupted run never leaves a half-written split.

Part of the package so that a student hand-out can build its own train/val splits offline (it needs only
Debian's ``dataset-fashion-mnist``, or a network for torchvision's download). Usage::

    maskgit-prepare-data fashion-mnist --out data/fashion64            # about a minute
    maskgit-prepare-data folder ~/photos --out data/photos64 --n-test 100
    maskgit-prepare-data masks --data data/fashion64      # the large-hole splits under splits/
"""
from __future__ import annotations

import argparse
import gzip
import itertools
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from . import atomic

IMAGE_SIZE = 64
HOLE_VALUE = 128
COVERAGE_RANGE = (0.15, 0.35)
SPLITS = ("train", "val", "test")
TEST_DIRS = ("ground_truth", "mask64", "masked_image")
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_FASHION_COPYRIGHT = Path("/usr/share/doc/dataset-fashion-mnist/copyright")
FASHION_FILES = {"train": "train-images-idx3-ubyte.gz", "test": "t10k-images-idx3-ubyte.gz"}
FASHION_LABEL_FILES = {"train": "train-labels-idx1-ubyte.gz", "test": "t10k-labels-idx1-ubyte.gz"}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
FASHION_DEFAULT_COUNTS = {"train": 12000, "val": 3000, "test": 747}
DEFAULT_DOWNLOAD_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torchvision-datasets"

FASHION_LICENSE = """\
Fashion-MNIST
https://github.com/zalandoresearch/fashion-mnist
Han Xiao, Kashif Rasul, Roland Vollgraf. "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
Learning Algorithms". arXiv:1708.07747, 2017.

The images in this folder are derived from Fashion-MNIST (upsampled from 28x28 to 64x64, replicated to
RGB; masks and masked images added). They are distributed under the same licence:

The MIT License (MIT)

Copyright (c) 2017 Zalando SE

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


class PrepareError(RuntimeError):
    """Bad source data or a refused overwrite; the message names the file or folder."""


# ----------------------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------------------

def _read_idx_bytes(path: Path) -> bytes:
    """The bytes of an MNIST-style idx file, gunzipped when it ends in .gz; one error naming it when unreadable."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as exc:
        raise PrepareError(f"{path}: cannot read idx file ({exc})") from None


def read_idx_images(path: str | Path) -> np.ndarray:
    """Images of an MNIST-style ``idx3-ubyte`` file (optionally gzipped) as uint8 (N, H, W)."""
    path = Path(path)
    raw = _read_idx_bytes(path)
    if len(raw) < 16 or raw[:4] != b"\x00\x00\x08\x03":
        raise PrepareError(f"{path}: not an idx3-ubyte image file (magic {raw[:4].hex()!r}, expected 00000803)")
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    if len(raw) != 16 + n * h * w:
        raise PrepareError(f"{path}: header says {n}x{h}x{w} images, file holds {len(raw) - 16} pixel bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, h, w)


def read_idx_labels(path: str | Path, n_images: int) -> np.ndarray:
    """Labels of an MNIST-style ``idx1-ubyte`` file (optionally gzipped) as uint8 (N,), checked against the images."""
    path = Path(path)
    raw = _read_idx_bytes(path)
    if len(raw) < 8 or raw[:4] != b"\x00\x00\x08\x01":
        raise PrepareError(f"{path}: not an idx1-ubyte label file (magic {raw[:4].hex()!r}, expected 00000801)")
    n = int.from_bytes(raw[4:8], "big")
    if len(raw) != 8 + n or n != n_images:
        raise PrepareError(f"{path}: holds {len(raw) - 8} labels (header {n}); its images file has {n_images}")
    return np.frombuffer(raw, dtype=np.uint8, offset=8)


def load_fashion_mnist(source_dir: str | Path = DEBIAN_FASHION_DIR,
                       download_root: str | Path = DEFAULT_DOWNLOAD_ROOT
                       ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, str]:
    """Images {'train': (60000,28,28), 'test': (10000,28,28)} uint8, their labels {'train': (60000,), ...} (None
    when the label files are missing) and a description of where they came from.

    Debian's files are preferred (offline); torchvision's download is the fallback where they are absent.
    """
    source_dir = Path(source_dir)
    paths = {k: source_dir / v for k, v in FASHION_FILES.items()}
    if all(p.is_file() for p in paths.values()):
        arrays = {k: read_idx_images(p) for k, p in paths.items()}
        label_paths = {k: source_dir / v for k, v in FASHION_LABEL_FILES.items()}
        labels = None
        if all(p.is_file() for p in label_paths.values()):
            labels = {k: read_idx_labels(p, len(arrays[k])) for k, p in label_paths.items()}
        else:
            print(f"warning: no label files in {source_dir}; the splits get no class labels", file=sys.stderr)
        return arrays, labels, str(source_dir)
    missing = [str(p) for p in paths.values() if not p.is_file()]
    print(f"Fashion-MNIST not found locally ({', '.join(missing)}); trying torchvision's download into "
          f"{download_root}", file=sys.stderr)
    try:
        from torchvision.datasets import FashionMNIST
        sets = {k: FashionMNIST(str(download_root), train=(k == "train"), download=True) for k in FASHION_FILES}
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError; bad archives raise RuntimeError
        raise PrepareError(
            f"Fashion-MNIST: {', '.join(missing)} missing and torchvision's download failed "
            f"({type(exc).__name__}: {exc}). Install Debian's dataset-fashion-mnist package or pass "
            f"--source-dir with train-images-idx3-ubyte.gz and t10k-images-idx3-ubyte.gz") from None
    arrays = {k: d.data.numpy() for k, d in sets.items()}
    labels = {k: d.targets.numpy().astype(np.uint8) for k, d in sets.items()}
    return arrays, labels, f"torchvision download ({download_root})"


def fashion_to_rgb64(img28: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """uint8 (28, 28) gray -> uint8 (size, size, 3): PIL bicubic upsampling, gray replicated to RGB."""
    return np.asarray(Image.fromarray(img28, mode="L").resize((size, size), Image.Resampling.BICUBIC)
                      .convert("RGB"))


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def list_source_images(src_dir: str | Path, exclude: list[str | Path] | tuple = ()) -> list[Path]:
    """Files under ``src_dir`` (recursive, sorted) whose extension PIL knows as an image format.

    Skips hidden entries (any component below ``src_dir`` starting with ``.``) and the subtree of each folder
    in ``exclude`` (the output folder, when it lies inside the source).
    """
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise PrepareError(f"{src_dir}: source folder not found")
    known = {ext.lower() for ext in Image.registered_extensions()}
    excluded = [Path(os.path.realpath(e)) for e in exclude]

    def wanted(p: Path) -> bool:
        if any(part.startswith(".") for part in p.relative_to(src_dir).parts):
            return False
        if p.suffix.lower() not in known or not p.is_file():
            return False
        return not any(_within(Path(os.path.realpath(p)), e) for e in excluded)

    files = sorted(p for p in src_dir.rglob("*") if wanted(p))
    if not files:
        raise PrepareError(f"{src_dir}: no image files found (looked for {', '.join(sorted(known)[:8])}, ...)")
    return files


def to_8bit(img: Image.Image, path: str | Path) -> Image.Image:
    """16-bit and float images as 8-bit ``L``, scaled by their range (module doc); other modes unchanged.

    Raises ``PrepareError`` naming ``path`` when the range is not defined (float outside [0, 1] or NaN, ``I``
    outside 0..65535). PIL's own ``convert`` would clip instead (a 16-bit PNG comes out almost white, a float
    TIFF in [0, 1] almost black).
    """
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img).astype(np.int64)
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise PrepareError(f"{path}: {mode} image with values {lo}..{hi}: only 0..65535 (16-bit) is "
                               f"understood; convert it to 8 or 16 bits first")
        return Image.fromarray(np.round(arr * (255 / 65535)).astype(np.uint8))
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1):
            finite = arr[np.isfinite(arr)]
            span = f"{finite.min():.4g}..{finite.max():.4g}" if finite.size else "none finite"
            nan = ", with NaN/inf" if finite.size < arr.size else ""
            raise PrepareError(f"{path}: float image with values {span}{nan}: only [0, 1] is understood; "
                               f"scale it to [0, 1] (or save it as 8/16-bit) first")
        return Image.fromarray(np.round(arr * 255).astype(np.uint8))
    return img


def load_square_rgb(path: str | Path, size: int = IMAGE_SIZE) -> np.ndarray:
    """Any image file -> uint8 (size, size, 3): EXIF-rotated, 16-bit/float scaled (``to_8bit``), alpha over
    white, centre crop, antialiased resize. Raises ``PrepareError`` naming the file."""
    try:
        with Image.open(path) as img:
            img.load()
            img = to_8bit(ImageOps.exif_transpose(img), path)
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            img = img.convert("RGB")
            # ImageOps.fit crops the largest centred square and resizes with PIL's antialiasing filter.
            img = ImageOps.fit(img, (size, size), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
            return np.asarray(img)
    except PrepareError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types on a corrupt, truncated or exotic file
        raise PrepareError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from None


# ----------------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------------

def mask_rng(seed: int, index: int) -> np.random.Generator:
    """Generator for mask ``index``: depends only on (seed, index), so masks are stable across runs/splits."""
    return np.random.default_rng([seed, 0x6D61736B, index])  # 0x6D61736B = "mask": separate from split RNG


def draw_free_form_mask(rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """One free-form mask (uint8 (size, size), 0 = hole, 255 = known): a few random-walk brush strokes.

    Follows DeepFill v2's free-form generator (Yu et al. 2019) scaled to 64x64: each stroke starts at a
    random point and walks a few segments with random angles and lengths; the brush width is random per
    stroke and round joints avoid gaps between segments.
    """
    scale = size / 64
    canvas = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(2, 5))):  # 2-4 strokes: about 22% holes once kept in range
        width = int(rng.integers(round(4 * scale), round(10 * scale) + 1))
        x, y = rng.uniform(0, size, 2)
        angle = rng.uniform(0, 2 * math.pi)
        for _ in range(int(rng.integers(3, 9))):
            angle += rng.uniform(-math.pi / 2, math.pi / 2)
            length = rng.uniform(4 * scale, 14 * scale)
            nx = float(np.clip(x + length * math.cos(angle), 0, size - 1))
            ny = float(np.clip(y + length * math.sin(angle), 0, size - 1))
            draw.line([(x, y), (nx, ny)], fill=0, width=width)
            r = width / 2
            draw.ellipse([nx - r, ny - r, nx + r, ny + r], fill=0)
            x, y = nx, ny
    return np.asarray(canvas).copy()


def make_mask(seed: int, index: int, size: int = IMAGE_SIZE,
              coverage: tuple[float, float] = COVERAGE_RANGE, max_tries: int = 1000) -> np.ndarray:
    """Mask ``index`` for ``seed``: free-form strokes, redrawn until the hole fraction lies in ``coverage``."""
    rng = mask_rng(seed, index)
    for _ in range(max_tries):
        mask = draw_free_form_mask(rng, size)
        if coverage[0] <= mask_coverage(mask) <= coverage[1]:
            return mask
    raise PrepareError(f"mask {index}: no stroke mask with coverage in {coverage} after {max_tries} tries")


MASK_KINDS = ("box", "outpaint-half", "outpaint-border", "generation")  # the strokes are the test split itself


def make_kind_mask(kind: str, seed: int, index: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """Mask ``index`` of a large-hole split (uint8 (size, size), 0 = hole): a function of (kind, seed, index).

    box: one rectangle covering 40-60 % of the image; outpaint-half: one half (left/right/top/bottom) hidden;
    outpaint-border: all but the central square of half the side hidden; generation: everything hidden.
    """
    rng = np.random.default_rng([seed, 0x6B696E64, MASK_KINDS.index(kind), index])  # "kind": its own stream
    mask = np.full((size, size), 255, np.uint8)
    if kind == "box":
        area = rng.uniform(0.4, 0.6) * size * size
        aspect = rng.uniform(0.6, 1 / 0.6)
        h = int(np.clip(round(math.sqrt(area * aspect)), size // 4, size))
        w = int(np.clip(round(area / h), size // 4, size))
        top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
        mask[top:top + h, left:left + w] = 0
    elif kind == "outpaint-half":
        side = int(rng.integers(4))
        half = size // 2
        region = [np.s_[:, :half], np.s_[:, half:], np.s_[:half, :], np.s_[half:, :]][side]
        mask[region] = 0
    elif kind == "outpaint-border":
        q = size // 4
        mask[:] = 0
        mask[q:size - q, q:size - q] = 255
    elif kind == "generation":
        mask[:] = 0
    else:
        raise PrepareError(f"unknown mask kind {kind!r}; choose from {', '.join(MASK_KINDS)}")
    return mask


def write_mask_splits(data: str | Path, kinds: list[str], seed: int = 0, force: bool = False) -> dict:
    """Large-hole test splits from ``data/ground_truth``: ``data/splits/KIND/{masked_image,mask64}`` per kind.

    Needs only the committed ground truth (no raw data). Returns {kind: {"count", "mask_coverage"}}."""
    data = Path(data)
    gt = data / "ground_truth"
    files = sorted(gt.glob("image_*.png")) if gt.is_dir() else []
    if not files:
        raise PrepareError(f"{gt}: no ground-truth images (image_000.png ...) to mask")
    for kind in kinds:
        if kind not in MASK_KINDS:
            raise PrepareError(f"--kinds {kind}: unknown mask kind; choose from {', '.join(MASK_KINDS)}")
        target = data / "splits" / kind
        if not force and target.is_dir() and any(target.iterdir()):
            raise PrepareError(f"{target}: already holds files; pass --force to replace it")
    stats = {}
    for kind in kinds:
        coverages = []
        with atomic.replacing_dirs(data / "splits", [kind]) as staging:
            for d in ("masked_image", "mask64"):
                (staging / kind / d).mkdir(parents=True)
            for path in files:
                k = int(path.stem.split("_")[1])
                img = np.asarray(Image.open(path).convert("RGB"))
                mask = make_kind_mask(kind, seed, k, img.shape[0])
                coverages.append(mask_coverage(mask))
                _write_png(mask, staging / kind / "mask64" / f"mask_{k:03d}.png", "L")
                _write_png(apply_mask(img, mask), staging / kind / "masked_image" / f"image_{k:03d}.png", "RGB")
        c = np.array(coverages)
        stats[kind] = {"count": len(files), "mask_coverage": {"min": round(float(c.min()), 4),
                                                              "mean": round(float(c.mean()), 4),
                                                              "max": round(float(c.max()), 4)}}
    meta_path = data / "splits" / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta.update({"seed": seed, "ground_truth": "../ground_truth", "mask_convention": "0 = hole, 255 = known",
                 "command": f"maskgit-prepare-data masks --data {data} --seed {seed}"})
    meta.setdefault("kinds", {}).update(stats)
    atomic.write_text(meta_path, json.dumps(meta, indent=1) + "\n")
    return stats


def mask_coverage(mask: np.ndarray) -> float:
    """Fraction of hole pixels (value 0)."""
    return float((mask == 0).mean())


def apply_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copy of ``image`` (H, W, 3) with hole pixels (mask == 0) painted exactly (128, 128, 128)."""
    out = image.copy()
    out[mask == 0] = HOLE_VALUE
    return out


# ----------------------------------------------------------------------------------------------------
# Splits and writing
# ----------------------------------------------------------------------------------------------------

@dataclass
class PreparedSplit:
    """Where a split's images come from: ``load(k)`` returns the k-th image as uint8 (64, 64, 3)."""
    name: str
    source_indices: list[int]
    load: object = field(repr=False)
    source_files: list[str] | None = None  # folder source: the files behind source_indices
    labels: list[int] | None = None  # class id of each image (in file order); None: the source has no classes


def parse_splits(text: str) -> list[str]:
    """'train,val,test' -> ['train', 'val', 'test'], rejecting unknown names."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in SPLITS]
    if bad or not names:
        raise PrepareError(f"--splits {text!r}: expected a comma-separated subset of {','.join(SPLITS)}")
    return names


def split_dirs(out: Path, split: str) -> list[Path]:
    """Folders that make up ``split`` under ``out``."""
    return [out / d for d in TEST_DIRS] if split == "test" else [out / split]


def check_out(out: Path, source: str, src_dir: str | Path | None) -> None:
    """Refuse (before any work) an ``--out`` that is a file or lies below one, or that would hold the source."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                what = "is a file" if folder == out else f"lies below {folder}, which is a file"
                raise PrepareError(f"--out {out}: {what}; give a folder (it is created if missing)")
            break
    if source == "folder" and src_dir is not None and Path(src_dir).is_dir():
        src, dest = Path(os.path.realpath(src_dir)), Path(os.path.realpath(out))
        if src == dest or any(_within(src, dest / d) for d in ("train", "val", *TEST_DIRS)):
            raise PrepareError(f"--out {out}: the source folder {src_dir} is (inside) the output's splits, which "
                               f"would be replaced; choose another --out")


def check_counts(counts: dict[str, int | None], splits: list[str], stage: str = "given") -> None:
    """Negative counts, and an empty split that is to be written, are refused before anything is written."""
    for name, n in counts.items():
        if n is None:
            continue
        if n < 0:
            raise PrepareError(f"--n-{name} {n}: must be >= 0")
        if n == 0 and name in splits:
            how = "" if stage == "given" else " (what is left of the source after the other splits)"
            raise PrepareError(f"--n-{name} 0{how}: the {name} split would be empty; give at least 1 image, or "
                               f"leave {name} out of --splits")


def check_overwrite(out: Path, splits: list[str], force: bool) -> None:
    """Refuse (before any work) when a split to write already has files and ``force`` is not set."""
    if force:
        return
    for split in splits:
        for d in split_dirs(out, split):
            if d.exists() and any(d.iterdir()):
                raise PrepareError(f"{d}: already holds files; pass --force to replace the {split} split")


def _write_png(arr: np.ndarray, path: Path, mode: str) -> None:
    Image.fromarray(arr, mode=mode).save(path, format="PNG", optimize=False)


def write_split(out: Path, split: PreparedSplit, seed: int, progress: bool = True) -> dict:
    """Write one split into a temp folder under ``out`` and move it into place; returns its stats."""
    names = TEST_DIRS if split.name == "test" else (split.name,)
    # written under a staging folder and moved into place only once every file is there
    with atomic.replacing_dirs(out, names) as tmp:
        for d in names:
            (tmp / d).mkdir()
        coverages = []
        items = range(len(split.source_indices))
        if progress:
            from tqdm import tqdm
            items = tqdm(items, desc=split.name, unit="img", file=sys.stderr, mininterval=2)
        for k in items:
            img = split.load(k)
            if split.name == "test":
                mask = make_mask(seed, k)
                coverages.append(mask_coverage(mask))
                _write_png(img, tmp / "ground_truth" / f"image_{k:03d}.png", "RGB")
                _write_png(mask, tmp / "mask64" / f"mask_{k:03d}.png", "L")
                _write_png(apply_mask(img, mask), tmp / "masked_image" / f"image_{k:03d}.png", "RGB")
            else:
                _write_png(img, tmp / split.name / f"{k:05d}.png", "RGB")
    stats = {"count": len(split.source_indices)}
    if split.labels is not None:
        stats["labels"] = split.labels
    if coverages:
        c = np.array(coverages)
        stats["mask_coverage"] = {"min": round(float(c.min()), 4), "mean": round(float(c.mean()), 4),
                                  "max": round(float(c.max()), 4), "target_range": list(COVERAGE_RANGE)}
        stats["source_indices"] = split.source_indices
    return stats


def choose_indices(n_available: int, counts: list[int], seed: int, stream: int) -> list[np.ndarray]:
    """Disjoint seeded random subsets of range(n_available) with the given sizes (order = draw order)."""
    if sum(counts) > n_available:
        raise PrepareError(f"asked for {' + '.join(map(str, counts))} = {sum(counts)} images, "
                           f"the source has only {n_available}")
    perm = np.random.default_rng([seed, stream]).permutation(n_available)
    bounds = np.cumsum([0] + counts)
    return [perm[a:b] for a, b in itertools.pairwise(bounds)]


def fashion_splits(arrays: dict[str, np.ndarray], counts: dict[str, int], seed: int,
                   labels: dict[str, np.ndarray] | None = None) -> dict[str, PreparedSplit]:
    """train/val disjoint from the 60k training set, test from t10k; independent of which splits are wanted."""
    train_idx, val_idx = choose_indices(len(arrays["train"]), [counts["train"], counts["val"]], seed, stream=1)
    (test_idx,) = choose_indices(len(arrays["test"]), [counts["test"]], seed, stream=2)

    def split(name, src, idx):
        ids = None if labels is None else [int(labels[src][i]) for i in idx]
        return PreparedSplit(name, [int(i) for i in idx], lambda k: fashion_to_rgb64(arrays[src][idx[k]]), labels=ids)

    return {"train": split("train", "train", train_idx),
            "val": split("val", "train", val_idx),
            "test": split("test", "test", test_idx)}


def folder_classes(src_dir: str | Path, files: list[Path]) -> list[str] | None:
    """Class names of a folder of class sub-folders (sorted sub-folder names), or None when some image lies
    directly in ``src_dir`` (then the data has no classes). An empty class sub-folder is an error: a class
    without images cannot be trained or generated."""
    src_dir = Path(src_dir)
    if not files or any(len(p.relative_to(src_dir).parts) < 2 for p in files):
        return None
    names = sorted({p.relative_to(src_dir).parts[0] for p in files})
    for d in sorted(src_dir.iterdir()):
        if d.is_dir() and not d.name.startswith(".") and d.name not in names:
            raise PrepareError(f"{d}: class folder holds no image files; add images or remove the folder")
    return names


def folder_splits(files: list[Path], counts: dict[str, int | None], seed: int, skip_bad: bool = False,
                  src_dir: str | Path | None = None, classes: list[str] | None = None
                  ) -> tuple[dict[str, PreparedSplit], list[str]]:
    """Decode every file once (so a bad one fails before anything is written), then split them; with ``classes``
    each image's label is the position of its first-level sub-folder (under ``src_dir``) in ``classes``."""
    images, good, bad = [], [], []
    for p in files:
        try:
            images.append(load_square_rgb(p))
            good.append(p)
        except PrepareError as exc:
            if not skip_bad:
                raise
            bad.append(str(exc))
    n = len(images)
    if n == 0:
        raise PrepareError("no readable images in the source folder")
    n_test = counts["test"] if counts["test"] is not None else max(1, round(0.1 * n))
    n_val = counts["val"] if counts["val"] is not None else max(1, round(0.1 * n))
    n_train = counts["train"] if counts["train"] is not None else n - n_test - n_val
    if n_train < 0:
        raise PrepareError(f"{n} readable images are too few for {n_val} val + {n_test} test images")
    train_idx, val_idx, test_idx = choose_indices(n, [n_train, n_val, n_test], seed, stream=3)

    def split(name, idx):
        return PreparedSplit(name, [int(i) for i in idx], lambda k: images[idx[k]])

    splits = {"train": split("train", train_idx), "val": split("val", val_idx), "test": split("test", test_idx)}
    for s in splits.values():
        s.source_files = [str(good[i]) for i in s.source_indices]
        if classes is not None:
            s.labels = [classes.index(good[i].relative_to(src_dir).parts[0]) for i in s.source_indices]
    return splits, bad


def write_meta(out: Path, meta_update: dict, split_stats: dict[str, dict]) -> dict:
    """Merge this run into ``out/meta.json`` (splits generated by separate runs keep their entries)."""
    path = out / "meta.json"
    meta = {}
    if path.is_file():
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError:
            meta = {}
        if any(meta.get(k) != v for k, v in meta_update.items() if k in ("source", "seed", "classes")):
            meta = {}  # a different source or seed: the old entries describe data that is being replaced
    meta.update(meta_update)
    meta.setdefault("splits", {}).update(split_stats)
    text = json.dumps(meta, indent=1)
    # one line per list of numbers/paths (747 test indices would otherwise take 747 lines)
    text = re.sub(r"\[\s*([^\[\]{}]*?)\s*\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    atomic.write_text(path, text + "\n")
    return meta


def write_readme(out: Path, meta: dict) -> None:
    """Human-readable description of the generated data beside it."""
    splits = meta.get("splits", {})
    lines = [
        f"# {out.name}: 64x64 inpainting benchmark",
        "",
        (f"Generated by `tools/prepare_data.py` from **{meta['source']}** ({meta.get('source_location', '')}), "
         f"seed {meta['seed']}. Regenerate with:"),
        "",
        "```",
        meta.get("command", ""),
        "```",
        "",
        "| folder | files | content |",
        "|---|---|---|",
    ]
    if "train" in splits:
        lines.append(f"| train/ | {splits['train']['count']} | `00000.png`..., RGB 64x64 (regenerate; not committed) |")
    if "val" in splits:
        lines.append(f"| val/ | {splits['val']['count']} | `00000.png`..., RGB 64x64 (regenerate; not committed) |")
    if "test" in splits:
        n = splits["test"]["count"]
        lines += [
            f"| ground_truth/ | {n} | `image_000.png`..., unmasked test images, RGB 64x64 |",
            f"| mask64/ | {n} | `mask_000.png`..., 8-bit L, 0 = hole, 255 = known |",
            f"| masked_image/ | {n} | `image_000.png`..., holes painted exactly (128, 128, 128) |",
        ]
        cov = splits["test"]["mask_coverage"]
        lines += ["", (f"Masks: free-form random-walk brush strokes; mask i depends only on (seed, i); hole "
                       f"coverage {cov['min']:.1%}-{cov['max']:.1%} (mean {cov['mean']:.1%}), kept within "
                       f"{cov['target_range'][0]:.0%}-{cov['target_range'][1]:.0%}.")]
    if meta["source"] == "fashion-mnist":
        lines += ["", ("train/val are drawn (disjoint, seeded) from Fashion-MNIST's 60,000 training images, test "
                       "from its 10,000 test images; 28x28 gray upsampled to 64x64 (PIL bicubic) and replicated "
                       "to RGB. `meta.json` lists the Fashion-MNIST indices of the test images."),
                  "", "Fashion-MNIST is Copyright (c) 2017 Zalando SE, MIT licence: see `LICENSE-fashion-mnist.txt`."]
    (out / "README.md").write_text("\n".join(lines) + "\n")


def prepare(source: str, out: str | Path, splits: list[str], counts: dict[str, int | None], seed: int = 0,
            force: bool = False, src_dir: str | Path | None = None, skip_bad: bool = False,
            source_dir: str | Path = DEBIAN_FASHION_DIR, download_root: str | Path = DEFAULT_DOWNLOAD_ROOT,
            progress: bool = True) -> dict:
    """Generate ``splits`` of the benchmark under ``out``; returns the metadata written to meta.json."""
    out = Path(out)
    check_out(out, source, src_dir)
    check_counts(counts, splits)
    check_overwrite(out, splits, force)
    bad: list[str] = []
    if source == "fashion-mnist":
        counts = {k: FASHION_DEFAULT_COUNTS[k] if v is None else v for k, v in counts.items()}
        arrays, labels, location = load_fashion_mnist(source_dir, download_root)
        prepared = fashion_splits(arrays, counts, seed, labels)
        classes = list(FASHION_CLASSES) if labels is not None else None
    elif source == "folder":
        location = str(src_dir)
        files = list_source_images(src_dir, exclude=[out])
        classes = folder_classes(src_dir, files)
        prepared, bad = folder_splits(files, counts, seed, skip_bad, src_dir=src_dir, classes=classes)
        for msg in bad:
            print(f"skipped: {msg}", file=sys.stderr)
    else:
        raise PrepareError(f"unknown source {source!r}: expected fashion-mnist or folder")
    check_counts({k: len(v.source_indices) for k, v in prepared.items()}, splits, stage="resolved")
    stats = {}
    for name in splits:
        stats[name] = write_split(out, prepared[name], seed, progress)
        if name == "test" and source == "folder":
            stats[name]["source_files"] = prepared[name].source_files
            stats[name].pop("source_indices", None)
    resolved = {k: len(v.source_indices) for k, v in prepared.items()}
    command = " ".join(["maskgit-prepare-data", source] + ([str(src_dir)] if source == "folder" else [])
                       + ["--out", str(out)] + [f"--n-{k} {n}" for k, n in resolved.items()] + [f"--seed {seed}"])
    meta_update = {"source": source, "source_location": location, "seed": seed, "image_size": IMAGE_SIZE,
                   "hole_value": HOLE_VALUE, "mask_convention": "0 = hole, 255 = known",
                   "command": command}
    meta_update["classes"] = classes  # None: no class labels (a flat folder)
    if bad:
        meta_update["skipped_files"] = bad
    meta = write_meta(out, meta_update, stats)
    write_readme(out, meta)
    if source == "fashion-mnist":
        (out / "LICENSE-fashion-mnist.txt").write_text(FASHION_LICENSE)
    return meta


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=fmt)
    sub = parser.add_subparsers(dest="source", required=True)

    def common(p, default_out, counts, none_help):
        p.add_argument("--out", default=default_out, help="output folder")
        p.add_argument("--n-train", type=int, default=counts["train"], help=f"training images{none_help['train']}")
        p.add_argument("--n-val", type=int, default=counts["val"], help=f"validation images{none_help['val']}")
        p.add_argument("--n-test", type=int, default=counts["test"], help=f"test images with masks{none_help['test']}")
        p.add_argument("--seed", type=int, default=0, help="seed of the split selection and the masks")
        p.add_argument("--splits", default="train,val,test", help=f"comma-separated subset of {','.join(SPLITS)}")
        p.add_argument("--force", action="store_true", help="replace splits that already hold files")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    fm = sub.add_parser("fashion-mnist", formatter_class=fmt, help="Fashion-MNIST (Debian's files, else download)")
    common(fm, "data/fashion64", FASHION_DEFAULT_COUNTS, dict.fromkeys(SPLITS, ""))
    fm.add_argument("--source-dir", default=str(DEBIAN_FASHION_DIR),
                    help="folder with train-images-idx3-ubyte.gz and t10k-images-idx3-ubyte.gz")
    fm.add_argument("--download-root", default=str(DEFAULT_DOWNLOAD_ROOT),
                    help="where torchvision downloads Fashion-MNIST when --source-dir lacks it")
    fo = sub.add_parser("folder", formatter_class=fmt, help="any folder of images")
    fo.add_argument("src_dir", help="folder of images (searched recursively)")
    common(fo, "data/mydata", dict.fromkeys(SPLITS), {"train": "; None = all not in val/test",
                                                      "val": "; None = 10%%", "test": "; None = 10%%"})
    fo.add_argument("--skip-bad", action="store_true", help="skip unreadable files (listed) instead of failing")
    ma = sub.add_parser("masks", formatter_class=fmt, help="large-hole test splits from an existing ground truth")
    ma.add_argument("--data", default="data/fashion64", help="benchmark folder holding ground_truth/")
    ma.add_argument("--kinds", default=",".join(MASK_KINDS), help=f"comma-separated subset of {','.join(MASK_KINDS)}")
    ma.add_argument("--seed", type=int, default=0, help="seed of the masks")
    ma.add_argument("--force", action="store_true", help="replace splits that already hold files")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.source == "masks":
        try:
            stats = write_mask_splits(args.data, [k for k in args.kinds.split(",") if k], args.seed, args.force)
        except PrepareError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for kind, s in stats.items():
            print(f"wrote {Path(args.data) / 'splits' / kind}: {s['count']} images, "
                  f"holes {s['mask_coverage']['mean']:.0%} of the pixels on average")
        return 0
    for flag in ("n_train", "n_val", "n_test"):
        if getattr(args, flag) is not None and getattr(args, flag) < 0:
            print(f"error: --{flag.replace('_', '-')} must be >= 0", file=sys.stderr)
            return 2
    counts = {"train": args.n_train, "val": args.n_val, "test": args.n_test}
    try:
        splits = parse_splits(args.splits)
        meta = prepare(args.source, args.out, splits, counts, seed=args.seed, force=args.force,
                       src_dir=getattr(args, "src_dir", None), skip_bad=getattr(args, "skip_bad", False),
                       source_dir=getattr(args, "source_dir", DEBIAN_FASHION_DIR),
                       download_root=getattr(args, "download_root", DEFAULT_DOWNLOAD_ROOT),
                       progress=not args.quiet)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    done = ", ".join(f"{s} {meta['splits'][s]['count']}" for s in splits)
    print(f"wrote {done} under {args.out}")
    if getattr(args, "skip_bad", False) and meta.get("skipped_files"):
        print(f"skipped {len(meta['skipped_files'])} unreadable files (listed above)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
