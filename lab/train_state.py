"""One transformer training run's folder (given code): start, resume, checkpoints and the log.

    checkpoint-path/last.pt      the full training state after the latest epoch (``--resume``)
    checkpoint-path/epoch_N.pt   the same after epoch N, every ``--save-per-epoch`` epochs (``--start-from-epoch N``)
    checkpoint-path/best.pt      the transformer weights of the lowest validation loss (float16, config inside)
    checkpoint-path/log.csv      one row per epoch

A training state is a kit checkpoint (``models/checkpoint.py``) plus the optimizer, the scheduler, the epoch,
the best validation loss and the state of every random stream the run draws from (``rng_state``), so that a
resumed run goes on as if it had not stopped: on the CPU, ``--resume`` (or ``--start-from-epoch N``) gives
the uninterrupted run's losses and weights bit for bit when the flags are the same. Every file is written
atomically: an interrupted run never leaves half a checkpoint.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
from pathlib import Path

import torch

from maskgit_kit import atomic
from models.checkpoint import CheckpointError, check_tokenizer, read_checkpoint, save_model_checkpoint

# The flags whose change makes a resumed run differ from the uninterrupted one (``--epochs`` too: the cosine
# schedule's length is computed from it).
RESULT_FLAGS = ("config", "train_d_path", "val_d_path", "batch_size", "accum_grad", "epochs", "learning_rate",
                "warmup_steps", "partial", "token_cache", "precision", "seed")


def rng_state(shuffle: torch.Generator | None = None) -> dict:
    """Every random stream of a training run: the global CPU RNG (the training masks, dropout on the CPU), the
    CUDA ones once CUDA is in use (dropout on a GPU), and ``shuffle``, the training loader's generator (the data
    order of every later epoch). Python's ``random`` and NumPy's are not used by training, so not saved."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if shuffle is not None:
        state["shuffle"] = shuffle.get_state()
    return state


def set_rng_state(state, shuffle: torch.Generator | None, path) -> None:
    """Restore what ``rng_state`` saved (``path`` only names the file in a warning)."""
    if isinstance(state, torch.Tensor):  # written by an older kit: the global RNG only
        state = {"torch": state}
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if shuffle is not None:
        if "shuffle" in state:
            shuffle.set_state(state["shuffle"])
        else:
            print(f"warning: {path} has no data-order state (an older kit wrote it): the epochs after the resume "
                  f"see the data in another order than an uninterrupted run would")


@contextlib.contextmanager
def rng_untouched(device: torch.device):
    """Run a block (building the loaders, which encodes the token cache when it is cold) without moving the
    global RNGs: the training masks then do not depend on whether the cache already existed."""
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        yield


def check_batches(train_loader, val_loader, *, batch_size: int, partial: float, train_dir, val_dir) -> None:
    """An epoch without a batch is an error naming the flags and the sizes (rather than a loss of 0.0)."""
    kept = f" with --partial {partial}" if partial < 1 else ""
    for what, loader, folder in [("training", train_loader, train_dir), ("validation", val_loader, val_dir)]:
        if len(loader) == 0:
            raise SystemExit(f"--batch-size {batch_size}: the {len(loader.dataset)} {what} images of {folder}{kept} "
                             f"make no full batch (the incomplete last batch is dropped), so an epoch would train "
                             f"nothing; use --batch-size {len(loader.dataset)} or less, or more data")


def training_state(trainer, epoch: int, best_val: float, flags: dict | None = None,
                   shuffle: torch.Generator | None = None) -> dict:
    """Everything needed to resume ``trainer`` (a ``TrainTransformer``) after ``epoch``; ``shuffle``: the
    training loader's generator."""
    model = trainer.model
    return {
        "kind": "transformer",
        "config": dataclasses.asdict(model.cfg.transformer),
        "state_dict": {k: v.detach().cpu() for k, v in model.transformer.state_dict().items()},
        "optimizer": trainer.optim.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "epoch": epoch,
        "best_val": best_val,
        "rng": rng_state(shuffle),
        "meta": {"args": {k: str(v) for k, v in (flags or {}).items()}},
        "tokenizer": getattr(model, "tokenizer", None),  # the VQGAN trained on (models.checkpoint.check_tokenizer)
    }


def restore(trainer, path, shuffle: torch.Generator | None = None, flags: dict | None = None) -> tuple[int, float]:
    """Load a training state written by ``training_state`` into ``trainer`` (and the data order into
    ``shuffle``); returns (epoch, best_val). Prints a note when ``flags`` change a result flag of the run."""
    ckpt = read_checkpoint(path, "transformer")
    if "optimizer" not in ckpt:
        raise CheckpointError(f"{path}: holds weights only, not a training state to resume from")
    check_tokenizer(path, ckpt, getattr(trainer.model, "tokenizer", None), trainer.model.cfg.transformer)
    trainer.model.load_transformer_checkpoint(path)
    trainer.optim.load_state_dict(ckpt["optimizer"])
    trainer.scheduler.load_state_dict(ckpt["scheduler"])
    set_rng_state(ckpt["rng"], shuffle, path)
    changes = changed_flags(ckpt.get("meta", {}).get("args", {}), flags or {})
    if changes:
        print(f"note: resuming {path} with other flags ({', '.join(changes)}): the result will differ from the "
              f"uninterrupted run's")
    return int(ckpt["epoch"]), float(ckpt["best_val"])


def changed_flags(saved: dict, flags: dict) -> list[str]:
    """The ``RESULT_FLAGS`` that differ between a state's saved flags (strings) and ``flags``, as
    ``--flag old -> new``."""
    return [f"--{k.replace('_', '-')} {saved[k]} -> {flags[k]}" for k in RESULT_FLAGS
            if k in saved and k in flags and saved[k] != str(flags[k])]


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
        self.shuffle: torch.Generator | None = None
        self.best_val = math.inf
        self.rows: list[dict] = []

    def start(self, trainer, shuffle: torch.Generator | None = None, epochs: int | None = None) -> int:
        """Restore a resumed run into ``trainer`` and ``shuffle`` (the training loader's generator, saved with
        every state from now on); returns the last epoch already done (0 for a new run). A resumed run already
        at ``epochs`` is an error: there would be nothing left to train."""
        self.shuffle = shuffle
        epoch = 0
        if self.resume_from is not None:
            epoch, self.best_val = restore(trainer, self.resume_from, shuffle, self.flags)
            if epochs is not None and epoch >= epochs:
                raise SystemExit(f"{self.resume_from}: the run has already done {epoch} epochs; --epochs {epochs} "
                                 f"leaves nothing to train (pass a larger --epochs)")
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
                                  half=True, meta={"epoch": epoch, "val_loss": val_loss, "val_acc": val_acc},
                                  tokenizer=getattr(model, "tokenizer", None))
        state = training_state(trainer, epoch, self.best_val, self.flags, self.shuffle)
        atomic.torch_save(state, self.folder / "last.pt")
        if keep:
            atomic.torch_save(state, self.folder / f"epoch_{epoch}.pt")
        write_log(self.folder / "log.csv", self.rows)
        return row
