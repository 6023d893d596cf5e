"""Reference points for the leaderboard: simple inpainting baselines and the VQGAN ceiling, scored alike.

- ``gray``: the masked input as given (holes stay (128, 128, 128)): what doing nothing scores.
- ``mean``: each hole filled with the mean colour of that image's known pixels.
- ``biharmonic``: ``skimage.restoration.inpaint_biharmonic`` (smooth interpolation from the hole border).
- ``vqgan``: the VQGAN reconstruction of the *unmasked* ground truth. Token-based inpainting decodes
  through the same VQGAN, so this is (nearly) the best FID any MaskGIT on this tokenizer can reach.

Each baseline's images are written to ``--out/<name>/image_000.png ..`` and reused on the next run while
their inputs are unchanged (``--force`` regenerates). Usage::

    python -m maskgit_kit.scoring.baselines
    python -m maskgit_kit.scoring.baselines --only biharmonic mean --json baselines.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from .. import atomic, labtree
from ..atomic import write_json
from ..device import resolve_device
from ..images import image_to_tensor, tensor_to_image
from ..paths import CHECKPOINTS, DEFAULT_BASELINES_DIR, DEFAULT_MASKED_PATH, KIT_ROOT
from .fid import FidUnavailable, file_digest, files_digest
from .options import add_scoring_args, make_features
from .scorer import Reference, prepare_reference, score_folder
from .table import METRIC_COLUMNS, fmt, text_table
from .validation import SubmissionError, load_images

BASELINES = ("gray", "mean", "biharmonic", "vqgan")
DEFAULT_LAB = KIT_ROOT / "lab"  # the given VQGAN code is the same in every lab-layout tree
DEFAULT_VQGAN_CKPT = CHECKPOINTS / "vqgan.pt"
STAMP = ".baseline.json"  # hidden: ignored by the submission check


class BaselineSkipped(RuntimeError):
    """A baseline cannot run here (e.g. no VQGAN checkpoint); the message is the reason shown in the table."""


# ------------------------------------------------------------------------------------------------------
# The baselines: uint8 (N, H, W, 3) masked images + bool (N, H, W) holes (True = hole) -> uint8 images
# ------------------------------------------------------------------------------------------------------

def gray_fill(masked: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """The masked input itself (its holes are already painted gray)."""
    return masked.copy()


def mean_fill(masked: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Holes painted with the per-channel mean of the same image's known pixels."""
    out = masked.copy()
    for img, hole in zip(out, holes, strict=True):
        if hole.any() and (~hole).any():
            img[hole] = np.round(img[~hole].mean(axis=0)).astype(np.uint8)
    return out


