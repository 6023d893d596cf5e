"""Train TiTok, the 1D tokenizer, from the kit's VQGAN (stage 1 of TiTok; the teacher stays frozen).

    python training_titok.py --config config/TiTok_k32.yml --epochs 20     (from this folder; --help lists the flags)

The targets are the teacher's code ids of the training images, read from the token cache (``token_cache.py``; built
with the teacher once when it is cold): no VQGAN pass per step. The loss is the proxy-code cross-entropy plus the
codebook's commitment loss; codes no latent used over ``--restart-every`` steps are restarted on encoder outputs.

    checkpoint-path/last.pt   the full training state after the latest epoch (``--resume``: bit for bit on the CPU)
    checkpoint-path/best.pt   the weights of the best validation proxy-code accuracy (float16, config, teacher)
    checkpoint-path/log.csv   per epoch: losses, proxy-code accuracy, distinct codes used, perplexity, lr, seconds
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from command_line import (
    PRECISIONS,
    fraction,
    nonnegative_int,
    positive_float,
    positive_int,
    seed_int,
    todo_stubs_as_errors,
)
from lr_schedule import warmup_cosine
from maskgit_kit import atomic
from models.checkpoint import CheckpointError, check_config, read_checkpoint
from models.config import ConfigError
from models.TiTok import TiTok, load_titok_config, usage_stats, with_teacher
from models.TiTok.teacher import (
    KIND,
    check_cache_teacher,
    check_teacher_checkpoint,
    check_trained_teacher,
    load_teacher,
    save_titok,
)
from token_cache import cache_key, load_or_build_tokens
from train_state import changed_flags, rng_state, set_rng_state, write_log
from utils import DEFAULT_DATA_ROOT, DataError, LoadTrainData, read_image, resolve_device

HERE = Path(__file__).resolve().parent


def titok_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="training_titok.py", description="Train the TiTok 1D tokenizer (stage 1)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=str(HERE / "config" / "TiTok_k32.yml"), help="TiTok config (YAML)")
    p.add_argument("--num-latent-tokens", type=positive_int, default=None,
                   help="override the config's K (at most its max_latent_tokens)")
    p.add_argument("--vqgan-ckpt", default=None, help="the teacher VQGAN (default: the config's VQ_CKPT_path)")
    p.add_argument("--train-d-path", default=str(DEFAULT_DATA_ROOT / "train"), help="training images")
    p.add_argument("--val-d-path", default=str(DEFAULT_DATA_ROOT / "val"), help="validation images")
    p.add_argument("--token-cache-dir", default=str(DEFAULT_DATA_ROOT / "token_cache"),
                   help="the teacher's cached code ids (shared with training_transformer.py)")
    p.add_argument("--checkpoint-path", default=str(HERE / "titok_checkpoints"),
                   help="folder for last.pt (training state), best.pt (weights) and log.csv")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--limit", type=positive_int, default=None,
                   help="use the first N training (and N validation) images")
    p.add_argument("--partial", type=fraction, default=1.0, help="fraction of the data to use (after --limit)")
    p.add_argument("--learning-rate", type=positive_float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=nonnegative_int, default=200, help="optimizer steps of linear warm-up")
    p.add_argument("--restart-every", type=nonnegative_int, default=200,
                   help="restart codes unused over this many steps (0: never)")
    p.add_argument("--resume", action="store_true", help="resume from checkpoint-path/last.pt")
    p.add_argument("--overwrite", action="store_true", help="start over even if checkpoint-path holds a run")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="bf16 autocast (slower on AVX2 CPUs)")
    p.add_argument("--seed", type=seed_int, default=0)
    return p


RESULT_FLAGS = ("config", "num_latent_tokens", "train_d_path", "val_d_path", "batch_size", "epochs", "limit",
                "partial", "learning_rate", "weight_decay", "warmup_steps", "restart_every", "precision", "seed")


class _LazyTeacher:
    """What ``token_cache.load_or_build_tokens`` needs to encode a cold cache: the teacher, loaded on first use."""

    def __init__(self, cfg, identity, device):
        self.cfg, self.tokenizer, self.device, self.vqgan = cfg, identity, device, None

    @torch.no_grad()
    def encode_to_z(self, x):
        if self.vqgan is None:
            self.vqgan = load_teacher(self.cfg, self.device)[0]
        z_q, ids, _ = self.vqgan.encode(x)
        return z_q, ids.reshape(x.shape[0], -1)


def split_data(folder, cfg, identity, cache_dir, device, split: str, limit: int | None, partial: float):
    """(images uint8 (M, 3, H, W), teacher codes int64 (M, G, G)) of the first images of ``folder``.

    The teacher's codes come from the token cache of the whole folder (so the transformer's cache is shared), checked
    to be this teacher's (``check_cache_teacher``)."""
    data = LoadTrainData(folder)
    path = Path(cache_dir) / f"{split}-{cache_key(data.files, cfg.teacher_ckpt_path)}.pt"
    if path.is_file():
        check_cache_teacher(path, identity, len(data), cfg.titok)
    with torch.random.fork_rng():  # a cold cache and a warm one give the same run
        tokens = load_or_build_tokens(_LazyTeacher(cfg, identity, device), data, cache_dir, cfg.teacher_ckpt_path,
                                      device, split)
    n = len(data) if limit is None else min(limit, len(data))
    n = max(1, int(n * partial))
    G = cfg.titok.teacher_grid
    if tokens.shape[1] != G * G:
        raise DataError(f"{path}: {tokens.shape[1]} codes per image, teacher_grid {G} needs {G * G}")
    images = np.stack([read_image(f, "RGB", cfg.titok.image_size) for f in tqdm(data.files[:n], desc=f"read {split}",
                                                                               leave=False)])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), tokens[:n].long().reshape(n, G, G)


