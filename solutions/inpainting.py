"""Inpaint the test images with MaskGIT's iterative decoding.

    cd solutions && python inpainting.py --sweet-spot 8

Writes, beside this script (or under ``--output-dir``):
  test_results/image_{i:03d}.png   the inpainted 64x64 image i (same numbering as the test files)
  mask_scheduling/test_{i}.png     the latent mask before decoding and after each step (white = known)
  imga/test_{i}.png                the masked input, then the decoded image after each step

TODO3: ``iterative_decoding``, the loop over the T steps. The rest is given.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.utils import save_image
from tqdm import tqdm

from hole_fill import PREFILLS, prefill_holes
from models.checkpoint import CheckpointError
from models.config import ConfigError, load_maskgit_config
from models.VQGAN_Transformer import MASK_FUNCS, MaskGit, load_maskgit
from utils import DEFAULT_DATA_ROOT, DataError, LoadTestData, resolve_device, tensor_to_image

HERE = Path(__file__).resolve().parent  # defaults are relative to this script's folder

OUTPUT_DIRS = ("test_results", "mask_scheduling", "imga")


def iterative_decoding(model: MaskGit, z_indices, mask, total_iter=8, sweet_spot=None, generators=None,
                       **step_kwargs):
    """Fill the masked tokens over ``total_iter`` steps of ``model.inpainting_step``.

    Inputs:
      - z_indices: int64 (B, N), token ids of the masked images (values at masked positions are ignored).
      - mask: bool (B, N), True = token to inpaint.
      - total_iter: T, the number of steps of the schedule; step t (0-based) uses ratio = (t + 1) / T.
      - sweet_spot: stop after this many steps (None: run all T) and return that step's prediction.
      - generators, step_kwargs: passed on to every ``model.inpainting_step`` call.
    Returns ``(z_final, history)``:
      - z_final: int64 (B, N), the ``z_pred`` of the last step run (known tokens unchanged, no mask token);
      - history: list with one ``(z_pred, new_mask)`` pair per step run, in order.
    N0 (``num_unknown_start``) is the number of masked tokens of each image before the first step.
    """
    # BEGIN SOLUTION TODO3: iterative_decoding: call inpainting_step T times with ratio (t + 1) / T
    steps = total_iter if sweet_spot is None else min(sweet_spot, total_iter)
    num_unknown_start = mask.sum(dim=1)
    z, current = z_indices, mask
    history = []
    for t in range(steps):
        z, current = model.inpainting_step(z, current, num_unknown_start, (t + 1) / total_iter,
                                           generators=generators, **step_kwargs)
        history.append((z, current))
    return z, history
    # END SOLUTION


# ----------------------------------------------------------------------------------------------------
# Given: masks, batching, saving
# ----------------------------------------------------------------------------------------------------
def latent_mask(pixel_mask: torch.Tensor, latent_size: int) -> torch.Tensor:
    """Pixel mask (B, 1, H, W), 1 = known -> token mask (B, N) bool, True where the token's patch
    touches a hole (as in the course: average-pool and mask any token that is not fully known)."""
    hole = 1.0 - pixel_mask
    pooled = F.adaptive_avg_pool2d(hole, latent_size)  # (B, 1, h, w): hole fraction per patch
    return (pooled > 0).flatten(1)


def image_generators(indices, seed: int) -> list[torch.Generator]:
    """One generator per test image, seeded from (seed, image index): results do not depend on batching."""
    return [torch.Generator().manual_seed(seed * 1_000_003 + int(i)) for i in indices]


def precision_context(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory for reuse instead of handing it back to the OS.

    Why: each decoding step allocates and frees buffers of tens to hundreds of MB (attention weights,
    logits, noise). By default glibc maps each one anew and the kernel faults in and zeroes every page
    again; on the kit's 2-core VMs that costs about as much as the arithmetic (README, Performance).
    Call once per process, from a script's ``main``; a no-op where the C library has no ``mallopt``.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    mallopt(m_mmap_max, 0)  # large blocks from the heap, not from fresh mmap()s
    mallopt(m_trim_threshold, 2**31 - 1)  # and never trim the heap back


@torch.inference_mode()
def tokenize_masked(model: MaskGit, images, pixel_masks, prefill: str = "laplace"):
    """Token ids (B, N) of the masked images, holes pre-filled by ``prefill`` first (hole_fill.py says
    why), and the token mask (B, N), True = to inpaint."""
    _, z_indices = model.encode_to_z(prefill_holes(images, pixel_masks, prefill))
    return z_indices, latent_mask(pixel_masks, model.cfg.vqgan.latent_size).to(z_indices.device)


@torch.inference_mode()
def inpaint_batch(model: MaskGit, images, pixel_masks, indices, args):
    """Inpaint one batch. Returns (outputs (B,3,H,W) in [-1,1], per-step images, per-step token masks)."""
    z_indices, mask = tokenize_masked(model, images, pixel_masks, args.prefill)
    gens = image_generators(indices, args.seed)
    with precision_context(images.device, args.precision):
        z_final, history = iterative_decoding(
            model, z_indices, mask, args.total_iter, args.sweet_spot, generators=gens,
            choice_temperature=args.choice_temperature, sample=args.sampling == "categorical")
    h = model.cfg.vqgan.latent_size
    decode = lambda z: model.vqgan.decode_indices(z.view(-1, h, h)).clamp(-1, 1)  # noqa: E731
    out = decode(z_final)
    if args.composite:  # keep the known pixels of the input exactly
        out = pixel_masks * images + (1 - pixel_masks) * out
    steps = [decode(z) for z, _ in history] if args.save_steps else []
    masks = [mask] + [m for _, m in history]
    return out, steps, masks


def run(args) -> Path:
    """Inpaint every test image and write the three output folders; returns the output folder."""
    cfg = load_maskgit_config(args.config)
    if args.mask_func:
        cfg.gamma_type = args.mask_func
    dataset = LoadTestData(args.test_maskedimage_path, args.test_mask_path)
    dataset.validate()  # a bad file fails here, before anything is written
    device = resolve_device(args.device)
    ckpt = None if args.random_init else args.load_transformer_ckpt_path or cfg.transformer_ckpt_path
    if ckpt is not None and not Path(ckpt).is_file():
        raise CheckpointError(f"{ckpt}: transformer checkpoint not found; train one with "
                              f"`python training_transformer.py` or pass --load-transformer-ckpt-path")
    model = load_maskgit(cfg, device, transformer_ckpt=ckpt)
    torch.manual_seed(args.seed)

    out_root = Path(args.output_dir)
    out_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".inpainting-", dir=out_root))  # swapped in only on success
    try:
        for name in OUTPUT_DIRS:
            (staging / name).mkdir()
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
        h = cfg.vqgan.latent_size
        size = cfg.vqgan.image_size
        for images, pixel_masks, indices in tqdm(loader, desc=f"inpainting (T={args.total_iter})"):
            out, steps, masks = inpaint_batch(model, images.to(device), pixel_masks.to(device), indices, args)
            for b, i in enumerate(indices.tolist()):
                Image.fromarray(tensor_to_image(out[b])).save(staging / "test_results" / f"image_{i:03d}.png")
                grid = torch.stack([(~m[b]).float().view(1, h, h) for m in masks])
                grid = F.interpolate(grid, size=size, mode="nearest")
                save_image(grid, staging / "mask_scheduling" / f"test_{i}.png", nrow=len(masks), padding=1)
                if args.save_steps:
                    seq = torch.stack([images[b].cpu()] + [s[b].cpu() for s in steps])
                    save_image(seq.add(1).div(2), staging / "imga" / f"test_{i}.png", nrow=len(seq), padding=1)
        for name in OUTPUT_DIRS:  # replace the previous results only now that the new ones are complete
            target = out_root / name
            if target.exists():
                shutil.rmtree(target)
            (staging / name).rename(target)
        (out_root / "test_results.json").write_text(json.dumps(vars(args), indent=2, default=str))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_root


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="MaskGIT inpainting of the test images",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=str(HERE / "config" / "MaskGit.yml"), help="MaskGIT config (YAML)")
    p.add_argument("--load-transformer-ckpt-path", default=None,
                   help="transformer weights (default: the config's Transformer_CKPT_path)")
    p.add_argument("--test-maskedimage-path", default=str(DEFAULT_DATA_ROOT / "masked_image"))
    p.add_argument("--test-mask-path", default=str(DEFAULT_DATA_ROOT / "mask64"))
    p.add_argument("--output-dir", default=str(HERE), help="where test_results/, mask_scheduling/, imga/ go")
    p.add_argument("--total-iter", type=int, default=8, help="T: steps of the mask schedule")
    p.add_argument("--sweet-spot", type=int, default=None, help="stop after this many steps (default: T)")
    p.add_argument("--mask-func", choices=MASK_FUNCS, default=None, help="mask schedule (default: the config's)")
    p.add_argument("--choice-temperature", type=float, default=None, help="confidence noise (default: config's)")
    p.add_argument("--sampling", choices=("argmax", "categorical"), default="argmax",
                   help="ids for masked tokens: the most likely one, or sampled from softmax(logits) as in "
                        "MaskGIT (argmax scored better FID with the shipped CPU-trained checkpoint)")
    p.add_argument("--composite", action="store_true", help="copy the known pixels from the input")
    p.add_argument("--prefill", choices=PREFILLS, default="laplace",
                   help="smooth the holes before tokenizing (none: the course's gray paint as given)")
    p.add_argument("--save-steps", action=argparse.BooleanOptionalAction, default=True,
                   help="write imga/ (decodes every step)")
    p.add_argument("--batch-size", type=int, default=64, help="images decoded together")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--random-init", action="store_true", help="untrained transformer (smoke tests only)")
    return p


def check_args(args) -> None:
    if args.total_iter < 1:
        raise SystemExit(f"--total-iter {args.total_iter}: expected a positive number of steps")
    if args.sweet_spot is not None and not 1 <= args.sweet_spot <= args.total_iter:
        raise SystemExit(f"--sweet-spot {args.sweet_spot}: expected a number of steps from 1 to "
                         f"--total-iter ({args.total_iter})")
    if args.batch_size < 1:
        raise SystemExit(f"--batch-size {args.batch_size}: expected a positive number")


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    check_args(args)
    keep_freed_memory()
    try:
        out = run(args)
    except (ConfigError, DataError, CheckpointError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"wrote {out / 'test_results'}, {out / 'mask_scheduling'}, {out / 'imga'}")


if __name__ == "__main__":
    main()
