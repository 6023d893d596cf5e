"""Train the VQGAN tokenizer on data/fashion64/train, validating on val/ after every epoch.

Loss (Esser et al. 2021, without the LPIPS term: no VGG weights offline):
    L1 (+ --l2-weight x MSE) reconstruction + codebook/commitment loss
    + hinge PatchGAN loss from step --disc-start on, weighted adaptively (the GAN gradient at the decoder's
      last layer is scaled to --disc-weight x the reconstruction gradient there) or by --disc-weight alone.
Codebook collapse guard: the codebook starts from encoder outputs of the first batch, and codes unused for
--restart-after steps are moved onto random encoder outputs (``DeadCodeRestarter``; it and the PatchGAN
discriminator are in tools/vqgan_training.py: training machinery that does not ship to students).

The defaults are the recipe of stage 1 of the shipped checkpoints/vqgan.pt (about 20 minutes on 2 CPU cores
with --threads 2 --bf16). Stage 2 fine-tuned the decoder alone on the frozen codes (--init-from STAGE1.pt
--decoder-only), which keeps every token id and so a transformer trained on them; checkpoints/README.md has
both commands.

Outputs in --checkpoint-path: last.pt (full training state, for --resume), best.pt (weights only, float16,
config inside; best validation PSNR), log.csv (one row per epoch). --export copies best.pt at the end.

    python tools/train_vqgan.py --threads 2 --bf16 --export my_vqgan.pt

The course's GPU-sized VQGAN: tools/config/VQGAN_gpu.yml (its comments give the command).
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler
from tqdm import tqdm

from eval_vqgan import REFERENCE, evaluate_reconstruction  # tools/ is this script's own folder
from maskgit_kit import atomic
from maskgit_kit.paths import KIT_ROOT as REPO
from vqgan_training import DeadCodeRestarter, PatchDiscriminator

utils = REFERENCE.module("utils")
_checkpoint = REFERENCE.module("models.checkpoint")
CheckpointError, check_config = _checkpoint.CheckpointError, _checkpoint.check_config
load_model_weights, read_checkpoint = _checkpoint.load_model_weights, _checkpoint.read_checkpoint
save_model_checkpoint, tokenizer_identity = _checkpoint.save_model_checkpoint, _checkpoint.tokenizer_identity
_config = REFERENCE.module("models.config")
ConfigError, load_vqgan_config = _config.ConfigError, _config.load_vqgan_config
VQGAN = REFERENCE.module("models.VQGAN").VQGAN

DEFAULT_CONFIG = REPO / "solutions" / "config" / "VQGAN.yml"
DEFAULT_CKPT_DIR = REPO / "solutions" / "vqgan_checkpoints"
LOG_NAME = "log.csv"
LOG_COLUMNS = ["epoch", "step", "lr", "train_loss", "train_l1", "train_q_loss", "train_g_loss", "train_d_loss",
               "codes_restarted", "val_l1", "val_psnr", "val_distinct_codes", "val_perplexity",
               "epoch_seconds", "total_seconds"]
DEVICES = ("auto", "cpu", "cuda")


class TrainError(RuntimeError):
    """A flag combination or an existing output that the run cannot go on with."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="VQGAN config YAML")
    p.add_argument("--data-root", default=str(utils.DEFAULT_DATA_ROOT), help="folder holding train/ and val/")
    p.add_argument("--epochs", type=int, default=8, help="total number of epochs (including resumed ones)")
    p.add_argument("--partial", type=float, default=0.2,
                   help="fraction of train/ drawn at random (anew each epoch) per epoch")
    p.add_argument("--val-images", type=int, default=256, help="first N images of val/ used for validation (0: all)")
    p.add_argument("--batch-size", type=int, default=32, help="images per step")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="peak Adam learning rate (VQGAN and PatchGAN)")
    p.add_argument("--warmup-steps", type=int, default=20, help="linear learning-rate warm-up steps")
    p.add_argument("--lr-schedule", choices=("cosine", "constant"), default="cosine",
                   help="after warm-up: cosine decay to 10%% of the peak, or constant")
    p.add_argument("--l2-weight", type=float, default=1.0, help="weight of the MSE term added to L1 (0: L1 only)")
    p.add_argument("--disc-start", type=int, default=450, help="step at which the PatchGAN loss starts")
    p.add_argument("--disc-weight", type=float, default=0.1, help="GAN loss weight (factor on the adaptive weight)")
    p.add_argument("--no-adaptive-weight", action="store_true", help="use --disc-weight as a fixed GAN weight")
    p.add_argument("--disc-channels", type=int, default=64, help="PatchGAN width of the first layer")
    p.add_argument("--restart-after", type=int, default=20,
                   help="re-initialise codes unused for this many steps (0: never)")
    p.add_argument("--checkpoint-path", default=str(DEFAULT_CKPT_DIR), help="folder for last.pt, best.pt, log.csv")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint-path/last.pt")
    p.add_argument("--start-from-epoch", type=int, default=0,
                   help="epochs already done; > 0 resumes from last.pt, which must hold that epoch")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh even if --checkpoint-path holds a run; replace an existing --export file")
    p.add_argument("--init-from", default=None,
                   help="start from the weights of this VQGAN checkpoint (e.g. checkpoints/vqgan.pt) instead of "
                        "random ones; the codebook keeps its codes (no data initialisation)")
    p.add_argument("--decoder-only", action="store_true",
                   help="with --init-from: train the decoder alone; the encoder and codebook stay frozen, so every "
                        "image keeps its code ids and a transformer trained on them stays valid")
    p.add_argument("--export", default=None, help="copy best.pt here when training ends (e.g. checkpoints/vqgan.pt)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="where to train")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (about 2x faster on CPUs with AVX512-BF16)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, batch order and code restarts")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject impossible values with the flag named (argparse exits with status 2)."""
    positive = {"epochs": args.epochs, "batch-size": args.batch_size}
    for flag, value in positive.items():
        if value < 1:
            parser.error(f"--{flag} must be >= 1, got {value}")
    non_negative = {"val-images": args.val_images, "warmup-steps": args.warmup_steps, "disc-start": args.disc_start,
                    "restart-after": args.restart_after, "start-from-epoch": args.start_from_epoch,
                    "threads": args.threads, "num-workers": args.num_workers, "l2-weight": args.l2_weight,
                    "disc-weight": args.disc_weight}
    for flag, value in non_negative.items():
        if not 0 <= value < math.inf:  # NaN and inf fail too
            parser.error(f"--{flag} must be a finite number >= 0, got {value}")
    if not math.isfinite(args.learning_rate) or not args.learning_rate > 0:
        parser.error(f"--learning-rate must be a finite number > 0, got {args.learning_rate}")
    if not 0 < args.partial <= 1:
        parser.error(f"--partial must be in (0, 1], got {args.partial}")
    if args.disc_channels < 1:
        parser.error(f"--disc-channels must be >= 1, got {args.disc_channels}")
    if args.decoder_only and not args.init_from:
        parser.error("--decoder-only needs --init-from (a trained VQGAN whose codes stay fixed)")
    if args.start_from_epoch >= args.epochs:
        parser.error(f"--start-from-epoch {args.start_from_epoch} leaves nothing to do with --epochs {args.epochs}")


def learning_rate(step: int, total_steps: int, args: argparse.Namespace) -> float:
    """Linear warm-up, then constant or cosine decay to 10% of --learning-rate at the last step."""
    if step < args.warmup_steps:
        return args.learning_rate * (step + 1) / args.warmup_steps
    if args.lr_schedule == "constant":
        return args.learning_rate
    progress = min(1.0, (step - args.warmup_steps) / max(1, total_steps - args.warmup_steps))
    return args.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def adaptive_gan_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
    """Taming-transformers' balance: ||d rec / d W_last|| / ||d gan / d W_last||, so neither loss swamps the other."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0.0, 1e4).detach()


