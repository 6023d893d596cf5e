"""TODO2, training side: configure_optimizers, train_one_epoch, eval_one_epoch (training_transformer.py).

The trainer gets the graded tree's own tiny MaskGit (the given BidirectionalTransformer with ``pos_emb`` and its real
module types, a real decodable VQGAN; see _tiny.py) run with grader stand-ins (_standins.py): the attention, a
documented ``forward`` that records what each call returned, and a fixed training mask. So these checks grade the
loops alone, whatever the state of the TODO1 attention or the TODO2 masking. The loop checks build the trainer
with a known-good ``configure_optimizers``: a broken one costs its own check only. Only one check looks at what
``train_one_epoch`` returns (the kit logs it); the others look at what the loop does.
"""
from __future__ import annotations

import math

import _standins
import _tiny
import torch
import torch.nn as nn
import torch.nn.functional as F
from _tiny import K, N
from torch.utils.data import DataLoader, TensorDataset

from maskgit_kit.autograder.check import CheckFailure, expect, short, unpack
from maskgit_kit.autograder.points import points

TODO = "TODO2"  # the TODO of every check in this file (see @points)

IGNORE = -100


def tiny_model(impl, monkeypatch, *, dropout: bool = True, seed: int = 0):
    """The real tiny MaskGit with the stand-in attention, forward and fixed mask (``dropout=False``: p = 0)."""
    _standins.use(monkeypatch, impl, "attention", "fixed_mask", "forward")
    model = _tiny.maskgit(impl, seed)
    if not dropout:
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
    model.grader_calls = []
    return model


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


def ce(logits, target, label_smoothing):
    return F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), ignore_index=IGNORE,
                           label_smoothing=label_smoothing)


def run_loop(fn, *args):
    """Run a student loop; a cross-entropy shape error becomes the named mistake."""
    try:
        return fn(*args)
    except (RuntimeError, ValueError) as exc:
        text = str(exc)
        if "target" in text.lower() and ("size" in text or "batch_size" in text or "shape" in text):
            raise CheckFailure("F.cross_entropy in the loop", "classes on the last axis of logits (B, N, K + 1)",
                               f"an error: {text.splitlines()[0][:120]}",
                               "cross-entropy over the wrong axis: flatten to (B*N, K+1) and (B*N,), or "
                               "transpose the logits to (B, K+1, N)") from None
        raise


def mean_loss(model, batches, label_smoothing=0.1):
    with torch.no_grad():
        model.eval()
        return sum(ce(*model(b), label_smoothing).item() for b in batches) / len(batches)


@points(3, "TrainTransformer.configure_optimizers")
def test_configure_optimizers(impl, monkeypatch):
    """configure_optimizers: every transformer parameter (pos_emb too, groups allowed), no VQGAN one, lr, scheduler"""
    model = tiny_model(impl, monkeypatch)
    trainer = make_trainer(impl, model, lr=3e-3)
    opt, sched = unpack(trainer.configure_optimizers(), 2, "configure_optimizers()", "return (optimizer, scheduler)")
    expect(isinstance(opt, torch.optim.Optimizer), "optimizer", "a torch.optim.Optimizer", short(opt))
    got = [id(p) for group in opt.param_groups for p in group["params"]]
    names = {id(p): n for n, p in model.transformer.named_parameters()}
    vqgan = {id(p) for p in model.vqgan.parameters()}
    n_vqgan = len(set(got) & vqgan)
    expect(not n_vqgan, "optimizer parameters", "the transformer's only (the VQGAN is frozen)",
           f"{n_vqgan} of the VQGAN's tensors", "optimize self.model.transformer.parameters(), not "
           "self.model.parameters()")
    missing = [n for i, n in names.items() if i not in set(got)]
    expect(not missing, "transformer parameters in the optimizer", f"all {len(names)}",
           f"missing: {', '.join(missing)}", "pos_emb left out of the optimizer's groups: a minGPT-style split must "
           "put pos_emb (a bare nn.Parameter) in the no-decay group" if "pos_emb" in missing else
           "every parameter of self.model.transformer, each in one group")
    expect(len(got) == len(set(got)) and set(got) <= set(names), "optimizer parameters",
           "each transformer parameter once", f"{len(got)} entries for {len(set(got))} tensors")
    lrs = {group.get("initial_lr", group["lr"]) for group in opt.param_groups}
    expect(all(math.isclose(lr, 3e-3) for lr in lrs), "learning rate of every group", "self.learning_rate (3e-3)",
           short(lrs), "lr=self.learning_rate")
    is_sched = isinstance(sched, (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau))
    expect(is_sched and getattr(sched, "optimizer", None) is opt, "scheduler",
           "a torch.optim.lr_scheduler bound to the returned optimizer", short(sched))


