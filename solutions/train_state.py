"""One transformer training run's folder (given code): start, resume, checkpoints and the log.

    checkpoint-path/last.pt      the full training state after the latest epoch (``--resume``)
    checkpoint-path/epoch_N.pt   the same after epoch N, every ``--save-per-epoch`` epochs (``--start-from-epoch N``)
    checkpoint-path/best.pt      the transformer weights of the lowest validation loss (float16, config inside)
    checkpoint-path/log.csv      one row per epoch

A training state is a kit checkpoint (``models/checkpoint.py``) plus the optimizer, the scheduler, the epoch,
the best validation loss and the RNG state, so that a resumed run goes on as if it had not stopped. Every file
is written atomically: an interrupted run never leaves half a checkpoint.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path

import torch

from maskgit_kit import atomic
from models.checkpoint import CheckpointError, read_checkpoint, save_model_checkpoint


def training_state(trainer, epoch: int, best_val: float, flags: dict | None = None) -> dict:
    """Everything needed to resume ``trainer`` (a ``TrainTransformer``) after ``epoch``."""
    model = trainer.model
    return {
        "kind": "transformer",
        "config": dataclasses.asdict(model.cfg.transformer),
        "state_dict": {k: v.detach().cpu() for k, v in model.transformer.state_dict().items()},
        "optimizer": trainer.optim.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "epoch": epoch,
        "best_val": best_val,
        "rng": torch.get_rng_state(),
        "meta": {"args": {k: str(v) for k, v in (flags or {}).items()}},
    }


def restore(trainer, path) -> tuple[int, float]:
    """Load a training state written by ``training_state`` into ``trainer``; returns (epoch, best_val)."""
    ckpt = read_checkpoint(path, "transformer")
    if "optimizer" not in ckpt:
        raise CheckpointError(f"{path}: holds weights only, not a training state to resume from")
    trainer.model.load_transformer_checkpoint(path)
    trainer.optim.load_state_dict(ckpt["optimizer"])
    trainer.scheduler.load_state_dict(ckpt["scheduler"])
    torch.set_rng_state(ckpt["rng"])
    return int(ckpt["epoch"]), float(ckpt["best_val"])


def write_log(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buf.getvalue())


class TrainingRun:
    """The folder of one run: what it resumes from, and what each finished epoch writes.

    Raises ``SystemExit`` naming the flag when the folder and the flags disagree: nothing to resume from,
    ``--init-from`` with a resume, or an earlier run that would be overwritten without ``--overwrite``.
    """

    def __init__(self, folder, *, resume: bool = False, start_from_epoch: int = 0, init_from=None,
                 overwrite: bool = False, flags: dict | None = None):
        self.folder = Path(folder)
        self.resume_from = None
        if start_from_epoch > 0:
            self.resume_from = self.folder / f"epoch_{start_from_epoch}.pt"
        elif resume:
            self.resume_from = self.folder / "last.pt"
        if self.resume_from is not None and not self.resume_from.is_file():
            raise SystemExit(f"{self.resume_from}: no training state to resume from")
        if init_from is not None and self.resume_from is not None:
            raise SystemExit("--init-from starts a new run from trained weights; it cannot be combined with "
                             "--resume or --start-from-epoch")
        if self.resume_from is None and (self.folder / "last.pt").exists() and not overwrite:
            raise SystemExit(f"{self.folder}: already holds a training run (last.pt); pass --resume to continue it, "
                             f"--start-from-epoch N to restart from epoch N, or --overwrite to start over")
        self.flags = dict(flags or {})
        self.best_val = math.inf
        self.rows: list[dict] = []

    def start(self, trainer) -> int:
        """Restore a resumed run into ``trainer``; returns the last epoch already done (0 for a new run)."""
        epoch = 0
        if self.resume_from is not None:
            epoch, self.best_val = restore(trainer, self.resume_from)
            print(f"resumed from {self.resume_from} (epoch {epoch})")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / "log.csv"
        if self.resume_from is not None and log.is_file():
            with log.open(newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= epoch]
        return epoch

    def end_epoch(self, trainer, epoch: int, train_loss: float, val_loss: float, val_acc: float, seconds: float,
                  keep: bool) -> dict:
        """Log ``epoch``, save best.pt when the validation loss improved, last.pt always, and epoch_N.pt when
        ``keep``. Returns the log row."""
        row = {"epoch": epoch, "train_loss": round(train_loss, 5), "val_loss": round(val_loss, 5),
               "val_acc": round(val_acc, 5), "lr": f"{trainer.scheduler.get_last_lr()[0]:.3e}",
               "seconds": round(seconds, 1)}
        self.rows.append(row)
        print(f"epoch {epoch}: train {train_loss:.4f}  val {val_loss:.4f}  val acc {val_acc:.3f}  "
              f"({row['seconds']} s)", flush=True)
        model = trainer.model
        if val_loss < self.best_val:
            self.best_val = val_loss
            save_model_checkpoint(self.folder / "best.pt", "transformer", model.cfg.transformer, model.transformer,
                                  half=True, meta={"epoch": epoch, "val_loss": val_loss, "val_acc": val_acc})
        state = training_state(trainer, epoch, self.best_val, self.flags)
        atomic.torch_save(state, self.folder / "last.pt")
        if keep:
            atomic.torch_save(state, self.folder / f"epoch_{epoch}.pt")
        write_log(self.folder / "log.csv", self.rows)
        return row