def to_float(images: torch.Tensor, device) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float (B, 3, H, W) in [-1, 1] on ``device`` (as ``utils.image_to_tensor``)."""
    return images.to(device).float() / 127.5 - 1.0


class TrainTiTok:
    """The model, AdamW with warm-up + cosine, and one epoch of training / validation."""

    def __init__(self, model: TiTok, *, learning_rate: float, weight_decay: float, total_steps: int,
                 warmup_steps: int, restart_every: int, precision: str, device):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.total_steps = max(1, total_steps)
        self.warmup_steps = max(1, min(warmup_steps, self.total_steps // 5))
        self.restart_every = restart_every
        self.precision = precision
        self.step = 0
        self.optim = torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=(0.9, 0.99),
                                       weight_decay=weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optim, lambda s: warmup_cosine(s, self.warmup_steps, self.total_steps))

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def train_one_epoch(self, loader, epoch: int = 0) -> dict:
        self.model.train()
        total, batches, restarted = 0.0, 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch} train", leave=False)
        for images, codes in bar:
            x, codes = to_float(images, self.device), codes.to(self.device)
            with self.autocast():
                out = self.model(x, codes)
            loss = out.loss + out.q_loss
            self.optim.zero_grad()  # set_to_none, torch's default
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optim.step()
            self.scheduler.step()
            self.step += 1
            if self.restart_every and self.step % self.restart_every == 0:
                with torch.no_grad(), self.autocast():
                    z = self.model.to_code(self.model.encode_latents(
                        self.model.patch_embed(x).flatten(2).transpose(1, 2)))
                restarted += self.model.quantizer.restart_dead_codes(z)
            total += out.loss.item()
            batches += 1
            bar.set_postfix_str(f"loss {total / batches:.4f}, lr {self.scheduler.get_last_lr()[0]:.2e}")
        return {"train_loss": total / max(1, batches), "restarted": restarted}

    @torch.no_grad()
    def eval_one_epoch(self, loader, epoch: int = 0) -> dict:
        self.model.eval()
        total, batches, correct, counted, ids = 0.0, 0, 0, 0, []
        for images, codes in tqdm(loader, desc=f"epoch {epoch} val", leave=False):
            x, codes = to_float(images, self.device), codes.to(self.device)
            with self.autocast():
                out = self.model(x, codes)
            total += out.loss.item()
            batches += 1
            correct += (out.logits.argmax(1) == codes).sum().item()
            counted += codes.numel()
            ids.append(out.ids.cpu())
        usage = usage_stats(torch.cat(ids), self.model.cfg.codebook_size)
        return {"val_loss": total / max(1, batches), "val_acc": correct / max(1, counted),
                "codes_used": usage.distinct, "perplexity": usage.perplexity}


def training_state(trainer: TrainTiTok, epoch: int, best: float, teacher: dict, flags: dict, shuffle) -> dict:
    model = trainer.model
    return {"kind": KIND, "config": dataclasses.asdict(model.cfg),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": trainer.optim.state_dict(), "scheduler": trainer.scheduler.state_dict(),
            "step": trainer.step, "epoch": epoch, "best_val_acc": best, "rng": rng_state(shuffle),
            "teacher": teacher, "meta": {"args": {k: str(v) for k, v in flags.items()}}}


def restore(trainer: TrainTiTok, path: Path, teacher: dict, flags: dict, shuffle) -> tuple[int, float]:
    """Load a state written by ``training_state``; returns (epoch, best validation accuracy)."""
    ckpt = read_checkpoint(path, KIND)
    if "optimizer" not in ckpt:
        raise CheckpointError(f"{path}: holds weights only, not a training state to resume from")
    check_config(path, ckpt, trainer.model.cfg)
    check_trained_teacher(path, ckpt, teacher)
    trainer.model.load_state_dict(ckpt["state_dict"])
    trainer.optim.load_state_dict(ckpt["optimizer"])
    trainer.scheduler.load_state_dict(ckpt["scheduler"])
    trainer.step = int(ckpt["step"])
    set_rng_state(ckpt["rng"], shuffle, path)
    changes = changed_flags(ckpt.get("meta", {}).get("args", {}), {k: flags[k] for k in RESULT_FLAGS if k in flags})
    if changes:
        print(f"note: resuming {path} with other flags ({', '.join(changes)}): the result will differ")
    return int(ckpt["epoch"]), float(ckpt["best_val_acc"])


def train(args) -> list[dict]:
    """Train, validate, log and checkpoint every epoch; returns the log rows."""
    torch.manual_seed(args.seed)
    cfg = with_teacher(load_titok_config(args.config, args.num_latent_tokens), args.vqgan_ckpt)
    device = resolve_device(args.device)
    folder = Path(args.checkpoint_path)
    last = folder / "last.pt"
    if args.resume and not last.is_file():
        raise SystemExit(f"{last}: no training state to resume from")
    if not args.resume and last.exists() and not args.overwrite:
        raise SystemExit(f"{folder}: already holds a training run (last.pt); pass --resume to continue it or "
                         f"--overwrite to start over")
    teacher = check_teacher_checkpoint(cfg.teacher_ckpt_path, cfg.titok)
    train_set = split_data(args.train_d_path, cfg, teacher, args.token_cache_dir, device, "train", args.limit,
                           args.partial)
    val_set = split_data(args.val_d_path, cfg, teacher, args.token_cache_dir, device, "val", args.limit, args.partial)
    if len(train_set[0]) < args.batch_size:
        raise SystemExit(f"--batch-size {args.batch_size}: the {len(train_set[0])} training images make no full batch; "
                         f"use --batch-size {len(train_set[0])} or less")
    shuffle = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(TensorDataset(*train_set), batch_size=args.batch_size, shuffle=True, drop_last=True,
                              generator=shuffle)
    val_loader = DataLoader(TensorDataset(*val_set), batch_size=args.batch_size, shuffle=False)
    model = TiTok(cfg.titok)
    trainer = TrainTiTok(model, learning_rate=args.learning_rate, weight_decay=args.weight_decay,
                         total_steps=args.epochs * len(train_loader), warmup_steps=args.warmup_steps,
                         restart_every=args.restart_every, precision=args.precision, device=device)
    flags = vars(args)
    start, best, rows = 0, -math.inf, []
    if args.resume:
        start, best = restore(trainer, last, teacher, flags, shuffle)
        if start >= args.epochs:
            raise SystemExit(f"{last}: the run has already done {start} epochs; pass a larger --epochs")
        if (folder / "log.csv").is_file():
            with (folder / "log.csv").open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= start]
        print(f"resumed from {last} (epoch {start})")
    folder.mkdir(parents=True, exist_ok=True)
    for epoch in range(start + 1, args.epochs + 1):
        t0 = time.time()
        stats = trainer.train_one_epoch(train_loader, epoch)
        with torch.random.fork_rng():
            val = trainer.eval_one_epoch(val_loader, epoch)
        row = {"epoch": epoch, "train_loss": round(stats["train_loss"], 5), "val_loss": round(val["val_loss"], 5),
               "val_acc": round(val["val_acc"], 5), "codes_used": val["codes_used"],
               "perplexity": round(val["perplexity"], 2), "restarted": stats["restarted"],
               "lr": f"{trainer.scheduler.get_last_lr()[0]:.3e}", "seconds": round(time.time() - t0, 1)}
        rows.append(row)
        print(f"epoch {epoch}: train {row['train_loss']:.4f}  val {row['val_loss']:.4f}  proxy-code acc "
              f"{row['val_acc']:.3f}  codes {row['codes_used']}  perplexity {row['perplexity']:.1f}  "
              f"({row['seconds']} s)", flush=True)
        if val["val_acc"] > best:
            best = val["val_acc"]
            save_titok(folder / "best.pt", model, teacher, meta={"epoch": epoch, **val})
        atomic.torch_save(training_state(trainer, epoch, best, teacher, flags, shuffle), last)
        write_log(folder / "log.csv", rows)
    return rows


def main(argv=None) -> None:
    args = titok_parser().parse_args(argv)
    try:
        train(args)
    except (ConfigError, DataError, CheckpointError) as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    with todo_stubs_as_errors():
        main()