def biharmonic_fill(masked: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """scikit-image's biharmonic inpainting, image by image (about 15 ms per 64x64 image: no need for
    worker processes)."""
    from skimage.restoration import inpaint_biharmonic

    out = masked.copy()
    for img, hole in zip(out, holes, strict=True):
        if hole.any():
            filled = inpaint_biharmonic(img, hole, channel_axis=-1)  # float in [0, 1], known pixels kept
            img[hole] = np.clip(np.round(filled[hole] * 255), 0, 255).astype(np.uint8)
    return out


def vqgan_reconstruction(gt: np.ndarray, config: Path, ckpt: Path, device: str = "cpu",
                         batch_size: int = 64, lab: Path = DEFAULT_LAB) -> np.ndarray:
    """The ground truth encoded and decoded by the kit's VQGAN (``BaselineSkipped`` when it is unavailable)."""
    if not Path(ckpt).is_file():
        raise BaselineSkipped(f"{ckpt} not found (train it with tools/train_vqgan.py)")
    import torch

    try:
        tree = labtree.activate(lab, "--lab")
    except labtree.LabTreeError as exc:
        raise BaselineSkipped(str(exc)) from None
    CheckpointError = tree.module("models.checkpoint").CheckpointError
    config_module = tree.module("models.config")
    ConfigError, load_vqgan_config = config_module.ConfigError, config_module.load_vqgan_config
    load_vqgan = tree.module("models.VQGAN").load_vqgan

    try:
        cfg = load_vqgan_config(config)
        model = load_vqgan(cfg, ckpt, resolve_device(device))
    except (CheckpointError, ConfigError) as exc:
        raise BaselineSkipped(str(exc)) from None
    dev = next(model.parameters()).device
    out = np.empty_like(gt)
    with torch.inference_mode():
        for s in range(0, len(gt), batch_size):
            x = torch.stack([image_to_tensor(g) for g in gt[s:s + batch_size]]).to(dev)  # (B, 3, H, W) in [-1, 1]
            recon = model(x)[0]
            out[s:s + len(x)] = np.stack([tensor_to_image(r) for r in recon])
    return out


# ------------------------------------------------------------------------------------------------------
# Writing, reusing and scoring
# ------------------------------------------------------------------------------------------------------

def write_folder(folder: Path, images: np.ndarray, stamp: dict[str, Any]) -> None:
    """Write ``image_000.png ..`` into a fresh temporary folder, then swap it in for ``folder``.

    Readers never see a half-written baseline, and a crash leaves the previous one in place.
    """
    with atomic.replacing_dirs(folder.parent, [folder.name]) as staging:
        (staging / folder.name).mkdir()
        for i, img in enumerate(images):
            Image.fromarray(img, "RGB").save(staging / folder.name / f"image_{i:03d}.png")
        (staging / folder.name / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")


def read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return None


def generate_baseline(name: str, out_dir: Path, ref: Reference, masked_dir: Path, args: argparse.Namespace,
                      force: bool = False) -> tuple[Path, bool]:
    """Make sure ``out_dir/name`` holds the baseline's images for the current inputs: (folder, reused)."""
    folder = out_dir / name
    inputs = [masked_dir / n for n in ref.bench.names]
    if name == "vqgan":
        if not Path(args.vqgan_ckpt).is_file():
            raise BaselineSkipped(f"{args.vqgan_ckpt} not found (train it with tools/train_vqgan.py)")
        key = [files_digest([ref.gt_dir / n for n in ref.bench.names]), file_digest(args.vqgan_ckpt),
               file_digest(args.vqgan_config)]
    else:
        key = [files_digest(inputs), files_digest([ref.mask_dir / n.replace("image_", "mask_", 1)
                                                   for n in ref.bench.names])]
    stamp = {"baseline": name, "inputs": hashlib.sha256("".join(key).encode()).hexdigest(), "n": ref.bench.n}
    if not force and read_stamp(folder) == stamp:
        try:
            load_images(folder, ref.bench)  # still complete and readable?
            return folder, True
        except SubmissionError:
            pass
    if name == "vqgan":
        images = vqgan_reconstruction(ref.images, args.vqgan_config, args.vqgan_ckpt, args.device, lab=args.lab)
    else:
        masked = load_images(masked_dir, ref.bench, "masked images")
        fill: Callable = {"gray": gray_fill, "mean": mean_fill, "biharmonic": biharmonic_fill}[name]
        images = fill(masked, ref.holes)
    write_folder(folder, images, stamp)
    return folder, False


def run_baselines(args: argparse.Namespace, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Generate (or reuse) and score each baseline in ``args.only``; one result dict per baseline."""
    features = make_features(args)
    ref = prepare_reference(args.gt_path, args.mask_path, features, None if args.no_cache else args.cache_dir)
    rows = []
    for name in args.only:
        start = time.perf_counter()
        try:
            folder, reused = generate_baseline(name, args.out, ref, args.masked_path, args, args.force)
            gen_s = time.perf_counter() - start
            result = score_folder(folder, ref, features, args.fid_backend)
            result.update(name=name, status="ok", reused=reused, generate_s=gen_s)
            log(f"{name}: FID {result['fid']:.2f} ({'reused' if reused else 'generated'} {folder}, "
                f"{time.perf_counter() - start:.1f} s)")
        except BaselineSkipped as exc:
            result = {"name": name, "status": "skipped", "reason": str(exc)}
            log(f"{name}: skipped ({exc})")
        rows.append(result)
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    headers = ["baseline", *(h for _, h, _ in METRIC_COLUMNS), "time (s)"]
    body = []
    for r in rows:
        if r["status"] != "ok":
            body.append([r["name"], *("-" for _ in METRIC_COLUMNS), f"skipped: {r['reason']}"])
        else:
            body.append([r["name"], *(fmt(r[k], f) for k, _, f in METRIC_COLUMNS),
                         fmt(r["timing"]["total_s"] + r["generate_s"], ".1f")])
    return text_table(headers, body)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_BASELINES_DIR, help="one subfolder per baseline")
    parser.add_argument("--only", nargs="+", default=list(BASELINES), choices=BASELINES, help="baselines to run")
    parser.add_argument("--masked-path", type=Path, default=DEFAULT_MASKED_PATH, help="masked test images")
    parser.add_argument("--lab", type=Path, default=DEFAULT_LAB, help="lab-layout tree whose given VQGAN code is used")
    parser.add_argument("--vqgan-config", type=Path, default=None,
                        help="VQGAN YAML config (default: LAB/config/VQGAN.yml)")
    parser.add_argument("--vqgan-ckpt", type=Path, default=DEFAULT_VQGAN_CKPT, help="VQGAN checkpoint")
    parser.add_argument("--force", action="store_true", help="regenerate images even when they are up to date")
    parser.add_argument("--json", type=Path, default=None, help="also write the table to this JSON file")
    add_scoring_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.vqgan_config is None:
        args.vqgan_config = args.lab / "config" / "VQGAN.yml"
    start = time.perf_counter()
    try:
        rows = run_baselines(args)
    except SubmissionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FidUnavailable as exc:
        print(f"error: FID weights unavailable: {exc}", file=sys.stderr)
        return 1
    print()
    print(format_rows(rows))
    print(f"\nimages in {args.out}; total time {time.perf_counter() - start:.1f} s")
    if args.json is not None:
        write_json(args.json, rows)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
