"""Train MaskGIT's bidirectional transformer on VQGAN tokens (stage 2; the VQGAN stays frozen).

    python training_transformer.py --epochs 10     (from this folder; --help lists the flags)
    torchrun --nproc_per_node=2 training_transformer.py ...   (several GPUs; see distributed_training.py)

TODO2: ``configure_optimizers``, ``train_one_epoch`` and ``eval_one_epoch`` of ``TrainTransformer``.
The rest is given: ``token_cache.py`` (the loaders), ``train_state.py`` (checkpoints, resume, log.csv),
``lr_schedule.py`` (``warmup_cosine``), ``command_line.py`` (the flags).
"""
from __future__ import annotations

import contextlib
import math
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

import distributed_training as distributed
from command_line import todo_stubs_as_errors, training_parser
from lr_schedule import warmup_cosine
from models.checkpoint import CheckpointError
from models.config import ConfigError, load_maskgit_config, with_tokenizer
from models.loading import load_maskgit
from models.VQGAN_Transformer import IGNORE_INDEX, MaskGit
from token_cache import build_loaders
from train_state import TrainingRun, check_batches, rng_untouched
from utils import DataError, resolve_device


class TrainTransformer:
    """Holds the model, the optimizer and the training settings (plain values).

    Attributes the TODOs use:
      - self.model: ``MaskGit``; only ``self.model.transformer`` is trained.
      - self.learning_rate: float, the peak learning rate.
      - self.accum_grad: int >= 1, batches per optimizer step.
      - self.label_smoothing: float, for the cross-entropy (0.1 in MaskGIT).
      - self.device: ``torch.device`` where batches must go.
      - self.total_steps, self.warmup_steps: optimizer steps in the whole run (ceil(epochs * steps_per_epoch /
        accum_grad)) and in the warm-up (``warmup_steps``, at most a fifth of the run).
      - self.autocast(): context manager for mixed precision (a no-op when ``precision="fp32"``).
    """

    def __init__(self, model: MaskGit, *, learning_rate: float, accum_grad: int = 1, epochs: int = 1,
                 steps_per_epoch: int = 100, warmup_steps: int = 200, label_smoothing: float = 0.1,
                 precision: str = "fp32", device="cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.learning_rate = learning_rate
        self.accum_grad = accum_grad
        self.label_smoothing = label_smoothing
        self.total_steps = max(1, math.ceil(epochs * steps_per_epoch / accum_grad))
        self.warmup_steps = max(1, min(warmup_steps, self.total_steps // 5))
        self.precision = precision
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
          the VQGAN is frozen), learning rate ``self.learning_rate``. MaskGIT uses AdamW with
          betas (0.9, 0.96) and weight decay 0.045. Parameter groups are fine (e.g. minGPT's decay / no-decay
          split by module type) as long as every transformer parameter, the bare ``pos_emb`` and ``bias``
          included, is in exactly one group and every group's lr is ``self.learning_rate``.
        - scheduler: a ``torch.optim.lr_scheduler`` bound to that optimizer, stepped once per optimizer
          step; e.g. ``LambdaLR`` with ``warmup_cosine(step, self.warmup_steps, self.total_steps)``.
        """
        # ============================== TODO2 ==============================
        # configure_optimizers: AdamW over the transformer + warm-up/cosine scheduler
        # (contract: see this function's docstring)
        # ===================================================================
        raise NotImplementedError("TODO2: configure_optimizers: AdamW over the transformer + warm-up/cosine scheduler")

    def train_one_epoch(self, train_loader, epoch=0):
        """Train for one pass over ``train_loader``; return the mean training loss (a float, or a 0-d tensor).

        The kit logs what you return (log.csv): the mean over batches of the (label-smoothed) loss of each
        batch, not divided by k. It is graded in one check of its own; the other checks look at what the loop does.

        - Each batch is either images, float (B, 3, H, W), or cached token ids, int64 (B, N); move it to
          ``self.device`` and call ``self.model(batch)`` -> ``(logits, target)``.
        - Loss: cross-entropy over the masked positions only (``ignore_index=IGNORE_INDEX``) with
          ``label_smoothing=self.label_smoothing``; compute it in float32 (cast the logits) inside
          ``self.autocast()``.
        - Gradient accumulation: divide the loss by ``k = self.accum_grad``; call
          ``self.optim.step()``, ``self.scheduler.step()`` and ``self.optim.zero_grad()`` exactly after
          batches k, 2k, 3k, ... (a last incomplete group adds no step). Zero the gradients at the start.
          Clipping the gradient norm before the step (e.g. to 1.0) is optional; it steadies post-LN training.
        - Put the model in train mode; show a tqdm bar with the running loss.
        """
        # ============================== TODO2 ==============================
        # train_one_epoch: masked-token cross-entropy, gradient accumulation
        # (contract: see this function's docstring)
        # ===================================================================
        raise NotImplementedError("TODO2: train_one_epoch: masked-token cross-entropy, gradient accumulation")

    @torch.no_grad()
    def eval_one_epoch(self, val_loader, epoch=0):
        """Evaluate on ``val_loader`` without changing any weight; return ``(mean_loss, accuracy)``.

        ``mean_loss``: the same masked-token loss as in training (float); ``accuracy``: the fraction of
        masked tokens whose argmax prediction equals the target (float in [0, 1]). Eval mode, no gradients.
        """
        # ============================== TODO2 ==============================
        # eval_one_epoch: validation loss and masked-token accuracy, no weight changes
        # (contract: see this function's docstring)
        # ===================================================================
        raise NotImplementedError("TODO2: eval_one_epoch: validation loss and masked-token accuracy, no weight changes")


def train(args) -> list[dict]:
    """The epoch loop: train, validate, log, checkpoint (``train_state.TrainingRun``). Returns the log rows.

    Under ``torchrun`` (``distributed_training.py``) every process trains on its share of each epoch's batches, the
    gradients averaged across processes; rank 0 validates and writes the files while the others wait."""
    torch.manual_seed(args.seed)
    cfg = with_tokenizer(load_maskgit_config(args.config), args.vqgan_ckpt)
    with distributed.process_group(resolve_device(args.device)) as device:
        run = TrainingRun(args.checkpoint_path, resume=args.resume, start_from_epoch=args.start_from_epoch,
                          init_from=args.init_from, overwrite=args.overwrite, flags=vars(args))
        model = load_maskgit(cfg, device, transformer_ckpt=args.init_from, grow_classes=True)
        if args.init_from is not None:
            print(f"initialised the transformer from {args.init_from} (new optimizer and schedule)")
        # rng_untouched: a cold token cache (encoded now) and a warm one give the same run; main_first: only rank 0
        # encodes and writes a cold cache
        with distributed.main_first(), rng_untouched(device):
            train_loader, val_loader = build_loaders(
                model, device, args.train_d_path, args.val_d_path, batch_size=args.batch_size,
                partial=args.partial, token_cache=args.token_cache, cache_dir=args.token_cache_dir,
                num_workers=args.num_workers, seed=args.seed, shard=distributed.shard())
        check_batches(train_loader, val_loader, batch_size=args.batch_size, partial=args.partial,
                      train_dir=args.train_d_path, val_dir=args.val_d_path)
        trainer = TrainTransformer(model, learning_rate=args.learning_rate, accum_grad=args.accum_grad,
                                   epochs=args.epochs, steps_per_epoch=len(train_loader),
                                   warmup_steps=args.warmup_steps, label_smoothing=cfg.label_smoothing,
                                   precision=args.precision, device=device)
        # a resumed run: its weights, optimizer, schedule, RNG state and data order (the loader's shuffle generator)
        start = run.start(trainer, shuffle=train_loader.generator, epochs=args.epochs)
        if distributed.steps_note(args.batch_size) and distributed.is_main():
            print(distributed.steps_note(args.batch_size))
        for epoch in range(start + 1, args.epochs + 1):
            t0 = time.time()
            distributed.seed_epoch(args.seed, epoch)  # ranks > 0 only: their own masks, the same after a resume
            with distributed.ddp_transformer(model):  # gradients averaged across ranks (torchrun only)
                train_loss = distributed.average(trainer.train_one_epoch(train_loader, epoch))
            if distributed.is_main():
                with torch.random.fork_rng():  # the same validation masks every epoch, so losses compare
                    torch.manual_seed(args.seed)
                    val_loss, val_acc = trainer.eval_one_epoch(val_loader, epoch)
                run.end_epoch(trainer, epoch, train_loss, val_loss, val_acc, time.time() - t0,
                              keep=epoch % args.save_per_epoch == 0 or epoch == args.epochs)
            distributed.barrier()  # the others wait for rank 0's files
    return run.rows


def main(argv=None) -> None:
    args = training_parser().parse_args(argv)
    try:
        train(args)
    except (ConfigError, DataError, CheckpointError) as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    with todo_stubs_as_errors():
        main()
