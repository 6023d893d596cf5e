"""TODO2, training side: configure_optimizers, train_one_epoch, eval_one_epoch (training_transformer.py).

The trainer gets a small stand-in model (``FakeMaskGit``) with the documented interface: ``model(batch)`` returns
``(logits, target)``, ``model.transformer`` is what trains, ``model.vqgan`` is frozen. So these checks grade the
loops alone, whatever the state of the TODO1 attention or the TODO2 masking.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from maskgit_kit.autograder.check import expect, short, unpack
from maskgit_kit.autograder.points import points

TODO = "TODO2"  # the TODO of every check in this file (see @points)

K, N = 16, 16
IGNORE = -100


class TinyTransformer(nn.Module):
    def __init__(self, dropout):
        super().__init__()
        self.tok = nn.Embedding(K + 1, 32)
        self.pos = nn.Parameter(torch.randn(N, 32) * 0.5)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(32, K + 1)

    def forward(self, ids):
        return self.head(self.drop(torch.tanh(self.tok(ids) + self.pos)))


class FakeMaskGit(nn.Module):
    """Masks every other token (a fixed pattern) and records how it was called."""

    def __init__(self, dropout=0.0):
        super().__init__()
        self.transformer = TinyTransformer(dropout)
        self.vqgan = nn.Linear(4, 4).requires_grad_(False)
        self.calls = []  # (training, grad enabled) per forward

    def masked(self, batch):
        mask = (torch.arange(N) % 2 == 0).expand_as(batch)
        return batch.masked_fill(mask, K), batch.masked_fill(~mask, IGNORE)

    def forward(self, batch, ratio=None):
        self.calls.append((self.training, torch.is_grad_enabled()))
        if torch.is_floating_point(batch):
            raise TypeError("the grader's loader yields int64 token ids (B, N)")
        inputs, target = self.masked(batch)
        return self.transformer(inputs), target


def loader(n_batches, batch_size=2, seed=0, same_rows=False):
    """Batches of int64 token ids (B, N); ``same_rows``: every sample alike, so the masked tokens are learnable."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, K, (1 if same_rows else n_batches * batch_size, N), generator=g)
    tokens = tokens.expand(n_batches * batch_size, N).clone()
    return DataLoader(TensorDataset(tokens), batch_size=batch_size, shuffle=False,
                      collate_fn=lambda rows: torch.stack([r[0] for r in rows]).long())


def make_trainer(impl, model, *, lr=1e-2, accum_grad=1, epochs=10, steps_per_epoch=4, label_smoothing=0.1):
    tt = impl.module("training_transformer")
    return tt.TrainTransformer(model, learning_rate=lr, accum_grad=accum_grad, epochs=epochs,
                               steps_per_epoch=steps_per_epoch, warmup_steps=1, label_smoothing=label_smoothing,
                               precision="fp32", device="cpu")


def reference_loss(model, batch, label_smoothing):
    logits, target = model(batch)
    return F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), ignore_index=IGNORE,
                           label_smoothing=label_smoothing)


@points(3, "TrainTransformer.configure_optimizers")
def test_configure_optimizers(impl):
    """configure_optimizers: an optimizer over exactly the transformer's parameters and a scheduler bound to it"""
    model = FakeMaskGit()
    trainer = make_trainer(impl, model, lr=3e-3)
    opt, sched = unpack(trainer.configure_optimizers(), 2, "configure_optimizers()", "return (optimizer, scheduler)")
    expect(isinstance(opt, torch.optim.Optimizer), "optimizer", "a torch.optim.Optimizer", short(opt))
    params = [p for group in opt.param_groups for p in group["params"]]
    want = {id(p) for p in model.transformer.parameters()}
    got = [id(p) for p in params]
    expect(set(got) == want and len(got) == len(want), "optimizer parameters",
           f"the transformer's {len(want)} tensors (not the frozen VQGAN)",
           f"{len(got)} tensors, {len(set(got) & want)} of them the transformer's",
           "pass self.model.transformer.parameters()")
    lrs = {group.get("initial_lr", group["lr"]) for group in opt.param_groups}
    expect(all(math.isclose(lr, 3e-3) for lr in lrs), "learning rate", "self.learning_rate (3e-3)", short(lrs),
           "lr=self.learning_rate")
    is_sched = isinstance(sched, (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau))
    expect(is_sched and getattr(sched, "optimizer", None) is opt, "scheduler",
           "a torch.optim.lr_scheduler bound to the returned optimizer", short(sched))


