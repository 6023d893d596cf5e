"""Inpaint the test images with MaskGIT's iterative decoding.

    python inpainting.py --sweet-spot 8       (from this folder; --help lists the flags)

Writes, beside this script (or under ``--output-dir``):
  test_results/image_{i:03d}.png   the inpainted 64x64 image i (same numbering as the test files)
  mask_scheduling/test_{i}.png     the latent mask before decoding and after each step (white = known)
  imga/test_{i}.png                the masked input, then the decoded image after each step

    python inpainting.py --split generation --class 3 --guidance 2    (class-conditional generation, TODO4)

TODO3: ``iterative_decoding``, the loop over the T steps. TODO4 (extension): ``guided_decoding``, the same loop on a
class-conditional model with classifier-free guidance. The rest is given: ``decoding.py`` (a batch: tokens,
masks, per-image generators), ``inpainting_outputs.py`` (the folders), ``command_line.py`` (the flags).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from command_line import (
    check_inpainting_args,
    decode_settings,
    default_config,
    inpainting_model,
    inpainting_parser,
    resolve_labels,
    todo_stubs_as_errors,
    with_mask_func,
)
from decoding import TokenIdError, inpaint_batch, keep_freed_memory
from inpainting_outputs import InpaintingOutputs, OutputError, check_output_dir
from models.checkpoint import CheckpointError
from models.config import ConfigError, load_maskgit_config, with_tokenizer
from models.VQGAN_Transformer import MaskGit
from utils import DataError, LoadTestData, resolve_device


def iterative_decoding(model: MaskGit, z_indices, mask, total_iter=8, sweet_spot=None, generators=None,
                       **step_kwargs):
    """Fill the masked tokens over ``total_iter`` steps of ``model.inpainting_step``.

    Inputs:
      - z_indices: int64 (B, N), token ids of the masked images (values at masked positions are ignored).
      - mask: bool (B, N), True = token to inpaint.
      - total_iter: T, the number of steps of the schedule; step t (0-based) uses ratio = (t + 1) / T.
      - sweet_spot: stop after this many steps (None: run all T) and return that step's prediction.
      - generators, step_kwargs: passed on to every ``model.inpainting_step`` call (``step_kwargs`` holds
        ``choice_temperature`` (float) and ``sample`` (bool)).
    Returns ``(z_final, history)``:
      - z_final: int64 (B, N), the ``z_pred`` of the last step run (known tokens unchanged, no mask token);
      - history: list with one ``(z_pred, new_mask)`` pair per step run, in order.
    N0 (``num_unknown_start``) is the number of masked tokens of each image before the first step.
    """
    # ============================== TODO3 ==============================
    # iterative_decoding: call inpainting_step T times with ratio (t + 1) / T
    # (contract: see this function's docstring)
    # ===================================================================
    raise NotImplementedError("TODO3: iterative_decoding: call inpainting_step T times with ratio (t + 1) / T")


def guided_decoding(model: MaskGit, z_indices, mask, labels, total_iter=8, guidance=1.0, ramp=False, sweet_spot=None,
                    generators=None, **step_kwargs):
    """``iterative_decoding`` for a class-conditional model: every step conditioned on ``labels`` with
    classifier-free guidance.

    Inputs: as ``iterative_decoding``, and
      - labels: int64 (B,), each image's class id in [0, C), or ``NO_CLASS`` (-1) for unconditional;
      - guidance: float >= 0, the guidance scale g (1 = plain conditional; see ``ClassConditionalTransformer``);
      - ramp: False = g at every step; True = step t (0-based) uses 1 + (g - 1) * (t + 1) / total_iter, so the
        guidance grows linearly and reaches g at the last step of the schedule.
    Each step is one ``model.inpainting_step`` call made inside ``with model.conditioned(labels, scale):``.
    Returns ``(z_final, history)`` exactly as ``iterative_decoding``. Generation is this with every token masked.
    """
    # ============================== TODO4 ==============================
    # guided_decoding: the decoding loop, conditioned, (ramped) guidance scale
    # (contract: see this function's docstring)
    # ===================================================================
    raise NotImplementedError("TODO4: guided_decoding: the decoding loop, conditioned, (ramped) guidance scale")


def run(args) -> Path:
    """Inpaint every test image and write the three output folders; returns the output folder."""
    check_output_dir(args.output_dir)  # a link or a file where the outputs go: found now, not after the work
    args.config = default_config(args)
    cfg = with_tokenizer(with_mask_func(load_maskgit_config(args.config), args.mask_func), args.vqgan_ckpt)
    settings = decode_settings(args, cfg)
    dataset = LoadTestData(args.test_maskedimage_path, args.test_mask_path)
    dataset.validate()  # a bad file fails here, before anything is written
    device = resolve_device(args.device)
    model = inpainting_model(args, cfg, device)
    labels = resolve_labels(args, model, len(dataset))  # None: an unconditional model
    torch.manual_seed(args.seed)

    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False)
    with InpaintingOutputs(args.output_dir, cfg.vqgan.image_size, cfg.vqgan.latent_size) as outputs:
        for images, pixel_masks, indices in tqdm(loader, desc=f"inpainting (T={settings.total_iter})"):
            images, pixel_masks = images.to(device), pixel_masks.to(device)
            batch_labels = None if labels is None else [labels[i] for i in indices.tolist()]
            out, steps, masks = inpaint_batch(model, images, pixel_masks, indices, settings, iterative_decoding,
                                              batch_labels, guided_decoding)
            for b, i in enumerate(indices.tolist()):
                imga = [images[b]] + [s[b] for s in steps] if steps else []  # the masked input, then each step
                outputs.save(i, out[b], [m[b] for m in masks], imga)
    outputs.write_settings({**vars(args), "mask_func": model.mask_func, **dataclasses.asdict(settings)})
    return outputs.root


def main(argv=None) -> None:
    args = inpainting_parser().parse_args(argv)
    check_inpainting_args(args)
    keep_freed_memory()
    try:
        out = run(args)
    except (ConfigError, DataError, CheckpointError, TokenIdError, OutputError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"wrote {out / 'test_results'}, {out / 'mask_scheduling'}, {out / 'imga'}")


if __name__ == "__main__":
    with todo_stubs_as_errors():
        main()