@points(3, "TrainTransformer.train_one_epoch")
def test_train_one_epoch_lowers_loss(impl, monkeypatch):
    """train_one_epoch trains the transformer in train mode: the loss on a small fixed data set goes down"""
    _standins.use(monkeypatch, impl, "optimizer")
    model = tiny_model(impl, monkeypatch)
    torch.manual_seed(0)
    data = loader(2, same_rows=True)
    trainer = make_trainer(impl, model, lr=1e-2, epochs=6, steps_per_epoch=2)
    batches = list(data)
    before = mean_loss(model, batches)
    frozen = [p.clone() for p in model.vqgan.parameters()]
    model.grader_calls.clear()
    for epoch in range(1, 7):
        run_loop(trainer.train_one_epoch, data, epoch)
    calls = list(model.grader_calls)
    after = mean_loss(model, batches)
    expect(calls, "self.model calls in train_one_epoch", "one per batch", "none", "logits, target = "
           "self.model(batch)")
    expect(any(train for train, *_ in calls), "model mode while training", "train mode", "eval mode",
           "call self.model.train()")
    expect(after < 0.7 * before, "masked-token loss after 6 epochs on one repeated sample",
           f"below {0.7 * before:.3f} (it was {before:.3f})", f"{after:.3f}",
           "loss.backward(), self.optim.step(), self.optim.zero_grad()")
    vqgan_same = all(torch.equal(a, b) for a, b in zip(frozen, model.vqgan.parameters(), strict=True))
    expect(vqgan_same, "VQGAN weights", "unchanged", "changed")