@points(4, "TrainTransformer.train_one_epoch")
def test_train_one_epoch_lowers_loss(impl):
    """train_one_epoch trains the transformer: the loss on a small fixed data set goes down"""
    torch.manual_seed(0)
    model = FakeMaskGit()
    data = loader(2, same_rows=True)
    trainer = make_trainer(impl, model, lr=1e-2, epochs=15, steps_per_epoch=2)
    batches = [b for b in data]
    with torch.no_grad():
        model.eval()
        before = sum(reference_loss(model, b, 0.1).item() for b in batches) / len(batches)
    frozen = [p.clone() for p in model.vqgan.parameters()]
    losses = [trainer.train_one_epoch(data, epoch) for epoch in range(1, 16)]
    with torch.no_grad():
        model.eval()
        after = sum(reference_loss(model, b, 0.1).item() for b in batches) / len(batches)
    expect(all(isinstance(v, (float, int)) and math.isfinite(v) for v in losses), "train_one_epoch's return value",
           "the mean loss (a finite float)", short(losses[0]), "return total / number of batches as a float")
    expect(any(train for train, _ in model.calls), "model mode while training", "train mode", "eval mode",
           "call self.model.train()")
    expect(after < 0.7 * before, "masked-token loss after 15 epochs on one repeated sample",
           f"below {0.7 * before:.3f} (it was {before:.3f})", f"{after:.3f}",
           "loss.backward(), optimizer step, zero_grad")
    expect(losses[-1] < losses[0], "mean training loss, last vs first epoch", "lower", f"{losses[-1]:.3f} vs "
           f"{losses[0]:.3f}")
    vqgan_same = all(torch.equal(a, b) for a, b in zip(frozen, model.vqgan.parameters(), strict=True))
    expect(vqgan_same, "VQGAN weights", "unchanged", "changed")


@points(4, "TrainTransformer.train_one_epoch")
def test_train_one_epoch_accumulates_gradients(impl):
    """With accum_grad k the optimizer steps once every k batches, on the mean gradient of those k batches"""
    torch.manual_seed(0)
    model = FakeMaskGit()
    data = loader(7, batch_size=1)
    batches = [b for b in data]
    trainer = make_trainer(impl, model, lr=1e-3, accum_grad=3, epochs=1, steps_per_epoch=7, label_smoothing=0.0)
    opt, sched = trainer.optim, trainer.scheduler
    steps, sched_steps, grads = [], [], []
    weight = model.transformer.head.weight
    original_sched_step = sched.step

    def before_step(optimizer, args, kwargs):
        steps.append(len(model.calls))
        grads.append(None if weight.grad is None else weight.grad.clone())

    def counting_sched_step(*args, **kwargs):
        sched_steps.append(len(model.calls))
        return original_sched_step(*args, **kwargs)

    opt.register_step_pre_hook(before_step)
    sched.step = counting_sched_step
    weight.grad = torch.full_like(weight, 5.0)  # stale gradient: must be cleared before the first batch
    snapshot = FakeMaskGit()
    snapshot.load_state_dict(model.state_dict())
    trainer.train_one_epoch(data, 1)
    hint = "step only after batches k, 2k, ... ((i + 1) % k == 0); zero_grad after each step"
    expect(steps == [3, 6], "optimizer steps with accum_grad=3 over 7 batches", "after batches 3 and 6",
           f"after batches {steps}", hint)
    expect(sched_steps == [3, 6], "scheduler steps", "after batches 3 and 6 (with the optimizer)",
           f"after batches {sched_steps}", "scheduler.step() next to optimizer.step()")
    # the first step's gradient: mean of batches 1..3 (before any update); clipping may shrink it, not turn it
    ref = torch.zeros_like(weight)
    for b in batches[:3]:
        snapshot.zero_grad()
        (reference_loss(snapshot, b, 0.0) / 3).backward()
        ref += snapshot.transformer.head.weight.grad
    g = grads[0]
    expect(g is not None, "gradient at the first optimizer step", "the accumulated gradient", "None")
    cos = F.cosine_similarity(g.flatten(), ref.flatten(), dim=0).item()
    expect(cos > 0.99, "direction of the gradient at the first step", "the mean gradient of batches 1-3 "
           "(cosine > 0.99)", f"cosine {cos:.3f}", "zero the gradients at the start; (loss / k).backward()")
    expect(g.norm() <= ref.norm() * 1.01, "size of the gradient at the first step", f"at most {ref.norm():.3g} "
           "(the mean over k batches)", f"{g.norm():.3g}", "divide the loss by k = self.accum_grad")