def make_loaders(args: argparse.Namespace, image_size: int) -> tuple[DataLoader, DataLoader, RandomSampler]:
    """Train loader (a fresh random --partial subset each epoch) and the fixed validation loader."""
    root = Path(args.data_root)
    train_set = utils.LoadTrainData(root / "train", image_size=image_size)
    val_set = utils.LoadTrainData(root / "val", image_size=image_size)
    if args.val_images:
        val_set.files = val_set.files[: args.val_images]
    per_epoch = max(1, int(len(train_set) * args.partial))
    sampler = RandomSampler(train_set, num_samples=per_epoch, generator=torch.Generator())
    drop_last = per_epoch >= args.batch_size  # equal-sized steps, unless the data set is smaller than a batch
    train = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, drop_last=drop_last,
                       num_workers=args.num_workers, persistent_workers=args.num_workers > 0)
    val = DataLoader(val_set, batch_size=args.batch_size, num_workers=args.num_workers)
    return train, val, sampler


def prepare_output(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """Check --checkpoint-path / --export before any work, so that no earlier run is overwritten by accident."""
    folder = Path(args.checkpoint_path)
    resuming = args.resume or args.start_from_epoch > 0
    if resuming and not (folder / "last.pt").is_file():
        raise TrainError(f"{folder / 'last.pt'}: nothing to resume from (train without --resume first)")
    if not resuming and not args.overwrite and any((folder / n).exists() for n in ("last.pt", "best.pt", LOG_NAME)):
        raise TrainError(f"{folder}: holds an earlier run; pass --resume to continue it or --overwrite to replace it")
    export = Path(args.export) if args.export else None
    if export is not None:
        if export.is_dir():
            raise TrainError(f"--export {export}: is a folder, expected a file path such as checkpoints/vqgan.pt")
        if export.exists() and not args.overwrite:
            raise TrainError(f"--export {export}: exists; pass --overwrite to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    if not resuming:
        (folder / LOG_NAME).unlink(missing_ok=True)  # --overwrite: the old log belongs to the old run
    return folder, export


def append_log(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def export_checkpoint(src: str | Path, dest: str | Path) -> None:
    """Copy a VQGAN checkpoint (checked readable first) to ``dest`` through a temporary file."""
    read_checkpoint(src, "vqgan")
    atomic.copy_file(src, dest)


def train(args: argparse.Namespace) -> dict:
    """Run the whole training described by ``args`` (parsed by ``build_parser``); returns a summary dict.

    Raises utils.DataError, ConfigError, CheckpointError or TrainError with a one-line message.
    """
    if args.threads:
        torch.set_num_threads(args.threads)
    device = utils.resolve_device(args.device)
    cfg = load_vqgan_config(args.config)
    train_loader, val_loader, sampler = make_loaders(args, cfg.image_size)
    folder, export = prepare_output(args)
    torch.manual_seed(args.seed)

    model = VQGAN(cfg).to(device)
    if args.init_from:
        load_model_weights(model, args.init_from, kind="vqgan", config=cfg)
    if args.decoder_only:  # the tokens must not move: freeze everything that decides them
        for module in (model.encoder, model.codebook):
            module.requires_grad_(False)
    trained = model.decoder if args.decoder_only else model
    restarter = DeadCodeRestarter(model.codebook)
    disc = PatchDiscriminator(cfg.image_channels, args.disc_channels).to(device)
    opt = torch.optim.Adam(trained.parameters(), lr=args.learning_rate, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.learning_rate, betas=(0.5, 0.9))
    start_epoch, step, best_psnr, elapsed = 0, 0, -math.inf, 0.0
    if args.resume or args.start_from_epoch > 0:
        last = folder / "last.pt"
        state = read_checkpoint(last, "vqgan")
        check_config(last, state, cfg)
        if args.start_from_epoch and state.get("epoch") != args.start_from_epoch:
            raise CheckpointError(f"{last}: holds epoch {state.get('epoch')}, not --start-from-epoch "
                                  f"{args.start_from_epoch}")
        try:
            model.load_state_dict(state["state_dict"])
            disc.load_state_dict(state["disc"])
            opt.load_state_dict(state["optimizer"])
            opt_d.load_state_dict(state["disc_optimizer"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{last}: not a resumable training state ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0]})") from None
        start_epoch, step, best_psnr = state["epoch"], state["step"], state["best_psnr"]
        elapsed = state.get("meta", {}).get("train_seconds", 0.0)
        torch.set_rng_state(state["rng"])
        if start_epoch >= args.epochs:
            raise TrainError(f"{last}: already holds {start_epoch} epochs; raise --epochs to train further")
        print(f"resumed from {last} at epoch {start_epoch}, step {step}, best val PSNR {best_psnr:.2f} dB")

    # what this tokenizer was made from, recorded in every checkpoint's meta: a transformer checkpoint records the
    # VQGAN file's own identity (models/checkpoint.py tokenizer_identity), this says where that file came from
    origin = {"data_root": str(Path(args.data_root).resolve()), "train_images": len(train_loader.dataset),
              "init_from_sha256": tokenizer_identity(args.init_from)["sha256"] if args.init_from else None}
    total_steps = args.epochs * len(train_loader)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"VQGAN {n_params / 1e6:.2f}M parameters on {device}; {len(train_loader.dataset)} train images, "
          f"{len(train_loader)} steps/epoch x {args.epochs} epochs; {len(val_loader.dataset)} val images")
    last_layer = model.decoder.last_layer.weight
    for epoch in range(start_epoch + 1, args.epochs + 1):
        sampler.generator.manual_seed(args.seed * 1000 + epoch)  # same batches whether resumed or not
        model.train()
        disc.train()
        sums = dict.fromkeys(("loss", "l1", "q_loss", "g_loss", "d_loss"), 0.0)
        restarted, t0 = 0, time.time()
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{args.epochs}", disable=args.quiet,
                   mininterval=1.0 if sys.stderr.isatty() else 60.0)
        for x in bar:
            x = x.to(device)
            lr = learning_rate(step, total_steps, args)
            for group in opt.param_groups + opt_d.param_groups:
                group["lr"] = lr
            use_gan = step >= args.disc_start
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                if args.decoder_only:
                    with torch.no_grad():
                        z_q = model.encode(x)[0]
                    x_rec, q_loss = model.decode(z_q).float(), torch.zeros((), device=device)
                else:
                    x_rec, _, q_loss = model(x)
                    x_rec = x_rec.float()
                l1 = (x_rec - x).abs().mean()
                rec_loss = l1 + args.l2_weight * F.mse_loss(x_rec, x)
                loss = rec_loss + q_loss
                g_loss = torch.zeros(())
                if use_gan:
                    g_loss = -disc(x_rec).float().mean()
                    weight = args.disc_weight
                    if not args.no_adaptive_weight:
                        weight = weight * adaptive_gan_weight(rec_loss, g_loss, last_layer)
                    loss = loss + weight * g_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if args.decoder_only:  # a frozen codebook is neither initialised from data nor restarted
                pass
            elif step == 0 and start_epoch == 0 and not args.init_from:
                restarted += restarter.restart(0)  # data init: the whole codebook from encoder outputs
            elif args.restart_after:
                restarted += restarter.restart(args.restart_after)

            d_loss = torch.zeros(())
            if use_gan:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                    d_real, d_fake = disc(x).float(), disc(x_rec.detach()).float()
                    d_loss = 0.5 * (F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean())  # hinge loss
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()

            step += 1
            values = {"loss": loss, "l1": l1, "q_loss": q_loss, "g_loss": g_loss, "d_loss": d_loss}
            for key, value in values.items():
                sums[key] += value.item()
            bar.set_postfix(l1=f"{l1.item():.4f}", q=f"{q_loss.item():.4f}", lr=f"{lr:.1e}", refresh=False)
            if not math.isfinite(loss.item()):
                raise TrainError(f"loss became {loss.item()} at step {step}; lower --learning-rate")

        n = len(train_loader)
        val = evaluate_reconstruction(model, val_loader, device, ssim=False, bf16=args.bf16)
        epoch_seconds = time.time() - t0
        elapsed += epoch_seconds
        row = {"epoch": epoch, "step": step, "lr": lr, **{f"train_{k}": v / n for k, v in sums.items()},
               "codes_restarted": restarted, "val_l1": val["l1"], "val_psnr": val["psnr"],
               "val_distinct_codes": val["distinct_codes"], "val_perplexity": val["perplexity"],
               "epoch_seconds": epoch_seconds, "total_seconds": elapsed}
        append_log(folder / LOG_NAME, row)
        improved = val["psnr"] > best_psnr
        meta = {"epoch": epoch, "step": step, "val_psnr": val["psnr"], "val_l1": val["l1"],
                "val_distinct_codes": val["distinct_codes"], "val_perplexity": val["perplexity"],
                "train_seconds": elapsed, "seed": args.seed, "command": " ".join(sys.argv),
                "init_from": args.init_from, "decoder_only": args.decoder_only, **origin}
        if improved:
            best_psnr = val["psnr"]
            save_model_checkpoint(folder / "best.pt", "vqgan", cfg, model, half=True, meta=meta)
        save_model_checkpoint(folder / "last.pt", "vqgan", cfg, model, meta=meta, disc=disc.state_dict(),
                              optimizer=opt.state_dict(), disc_optimizer=opt_d.state_dict(), epoch=epoch,
                              step=step, best_psnr=best_psnr, rng=torch.get_rng_state())
        print(f"epoch {epoch}: train L1 {row['train_l1']:.4f}, val L1 {val['l1']:.4f}, val PSNR {val['psnr']:.2f} dB"
              f"{' (best)' if improved else ''}, codes {val['distinct_codes']}/{cfg.num_codebook_vectors} "
              f"(perplexity {val['perplexity']:.1f}), {restarted} restarted, {epoch_seconds:.0f} s", flush=True)

    if export is not None:
        export_checkpoint(folder / "best.pt", export)
        print(f"exported {folder / 'best.pt'} -> {export}")
    return {"best_psnr": best_psnr, "epochs": args.epochs, "steps": step, "train_seconds": elapsed,
            "folder": str(folder)}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    try:
        train(args)
    except (utils.DataError, ConfigError, CheckpointError, TrainError) as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
