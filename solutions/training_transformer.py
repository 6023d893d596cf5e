"""Train MaskGIT's bidirectional transformer on VQGAN tokens (stage 2; the VQGAN stays frozen).

    cd solutions && python training_transformer.py --epochs 10

TODO2: ``configure_optimizers``, ``train_one_epoch`` and ``eval_one_epoch`` of ``TrainTransformer``.
The rest (data, token cache, checkpoints, resume, logging) is given.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from models.checkpoint import CheckpointError, atomic_torch_save, read_checkpoint, save_model_checkpoint
from models.config import ConfigError, load_maskgit_config
from models.VQGAN_Transformer import IGNORE_INDEX, MaskGit, load_maskgit
from token_cache import load_or_build_tokens, token_loader
from utils import DEFAULT_DATA_ROOT, DataError, LoadTrainData, resolve_device

HERE = Path(__file__).resolve().parent  # defaults are relative to this script's folder


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to 0.1 (post-LN blocks need warm-up)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


class TrainTransformer:
    """Holds the model, the optimizer and the training state.

    Attributes the TODOs use:
      - self.model: ``MaskGit``; only ``self.model.transformer`` is trained.
      - self.args: the parsed flags (``learning_rate``, ``accum_grad``, ...).
      - self.device: where batches must go.
      - self.label_smoothing: float, for the cross-entropy (0.1 in MaskGIT).
      - self.total_steps, self.warmup_steps: optimizer steps in the whole run and in the warm-up.
      - self.autocast(): context manager for mixed precision (a no-op when ``--precision fp32``).
    """

    def __init__(self, args, cfg, model: MaskGit | None = None, steps_per_epoch: int = 100):
        self.args = args
        self.cfg = cfg
        self.device = resolve_device(getattr(args, "device", "cpu"))
        if model is None:
            model = load_maskgit(cfg, self.device)
        self.model = model.to(self.device)
        self.label_smoothing = cfg.label_smoothing
        self.total_steps = max(1, math.ceil(args.epochs * steps_per_epoch / args.accum_grad))
        self.warmup_steps = max(1, min(getattr(args, "warmup_steps", 200), self.total_steps // 5))
        self.precision = getattr(args, "precision", "fp32")
        self.optim, self.scheduler = self.configure_optimizers()

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------------------------------------
    # TODO2: optimizer and the training / validation loops
    # ------------------------------------------------------------------------------------------------
    def configure_optimizers(self):
        """Return ``(optimizer, scheduler)``.

        - optimizer: over exactly the transformer's parameters (``self.model.transformer.parameters()``;
          the VQGAN is frozen), learning rate ``self.args.learning_rate``. MaskGIT uses AdamW with
          betas (0.9, 0.96) and weight decay 0.045.
        - scheduler: a ``torch.optim.lr_scheduler`` bound to that optimizer, stepped once per optimizer
          step; e.g. ``LambdaLR`` with ``warmup_cosine(step, self.warmup_steps, self.total_steps)``.
        """
        # BEGIN SOLUTION TODO2: configure_optimizers: AdamW over the transformer + warm-up/cosine scheduler
        optimizer = torch.optim.AdamW(self.model.transformer.parameters(), lr=self.args.learning_rate,
                                      betas=(0.9, 0.96), weight_decay=0.045)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, self.warmup_steps, self.total_steps))
        return optimizer, scheduler
        # END SOLUTION

    def train_one_epoch(self, train_loader, epoch=0):
        """Train for one pass over ``train_loader``; return the mean training loss (a float).

        - Each batch is either images, float (B, 3, H, W), or cached token ids, int64 (B, N); move it to
          ``self.device`` and call ``self.model(batch)`` -> ``(logits, target)``.
        - Loss: cross-entropy over the masked positions only (``ignore_index=IGNORE_INDEX``) with
          ``label_smoothing=self.label_smoothing``; compute it in float32 (cast the logits) inside
          ``self.autocast()``.
        - Gradient accumulation: divide the loss by ``k = self.args.accum_grad``; call
          ``self.optim.step()``, ``self.scheduler.step()`` and ``self.optim.zero_grad()`` exactly after
          batches k, 2k, 3k, ... (a last incomplete group adds no step). Zero the gradients at the start.
          Clipping the gradient norm before the step (e.g. to 1.0) is optional; it steadies post-LN training.
        - Put the model in train mode; show a tqdm bar with the running loss.
        """
        # BEGIN SOLUTION TODO2: train_one_epoch: masked-token cross-entropy, gradient accumulation
        self.model.train()
        self.optim.zero_grad(set_to_none=True)
        k = self.args.accum_grad
        total, batches = 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch} train", leave=False)
        for i, batch in enumerate(bar):
            batch = batch.to(self.device)
            with self.autocast():
                logits, target = self.model(batch)
                loss = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(),
                                       ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing)
            (loss / k).backward()
            if (i + 1) % k == 0:
                torch.nn.utils.clip_grad_norm_(self.model.transformer.parameters(), 1.0)
                self.optim.step()
                self.scheduler.step()
                self.optim.zero_grad(set_to_none=True)
            total += loss.item()
            batches += 1
            bar.set_postfix(loss=f"{total / batches:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
        self.optim.zero_grad(set_to_none=True)
        return total / max(1, batches)
        # END SOLUTION

    @torch.no_grad()
    def eval_one_epoch(self, val_loader, epoch=0):
        """Evaluate on ``val_loader`` without changing any weight; return ``(mean_loss, accuracy)``.

        ``mean_loss``: the same masked-token loss as in training (float); ``accuracy``: the fraction of
        masked tokens whose argmax prediction equals the target (float in [0, 1]). Eval mode, no gradients.
        """
        # BEGIN SOLUTION TODO2: eval_one_epoch: validation loss and masked-token accuracy, no weight changes
        self.model.eval()
        total, batches, correct, counted = 0.0, 0, 0, 0
        for batch in tqdm(val_loader, desc=f"epoch {epoch} val", leave=False):
            batch = batch.to(self.device)
            with self.autocast():
                logits, target = self.model(batch)
                loss = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(),
                                       ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing)
            masked = target != IGNORE_INDEX
            correct += (logits.argmax(-1)[masked] == target[masked]).sum().item()
            counted += masked.sum().item()
            total += loss.item()
            batches += 1
        return total / max(1, batches), correct / max(1, counted)
        # END SOLUTION

    # ------------------------------------------------------------------------------------------------
    # Given: checkpoints
    # ------------------------------------------------------------------------------------------------
    def training_state(self, epoch: int, best_val: float) -> dict:
        return {
            "kind": "transformer",
            "config": dataclasses.asdict(self.cfg.transformer),
            "state_dict": {k: v.detach().cpu() for k, v in self.model.transformer.state_dict().items()},
            "optimizer": self.optim.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": epoch,
            "best_val": best_val,
            "rng": torch.get_rng_state(),
            "meta": {"args": {k: str(v) for k, v in vars(self.args).items()}},
        }

    def restore(self, path) -> tuple[int, float]:
        """Load a full training state written by ``training_state``; returns (epoch, best_val)."""
        ckpt = read_checkpoint(path, "transformer")
        if "optimizer" not in ckpt:
            raise CheckpointError(f"{path}: holds weights only, not a training state to resume from")
        self.model.load_transformer_checkpoint(path)
        self.optim.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"])
        return int(ckpt["epoch"]), float(ckpt["best_val"])


def build_loaders(args, model: MaskGit, device) -> tuple[DataLoader, DataLoader]:
    """Train / val loaders: cached token ids (default) or images encoded every batch (``--no-token-cache``)."""
    train_set = LoadTrainData(args.train_d_path, partial=args.partial)
    val_set = LoadTrainData(args.val_d_path, partial=args.partial)
    if not args.token_cache:
        gen = torch.Generator().manual_seed(args.seed)
        return (DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True, generator=gen,
                           num_workers=args.num_workers),
                DataLoader(val_set, batch_size=args.batch_size, shuffle=False, num_workers=args.num_workers))
    ckpt = model.cfg.vqgan_ckpt_path
    train_tokens = load_or_build_tokens(model, train_set, args.token_cache_dir, ckpt, device, "train")
    val_tokens = load_or_build_tokens(model, val_set, args.token_cache_dir, ckpt, device, "val")
    return (token_loader(train_tokens, args.batch_size, shuffle=True, seed=args.seed),
            token_loader(val_tokens, args.batch_size, shuffle=False))


def train(args) -> list[dict]:
    """The epoch loop: train, validate, log, checkpoint. Returns the per-epoch log rows."""
    torch.manual_seed(args.seed)
    cfg = load_maskgit_config(args.config)
    device = resolve_device(args.device)
    out = Path(args.checkpoint_path)
    resume_from = None
    if args.start_from_epoch > 0:
        resume_from = out / f"epoch_{args.start_from_epoch}.pt"
    elif args.resume:
        resume_from = out / "last.pt"
    if resume_from is not None and not resume_from.is_file():
        raise SystemExit(f"{resume_from}: no training state to resume from")
    if args.init_from is not None and resume_from is not None:
        raise SystemExit("--init-from starts a new run from trained weights; it cannot be combined with "
                         "--resume or --start-from-epoch")
    if resume_from is None and (out / "last.pt").exists() and not args.overwrite:
        raise SystemExit(f"{out}: already holds a training run (last.pt); pass --resume to continue it, "
                         f"--start-from-epoch N to restart from epoch N, or --overwrite to start over")

    model = load_maskgit(cfg, device, transformer_ckpt=args.init_from)
    if args.init_from is not None:
        print(f"initialised the transformer from {args.init_from} (new optimizer and schedule)")
    train_loader, val_loader = build_loaders(args, model, device)
    trainer = TrainTransformer(args, cfg, model=model, steps_per_epoch=len(train_loader))
    start, best_val = 0, math.inf
    if resume_from is not None:
        start, best_val = trainer.restore(resume_from)
        print(f"resumed from {resume_from} (epoch {start})")

    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.csv"
    rows = []
    if resume_from is not None and log_path.is_file():
        rows = [r for r in csv.DictReader(log_path.open()) if int(r["epoch"]) <= start]
    for epoch in range(start + 1, args.epochs + 1):
        t0 = time.time()
        train_loss = trainer.train_one_epoch(train_loader, epoch)
        with torch.random.fork_rng():  # the same validation masks every epoch, so losses compare
            torch.manual_seed(args.seed)
            val_loss, val_acc = trainer.eval_one_epoch(val_loader, epoch)
        row = {"epoch": epoch, "train_loss": round(train_loss, 5), "val_loss": round(val_loss, 5),
               "val_acc": round(val_acc, 5), "lr": f"{trainer.scheduler.get_last_lr()[0]:.3e}",
               "seconds": round(time.time() - t0, 1)}
        rows.append(row)
        print(f"epoch {epoch}: train {train_loss:.4f}  val {val_loss:.4f}  val acc {val_acc:.3f}  "
              f"({row['seconds']} s)", flush=True)
        if val_loss < best_val:
            best_val = val_loss
            save_model_checkpoint(out / "best.pt", "transformer", cfg.transformer, model.transformer, half=True,
                                  meta={"epoch": epoch, "val_loss": val_loss, "val_acc": val_acc})
        state = trainer.training_state(epoch, best_val)
        atomic_torch_save(state, out / "last.pt")
        if epoch % args.save_per_epoch == 0 or epoch == args.epochs:
            atomic_torch_save(state, out / f"epoch_{epoch}.pt")
        _write_log(log_path, rows)
    return rows


def _write_log(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=str(HERE / "config" / "MaskGit.yml"), help="MaskGIT config (YAML)")
    p.add_argument("--train-d-path", default=str(DEFAULT_DATA_ROOT / "train"), help="training images")
    p.add_argument("--val-d-path", default=str(DEFAULT_DATA_ROOT / "val"), help="validation images")
    p.add_argument("--checkpoint-path", default=str(HERE / "transformer_checkpoints"),
                   help="folder for epoch_N.pt / last.pt (training states), best.pt (weights) and log.csv")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--accum-grad", type=positive_int, default=1, help="batches per optimizer step")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--learning-rate", type=float, default=4e-4)
    p.add_argument("--warmup-steps", type=int, default=200, help="optimizer steps of linear warm-up")
    p.add_argument("--save-per-epoch", type=positive_int, default=1, help="write epoch_N.pt every N epochs")
    p.add_argument("--start-from-epoch", type=int, default=0, help="resume from checkpoint-path/epoch_N.pt")
    p.add_argument("--resume", action="store_true", help="resume from checkpoint-path/last.pt")
    p.add_argument("--init-from", default=None,
                   help="start a new run from these transformer weights (e.g. ../checkpoints/transformer.pt)")
    p.add_argument("--overwrite", action="store_true", help="start over even if checkpoint-path holds a run")
    p.add_argument("--partial", type=float, default=1.0, help="fraction of the data to use")
    p.add_argument("--num-workers", type=int, default=0, help="data-loader workers (image mode only)")
    p.add_argument("--token-cache", action=argparse.BooleanOptionalAction, default=True,
                   help="encode the images once and train on cached token ids")
    p.add_argument("--token-cache-dir", default=str(DEFAULT_DATA_ROOT / "token_cache"))
    p.add_argument("--precision", choices=("fp32", "bf16"), default="bf16",
                   help="bf16 autocast roughly doubles CPU throughput")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    try:
        train(args)
    except (ConfigError, DataError, CheckpointError) as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