@pytest.fixture
def eval_setup(impl):
    torch.manual_seed(0)
    model = FakeMaskGit(dropout=0.5)
    trainer = make_trainer(impl, model)
    return model, trainer, loader(3)


@points(2, "TrainTransformer.eval_one_epoch")
def test_eval_one_epoch_changes_no_weights(impl, eval_setup):
    """eval_one_epoch runs in eval mode without gradients and changes no weight"""
    model, trainer, data = eval_setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stepped = []
    trainer.optim.register_step_pre_hook(lambda *args: stepped.append(1))
    trainer.eval_one_epoch(data, 1)
    expect(model.calls and not any(train for train, _ in model.calls), "model mode during eval_one_epoch",
           "eval mode", "train mode" if model.calls else "the model was never called", "call self.model.eval()")
    expect(not any(grad for _, grad in model.calls), "gradient tracking during eval_one_epoch", "off",
           "on", "decorate with @torch.no_grad() or use torch.no_grad()")
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    expect(not changed and not stepped, "weights after eval_one_epoch", "unchanged",
           f"changed: {', '.join(changed) or 'optimizer stepped'}", "no backward or optimizer step in eval")


@points(2, "TrainTransformer.eval_one_epoch")
def test_eval_one_epoch_returns_loss_and_accuracy(impl, eval_setup):
    """eval_one_epoch returns (mean masked-token loss, masked-token accuracy)"""
    model, trainer, data = eval_setup
    loss, acc = unpack(trainer.eval_one_epoch(data, 1), 2, "eval_one_epoch()", "return (mean_loss, accuracy)")
    model.eval()
    losses, correct, total = [], 0, 0
    with torch.no_grad():
        for b in data:
            logits, target = model(b)
            losses.append(reference_loss(model, b, 0.1).item())
            m = target != IGNORE
            correct += (logits.argmax(-1)[m] == target[m]).sum().item()
            total += m.sum().item()
    want_loss, want_acc = sum(losses) / len(losses), correct / total
    expect(isinstance(loss, (float, int)) and abs(loss - want_loss) < 1e-4, "mean validation loss",
           f"{want_loss:.4f} (cross-entropy on masked tokens, label_smoothing=self.label_smoothing)", short(loss),
           "same loss as training: F.cross_entropy(..., ignore_index=IGNORE_INDEX, label_smoothing=...)")
    expect(isinstance(acc, (float, int)) and abs(acc - want_acc) < 1e-6, "accuracy", f"{want_acc:.4f} (argmax == "
           "target over masked tokens)", short(acc), "count only positions where target != IGNORE_INDEX")