@points(3, "TrainTransformer.train_one_epoch")
def test_train_one_epoch_accumulates_gradients(impl, monkeypatch):
    """With accum_grad k the optimizer and scheduler step after batches k, 2k, ..., each on the mean gradient of
    its own k batches (zeroed before every group)"""
    _standins.use(monkeypatch, impl, "optimizer")
    model = tiny_model(impl, monkeypatch, dropout=False)
    torch.manual_seed(0)
    data = loader(8, batch_size=1)
    batches = list(data)
    trainer = make_trainer(impl, model, lr=1e-3, accum_grad=3, epochs=1, steps_per_epoch=8, label_smoothing=0.0)
    opt, sched = trainer.optim, trainer.scheduler
    weight = model.transformer.bias  # (N, K + 1): every batch's masked tokens leave their own mark
    steps, sched_steps, grads, states = [], [], [], [{k: v.clone() for k, v in model.state_dict().items()}]
    original_sched_step = sched.step

    def before_step(optimizer, args, kwargs):
        steps.append(len(model.grader_calls))
        grads.append(None if weight.grad is None else weight.grad.clone())

    def after_step(optimizer, args, kwargs):
        states.append({k: v.clone() for k, v in model.state_dict().items()})

    def counting_sched_step(*args, **kwargs):
        sched_steps.append(len(model.grader_calls))
        return original_sched_step(*args, **kwargs)

    opt.register_step_pre_hook(before_step)
    opt.register_step_post_hook(after_step)
    sched.step = counting_sched_step
    for p in model.transformer.parameters():
        p.grad = torch.full_like(p, 5.0)  # stale gradients: must be cleared before the first batch
    run_loop(trainer.train_one_epoch, data, 1)
    if steps == [1, 4, 7]:
        hint = "accumulation off by one: i % k == 0 steps after batches 1, 4, 7; step when (i + 1) % k == 0"
    else:
        hint = "step only after batches k, 2k, ... ((i + 1) % k == 0); a last incomplete group adds no step"
    expect(steps == [3, 6], "optimizer steps with accum_grad=3 over 8 batches", "after batches 3 and 6",
           f"after batches {steps}", hint)
    expect(sched_steps == [3, 6], "scheduler steps", "after batches 3 and 6 (with the optimizer)",
           f"after batches {sched_steps}" if sched_steps else "never stepped",
           "a scheduler never stepped keeps the warm-up learning rate: self.scheduler.step() after each "
           "self.optim.step()" if not sched_steps else "scheduler.step() next to optimizer.step()")
    # each group's gradient: the mean over its batches at the weights of its start; clipping may shrink it only
    snapshot = _tiny.maskgit(impl)
    for m in snapshot.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    refs = []
    for j in range(2):
        snapshot.load_state_dict(states[j])
        snapshot.train()
        snapshot.zero_grad()
        for b in batches[3 * j: 3 * j + 3]:
            (ce(*snapshot(b), 0.0) / 3).backward()
        refs.append(snapshot.transformer.bias.grad.clone())
    for j, (g, ref) in enumerate(zip(grads, refs, strict=True)):
        what = f"gradient at optimizer step {j + 1}"
        expect(g is not None, what, "the accumulated gradient", "None")
        cos = F.cosine_similarity(g.flatten(), ref.flatten(), dim=0).item()
        if j == 0:
            hint = "zero the gradients at the start of the epoch; (loss / k).backward() for each batch"
        else:
            piled = F.cosine_similarity(g.flatten(), (ref + refs[0]).flatten(), dim=0).item()
            hint = ("gradients pile up across steps: self.optim.zero_grad() after every optimizer step, not only "
                    "at the start of the epoch" if piled > 0.99 else "self.optim.zero_grad() after every step")
        expect(cos > 0.99, f"direction of the {what}", f"the mean gradient of batches {3 * j + 1}-{3 * j + 3} "
               "(cosine > 0.99)", f"cosine {cos:.3f}", hint)
        expect(g.norm() <= ref.norm() * 1.01, f"size of the {what}", f"at most {ref.norm():.3g} (the mean over "
               "k batches)", f"{g.norm():.3g}", "divide the loss by k = self.accum_grad before backward()")


@points(2, "TrainTransformer.train_one_epoch")
def test_train_one_epoch_returns_mean_loss(impl, monkeypatch):
    """train_one_epoch returns the mean over batches of the label-smoothed masked-token loss (a float; k > 1)"""
    _standins.use(monkeypatch, impl, "optimizer")
    model = tiny_model(impl, monkeypatch)
    torch.manual_seed(0)
    data = loader(5)
    trainer = make_trainer(impl, model, lr=1e-3, accum_grad=2, epochs=1, steps_per_epoch=5, label_smoothing=0.1)
    model.grader_calls.clear()
    got = run_loop(trainer.train_one_epoch, data, 1)
    calls = [c for c in model.grader_calls if c[1]]  # the training forwards (gradients on)
    expect(len(calls) == 5, "self.model calls in train_one_epoch", "5 (one per batch)", len(calls))
    losses = [ce(logits, target, 0.1).item() for _, _, logits, target in calls]
    want = sum(losses) / 5
    ok = isinstance(got, (float, int)) or (isinstance(got, torch.Tensor) and got.numel() == 1)
    value = float(got) if ok else None
    close = lambda x: value is not None and abs(value - x) <= 1e-4 * max(1.0, abs(x))  # noqa: E731
    plain = sum(ce(logits, target, 0.0).item() for _, _, logits, target in calls) / 5
    hint = "return total / number of batches, as a float (the kit logs it)"
    if got is None:
        hint = "train_one_epoch returns nothing: return the mean loss (the kit logs it)"
    elif close(plain):
        hint = "no label smoothing: F.cross_entropy(..., label_smoothing=self.label_smoothing)"
    elif close(sum(losses)):
        hint = "the loss summed over batches: divide by the number of batches"
    elif close(want / 2):
        hint = "the mean of loss / k: add up loss.item() before dividing by self.accum_grad"
    elif close(losses[-1]):
        hint = "the last batch's loss: return the mean over all batches"
    expect(close(want), "train_one_epoch's return value with label_smoothing=0.1, accum_grad=2, 5 batches",
           f"{want:.4f} (the mean masked-token loss over batches)", short(got), hint)


