"""Measure how well a VQGAN checkpoint reconstructs a folder of images: PSNR, SSIM, L1, codebook usage.

Why: the tokenizer bounds what MaskGIT can reach (an inpainted image is a decoded token grid), and a
collapsed codebook leaves the transformer few tokens. PSNR and SSIM come from ``skimage.metrics`` on the
uint8 images (data_range 255), averaged over images; codebook usage (distinct ids, perplexity) is counted
over all tokens of the folder.

    python tools/eval_vqgan.py --checkpoint checkpoints/vqgan.pt --images data/fashion64/ground_truth
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch.utils.data import DataLoader

from maskgit_kit import labtree
from maskgit_kit.paths import KIT_ROOT as REPO

REFERENCE = labtree.activate(REPO / "solutions")  # the VQGAN code is given, the same in lab/ and solutions/
utils = REFERENCE.module("utils")
CheckpointError = REFERENCE.module("models.checkpoint").CheckpointError
_config = REFERENCE.module("models.config")
ConfigError, load_vqgan_config = _config.ConfigError, _config.load_vqgan_config
_vqgan = REFERENCE.module("models.VQGAN")
VQGAN, codebook_usage, load_vqgan = _vqgan.VQGAN, _vqgan.codebook_usage, _vqgan.load_vqgan

DEFAULT_CONFIG = REPO / "solutions" / "config" / "VQGAN.yml"
DEFAULT_CHECKPOINT = REPO / "checkpoints" / "vqgan.pt"
DEFAULT_IMAGES = utils.DEFAULT_DATA_ROOT / "ground_truth"


@torch.no_grad()
def evaluate_reconstruction(model: VQGAN, loader, device: torch.device, ssim: bool = True,
                            bf16: bool = False) -> dict[str, float]:
    """Reconstruct every batch of ``loader`` (float (B, 3, H, W) in [-1, 1]) and average the metrics.

    Returns {"images", "l1" (mean absolute error in [-1, 1] units), "psnr" (dB), "ssim" (when asked),
    "distinct_codes", "perplexity"}.
    """
    was_training = model.training
    model.eval()
    l1_sum, psnrs, ssims, ids = 0.0, [], [], []
    for x in loader:
        x = x.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            x_rec, indices, _ = model(x)
        x_rec = x_rec.float().clamp(-1, 1)
        l1_sum += float((x_rec - x).abs().mean(dim=(1, 2, 3)).sum())
        ids.append(indices.cpu())
        for real, fake in zip(x, x_rec, strict=True):
            a, b = utils.tensor_to_image(real), utils.tensor_to_image(fake)  # uint8 (H, W, 3)
            psnrs.append(peak_signal_noise_ratio(a, b, data_range=255))
            if ssim:
                ssims.append(structural_similarity(a, b, channel_axis=2, data_range=255))
    model.train(was_training)
    usage = codebook_usage(torch.cat(ids), model.cfg.num_codebook_vectors)
    # identical images give PSNR = inf; cap at 100 dB so one perfect image does not hide the rest
    result = {"images": len(psnrs), "l1": l1_sum / len(psnrs), "psnr": float(np.mean(np.minimum(psnrs, 100.0))),
              "distinct_codes": usage.distinct, "perplexity": usage.perplexity}
    if ssim:
        result["ssim"] = float(np.mean(ssims))
    return result


def evaluate_checkpoint(checkpoint: str | Path, images: str | Path, config: str | Path = DEFAULT_CONFIG,
                        batch_size: int = 64, device: str = "cpu") -> dict[str, float]:
    """Load ``checkpoint`` (which must fit ``config``) and evaluate it on every image of the folder ``images``."""
    cfg = load_vqgan_config(config)
    dev = utils.resolve_device(device)
    model = load_vqgan(cfg, checkpoint, dev)
    loader = DataLoader(utils.LoadTrainData(images, image_size=cfg.image_size), batch_size=batch_size)
    return evaluate_reconstruction(model, loader, dev)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="VQGAN checkpoint (.pt)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="VQGAN config YAML the checkpoint must fit")
    parser.add_argument("--images", default=str(DEFAULT_IMAGES), help="folder of 64x64 RGB images")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.threads < 0:
        parser.error(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        metrics = evaluate_checkpoint(args.checkpoint, args.images, args.config, args.batch_size, args.device)
    except (utils.DataError, ConfigError, CheckpointError) as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    if args.json:
        print(json.dumps(metrics))
    else:
        print(f"{args.checkpoint} on {args.images} ({metrics['images']} images):")
        print(f"  PSNR {metrics['psnr']:.2f} dB   SSIM {metrics['ssim']:.4f}   L1 {metrics['l1']:.4f}")
        print(f"  codes used {metrics['distinct_codes']} / {load_vqgan_config(args.config).num_codebook_vectors}"
              f"   perplexity {metrics['perplexity']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
