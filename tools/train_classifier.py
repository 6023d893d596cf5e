"""Train the generation classifier (``maskgit_kit.scoring.classifier``) on data/fashion64/train, validating on val/.

Labels come from the benchmark's meta.json (``maskgit_kit.class_labels``). fp32 on the CPU, seeded: the same
seed and thread count give the same weights. The weights of the epoch with the best validation accuracy are
written atomically to --out (default checkpoints/classifier.pt) and one row per epoch to --log.

    python tools/train_classifier.py --epochs 8 --seed 0 --threads 2      # about 5 minutes on 2 shared cores

checkpoints/README.md has the command, wall time and accuracy of the shipped checkpoint.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from maskgit_kit import atomic
from maskgit_kit.class_labels import folder_labels
from maskgit_kit.images import DataError, list_images, read_image
from maskgit_kit.paths import CHECKPOINTS, DATA_ROOT
from maskgit_kit.scoring.classifier import ClassifierConfig, SmallCNN, class_accuracy, make_checkpoint, to_input

LOG_COLUMNS = ["epoch", "lr", "train_loss", "train_accuracy", "val_accuracy", "val_ci95_low", "val_ci95_high",
               "epoch_seconds", "total_seconds"]


def load_split(folder: str | Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(uint8 images (N, S, S, 3), int64 labels (N,), class names) of a train/ or val/ folder, file order."""
    files = list_images(folder, "training images")[:limit]
    size = read_image(files[0], "RGB", size=_side(files[0])).shape[0]
    classes, labels = folder_labels(folder, len(files))
    images = np.stack([read_image(p, "RGB", size) for p in files])
    return images, np.asarray(labels, np.int64), classes


def _side(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as img:
        return img.size[0]


def train(train_dir: str | Path, val_dir: str | Path, epochs: int = 8, batch_size: int = 128, lr: float = 2e-3,
          seed: int = 0, limit: int | None = None, val_limit: int | None = None,
          cfg: ClassifierConfig | None = None, log=print) -> tuple[dict, list[dict]]:
    """Train and return (the checkpoint dict of the best validation epoch, the per-epoch log rows)."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    x_train, y_train, classes = load_split(train_dir, limit)
    x_val, y_val, val_classes = load_split(val_dir, val_limit)
    if val_classes != classes:
        raise DataError(f"{val_dir}: class names differ from {train_dir}'s")
    cfg = cfg or ClassifierConfig(num_classes=len(classes), image_size=x_train.shape[1])
    model = SmallCNN(cfg)
    model.classes = classes
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = -(-len(x_train) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                   pct_start=0.15)
    generator = torch.Generator().manual_seed(seed)
    x_all, y_all = torch.from_numpy(x_train), torch.from_numpy(y_train)
    rows, best, best_acc = [], None, -1.0
    for epoch in range(1, epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_all), generator=generator)
        total_loss, hits = 0.0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            x, y = to_input(x_all[idx]), y_all[idx]
            flip = torch.rand(len(x), generator=generator) < 0.5  # left-right mirror: clothes stay their class
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(idx)
            hits += int((logits.argmax(1) == y).sum())
        val = class_accuracy(model, x_val, y_val)
        now = time.perf_counter()
        row = {"epoch": epoch, "lr": f"{schedule.get_last_lr()[0]:.3g}",
               "train_loss": f"{total_loss / len(order):.4f}", "train_accuracy": f"{hits / len(order):.4f}",
               "val_accuracy": f"{val['accuracy']:.4f}", "val_ci95_low": f"{val['ci95'][0]:.4f}",
               "val_ci95_high": f"{val['ci95'][1]:.4f}", "epoch_seconds": f"{now - epoch_start:.1f}",
               "total_seconds": f"{now - start:.1f}"}
        rows.append(row)
        log(", ".join(f"{k} {v}" for k, v in row.items()))
        if val["accuracy"] > best_acc:
            best_acc = val["accuracy"]
            best = make_checkpoint(model, classes, {"epoch": epoch, "val_accuracy": val["accuracy"], "val_n": val["n"],
                                                    "seed": seed, "epochs": epochs, "batch_size": batch_size,
                                                    "lr": lr, "train_images": len(x_train),
                                                    "train_dir": str(train_dir), "val_dir": str(val_dir)})
    return best, rows


def log_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train-dir", type=Path, default=DATA_ROOT / "train")
    p.add_argument("--val-dir", type=Path, default=DATA_ROOT / "val")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=2e-3, help="peak of the one-cycle schedule")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads (the result depends on it)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--val-limit", type=int, default=None, help="use only the first N validation images")
    p.add_argument("--out", type=Path, default=CHECKPOINTS / "classifier.pt")
    p.add_argument("--log", type=Path, default=CHECKPOINTS / "classifier_train_log.csv")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out.exists() and not args.force:
        print(f"error: {args.out} exists; pass --force to replace it", file=sys.stderr)
        return 1
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size), ("--threads", args.threads)):
        if value < 1:
            print(f"error: {flag} {value}: expected a positive integer", file=sys.stderr)
            return 1
    torch.set_num_threads(args.threads)
    try:
        ckpt, rows = train(args.train_dir, args.val_dir, args.epochs, args.batch_size, args.learning_rate, args.seed,
                           args.limit, args.val_limit)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ckpt["meta"]["threads"] = args.threads
    atomic.torch_save(ckpt, args.out)
    atomic.write_text(args.log, log_csv(rows))
    print(f"wrote {args.out} (epoch {ckpt['meta']['epoch']}, val accuracy {ckpt['meta']['val_accuracy']:.4f}) "
          f"and {args.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