def eval_setup(impl, monkeypatch):
    _standins.use(monkeypatch, impl, "optimizer")
    model = tiny_model(impl, monkeypatch)
    trainer = make_trainer(impl, model)
    torch.manual_seed(0)
    model.grader_calls.clear()
    return model, trainer, loader(3)


@points(2, "TrainTransformer.eval_one_epoch")
def test_eval_one_epoch_changes_no_weights(impl, monkeypatch):
    """eval_one_epoch runs in eval mode without gradients and changes no weight"""
    model, trainer, data = eval_setup(impl, monkeypatch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stepped = []
    trainer.optim.register_step_pre_hook(lambda *args: stepped.append(1))
    run_loop(trainer.eval_one_epoch, data, 1)
    calls = model.grader_calls
    expect(calls and not any(train for train, *_ in calls), "model mode during eval_one_epoch",
           "eval mode", "train mode" if calls else "the model was never called", "call self.model.eval()")
    expect(not any(grad for _, grad, *_ in calls), "gradient tracking during eval_one_epoch", "off",
           "on", "keep the @torch.no_grad() decorator (or use with torch.no_grad():)")
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    expect(not changed and not stepped, "weights after eval_one_epoch", "unchanged",
           f"changed: {', '.join(changed) or 'optimizer stepped'}", "no backward or optimizer step in eval")


@points(2, "TrainTransformer.eval_one_epoch")
def test_eval_one_epoch_returns_loss_and_accuracy(impl, monkeypatch):
    """eval_one_epoch returns (mean masked-token loss, masked-token accuracy)"""
    model, trainer, data = eval_setup(impl, monkeypatch)
    loss, acc = unpack(run_loop(trainer.eval_one_epoch, data, 1), 2, "eval_one_epoch()",
                       "return (mean_loss, accuracy)")
    calls = model.grader_calls
    expect(len(calls) == 3, "self.model calls in eval_one_epoch", "3 (one per batch)", len(calls))
    losses, correct, total, tokens = [], 0, 0, 0
    for _, _, logits, target in calls:  # what the student's loop got, whatever mode it ran in
        losses.append(ce(logits, target, 0.1).item())
        m = target != IGNORE
        correct += (logits.argmax(-1)[m] == target[m]).sum().item()
        total += m.sum().item()
        tokens += target.numel()
    want_loss, want_acc = sum(losses) / len(losses), correct / total
    loss = float(loss) if isinstance(loss, torch.Tensor) and loss.numel() == 1 else loss
    acc = float(acc) if isinstance(acc, torch.Tensor) and acc.numel() == 1 else acc
    expect(isinstance(loss, (float, int)) and abs(loss - want_loss) < 1e-4, "mean validation loss",
           f"{want_loss:.4f} (cross-entropy on masked tokens, label_smoothing=self.label_smoothing)", short(loss),
           "same loss as training: F.cross_entropy(..., ignore_index=IGNORE_INDEX, label_smoothing=...)")
    all_tokens = isinstance(acc, (float, int)) and abs(acc - correct / tokens) < 1e-6
    expect(isinstance(acc, (float, int)) and abs(acc - want_acc) < 1e-6, "accuracy", f"{want_acc:.4f} (argmax == "
           "target over masked tokens)", short(acc), "accuracy over all tokens: count only the masked positions "
           "(target != IGNORE_INDEX)" if all_tokens else "count only positions where target != IGNORE_INDEX")
