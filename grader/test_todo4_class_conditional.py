"""TODO4 (extension): the class-conditional transformer (models/Transformer/class_conditional.py) and
guided_decoding (inpainting.py).

An extension pool of its own (POOL below): its points are reported beside the course's 100, never added to them.
The model checks wrap the given BidirectionalTransformer (the grader's attention, no dropout) and compare with the
documented result computed from that net directly, so any correct way of building the (B, N + 1) input passes.
The decoding checks replace ``model.inpainting_step`` by a recording stand-in (TODO3 is not charged here).
"""
from __future__ import annotations

import math

import _standins
import _tiny
import pytest
import torch

from maskgit_kit.autograder.check import expect, expect_tensor, max_abs_diff, short, unpack
from maskgit_kit.autograder.points import points

TODO = "TODO4"  # the TODO of every check in this file (see @points)
POOL = "extension"  # graded beside the core 100 points, not inside them
K, N, C = 16, 16, 5  # codes, image tokens, classes: ids 0..15 codes, 16 mask, 17..21 classes, 22 "no class"
NULL = K + 1 + C
TOKEN_IDS, FORWARD, DECODE = ("ClassConditionalTransformer.class_token_ids", "ClassConditionalTransformer.forward",
                              "guided_decoding")


def tconfig(impl):
    c = impl.module("models.config")
    return c.TransformerConfig(num_image_tokens=N, num_codebook_vectors=K, dim=32, n_layers=2, hidden_dim=64,
                               num_heads=4, dropout=0.0, attn_dropout=0.0, num_classes=C)


@pytest.fixture
def cc(impl, monkeypatch):
    """The student's ClassConditionalTransformer over a tiny random net (eval mode, class dropout 0.5)."""
    _standins.use(monkeypatch, impl, "attention")
    mod = impl.module("models.Transformer.class_conditional")
    torch.manual_seed(0)
    model = mod.ClassConditionalTransformer(tconfig(impl), class_dropout=0.5).eval()
    with torch.no_grad():  # distinct class rows: every class moves the image logits
        model.net.tok_emb.weight[K + 1:] += torch.randn(C + 1, 32)
    model.rows = []  # the batch sizes the net's blocks saw (one entry per pass)
    model.net.blocks.register_forward_pre_hook(lambda m, args: model.rows.append(args[0].shape[0]))
    return model


def masked_ids(batch: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randint(0, K, (batch, N), generator=g)
    return z.masked_fill(torch.rand(batch, N, generator=g) < 0.4, K)


def labels_of(batch: int = 4) -> torch.Tensor:
    return torch.tensor([3, 0, 4, 1, 2, 0, 3, 1][:batch])


@torch.no_grad()
def net_logits(model, ids, classes, prepend=False):
    """What the net says about the image positions for the class ids ``classes`` (B,): the expected logits."""
    col = classes[:, None].long()
    seq = torch.cat([col, ids], 1) if prepend else torch.cat([ids, col], 1)
    out = model.net(seq)
    return (out[:, 1:] if prepend else out[:, :N])[..., :K + 1]


def call(model, ids, labels, guidance=1.0, generator=None):
    model.labels, model.guidance, model.generator = labels, guidance, generator
    with torch.no_grad():
        out = model(ids.clone())
    expect_tensor(out, "forward(masked_ids)", (len(ids), N, K + 1), hint="return the logits of the N image positions "
                  "over the K codes and the mask id: drop the class position and the class columns")
    return out.float()


def diagnose(model, out, ids, labels) -> str:
    """A hint naming a common mistake whose result ``out`` matches."""
    cls = labels + K + 1
    null = torch.full_like(cls, NULL)
    tries = {"the class token prepended (position 0)": net_logits(model, ids, cls, prepend=True),
             "class ids K + label (the offset must be K + 1: K is the mask token)": net_logits(model, ids, labels + K),
             "every image given \"no class\" (self.labels ignored?)": net_logits(model, ids, null)}
    for what, logits in tries.items():
        if max_abs_diff(out, logits) < 1e-4:
            return f"your logits are those of {what}"
    return "the class token id goes after the N image ids: self.net(torch.cat([masked_ids, ids[:, None]], 1))"


@points(2, TOKEN_IDS)
def test_class_ids_and_no_class(impl, cc):
    """class_token_ids: class c gets id K + 1 + c, NO_CLASS (-1) gets the "no class" id K + 1 + C (int64)"""
    no_class = impl.module("models.Transformer.class_conditional").NO_CLASS
    labels = torch.tensor([0, 3, no_class, C - 1, no_class, 1])
    ids = cc.class_token_ids(labels.clone())
    expect_tensor(ids, "class_token_ids(labels)", (6,), torch.int64)
    want = torch.tensor([K + 1, K + 4, NULL, K + C, NULL, K + 2])
    expect(torch.equal(ids, want), f"class ids with K = {K}, C = {C}", short(want), short(ids),
           "class c -> first_class_id + c = K + 1 + c; NO_CLASS -> null_class_id = K + 1 + C")


@points(3, TOKEN_IDS)
def test_class_dropout_draws(impl, cc):
    """Dropped images are exactly torch.rand(B, generator=g) < p (same generator state, same images); none at p = 0"""
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    want = torch.where(torch.rand(10, generator=torch.Generator().manual_seed(5)) < 0.5, NULL, labels + K + 1)
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        ids = cc.class_token_ids(labels.clone(), 0.5, torch.Generator().manual_seed(5))
        expect_tensor(ids, "class_token_ids(labels, 0.5, g)", (10,), torch.int64)
        expect(torch.equal(ids, want), f"class ids with drop_prob 0.5 (generator seed 5, global seed {global_seed})",
               short(want.tolist()), short(ids.tolist()), "dropped = torch.rand(B, generator=generator) < drop_prob; "
               "draw from the generator, not the global RNG, and drop an image to null_class_id")
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    ids = cc.class_token_ids(labels.clone(), 0.0, g)
    expect(torch.equal(ids, labels + K + 1), "class ids with drop_prob 0", "no image dropped",
           short(ids.tolist()))
    expect(torch.equal(g.get_state(), state), "the generator with drop_prob 0", "untouched (no draw at all)",
           "advanced", "draw only when drop_prob > 0")


@points(3, FORWARD)
def test_forward_appends_class_token(impl, cc):
    """The class token goes after the N image tokens: logits = net([ids, K + 1 + label])[:, :N, :K + 1]"""
    ids, labels = masked_ids(), labels_of()
    out = call(cc, ids, labels)
    want = net_logits(cc, ids, labels + K + 1)
    expect(max_abs_diff(out, want) < 1e-4, "logits of the image positions (eval mode, guidance 1)",
           "the net's output for [image ids, class id] at positions 0..N-1", f"a difference of "
           f"{max_abs_diff(out, want):.3g}", diagnose(cc, out, ids, labels))


@points(2, FORWARD)
def test_forward_labels_none_is_unconditional(impl, cc):
    """With self.labels None every image gets the "no class" token K + 1 + C"""
    ids = masked_ids()
    out = call(cc, ids, None)
    want = net_logits(cc, ids, torch.full((len(ids),), NULL))
    expect(max_abs_diff(out, want) < 1e-4, "logits with labels None", "those of the \"no class\" id K + 1 + C",
           f"a difference of {max_abs_diff(out, want):.3g}", "labels None: every image is unconditional")


@points(3, FORWARD)
def test_forward_dropout_only_in_training(impl, cc):
    """Training mode drops classes with self.class_dropout from self.generator; eval mode never drops"""
    ids, labels = masked_ids(8), labels_of(8)
    dropped = torch.rand(8, generator=torch.Generator().manual_seed(11)) < 0.5
    want = net_logits(cc, ids, torch.where(dropped, NULL, labels + K + 1))
    cc.train()
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        out = call(cc, ids, labels, generator=torch.Generator().manual_seed(11))
        expect(max_abs_diff(out, want) < 1e-4, f"training-mode logits (class_dropout 0.5, generator seed 11, global "
               f"seed {global_seed})", f"those of the classes with images {dropped.nonzero().flatten().tolist()} "
               "dropped", f"a difference of {max_abs_diff(out, want):.3g}",
               "training: class_token_ids(labels, self.class_dropout, self.generator)")
    cc.eval()
    g = torch.Generator().manual_seed(11)
    state = g.get_state()
    out = call(cc, ids, labels, generator=g)
    want = net_logits(cc, ids, labels + K + 1)
    expect(max_abs_diff(out, want) < 1e-4, "eval-mode logits (class_dropout 0.5)", "no class dropped",
           f"a difference of {max_abs_diff(out, want):.3g}", "class dropout is for training only")
    expect(torch.equal(g.get_state(), state), "self.generator in eval mode", "untouched (no draw)", "advanced")


@points(3, FORWARD)
def test_forward_guidance(impl, cc):
    """Guidance g != 1 (eval): uncond + g * (cond - uncond) of two passes; g = 1 is one pass; none in training"""
    ids, labels = masked_ids(), labels_of()
    cond, uncond = net_logits(cc, ids, labels + K + 1), net_logits(cc, ids, torch.full((len(ids),), NULL))
    for g in (2.5, 0.0):
        out = call(cc, ids, labels, guidance=g)
        want = uncond + g * (cond - uncond)
        found = "cond + g * (uncond - cond) (inverted)" if max_abs_diff(out, cond + g * (uncond - cond)) < 1e-4 else (
            "the conditional logits" if max_abs_diff(out, cond) < 1e-4 else
            f"a difference of {max_abs_diff(out, want):.3g}")
        expect(max_abs_diff(out, want) < 1e-4, f"logits with guidance {g} (eval mode)",
               "uncond + g * (cond - uncond)", found, "one conditional and one \"no class\" pass, combined")
    cc.rows.clear()
    out = call(cc, ids, labels, guidance=1.0)
    expect(sum(cc.rows) == len(ids) and max_abs_diff(out, cond) < 1e-4, "guidance 1",
           f"one conditional pass over the {len(ids)} images", f"{sum(cc.rows)} rows through the net",
           "g = 1 is plain conditional: no unconditional pass")
    cc.train()
    cc.class_dropout = 0.0
    out = call(cc, ids, labels, guidance=3.0)
    expect(max_abs_diff(out, cond) < 1e-4, "training-mode logits with guidance 3 (class_dropout 0)",
           "the conditional logits (no guidance in training)", f"a difference of {max_abs_diff(out, cond):.3g}",
           "guidance is for sampling (eval mode) only")


# --- guided_decoding ----------------------------------------------------------------------------------------------
@pytest.fixture
def maskgit(impl):
    """A tiny class-conditional MaskGit (its step is replaced by a recorder in every check)."""
    c = impl.module("models.config")
    base = _tiny.config(impl)
    cfg = c.MaskGitConfig(**{**vars(base), "transformer": c.TransformerConfig(**{**_tiny.TRANSFORMER,
                                                                                 "num_classes": C})})
    torch.manual_seed(0)
    return impl.module("models.VQGAN_Transformer").MaskGit(cfg).eval()


class StepRecorder:
    """Stands in for model.inpainting_step: records each call and the model's conditioning at that moment, reveals
    tokens in index order."""

    def __init__(self, model):
        self.model, self.calls, self.returned = model, [], []

    def __call__(self, z_indices, mask, num_unknown_start, ratio, choice_temperature=4.5, sample=True,
                 generators=None):
        t = self.model.transformer
        labels = None if t.labels is None else torch.as_tensor(t.labels).clone()
        self.calls.append({"z": z_indices.clone(), "mask": mask.clone(), "n0": torch.as_tensor(num_unknown_start),
                           "ratio": float(ratio), "temperature": choice_temperature, "sample": sample,
                           "generators": generators, "labels": labels, "guidance": float(t.guidance)})
        n0 = torch.as_tensor(num_unknown_start).long()
        keep = (n0.double() * (1 - float(ratio))).floor().long() if ratio < 1 else torch.zeros_like(n0)
        rank = mask.long().cumsum(1)
        new_mask = mask & (rank > (mask.sum(1) - keep.clamp(max=mask.sum(1)))[:, None])
        z_pred = torch.where(mask, torch.full_like(z_indices, len(self.calls) % _tiny.K), z_indices)
        self.returned.append((z_pred, new_mask))
        return z_pred, new_mask


def decode(impl, model, z, mask, labels, total_iter, **kwargs):
    out = impl.module("inpainting").guided_decoding(model, z, mask, labels, total_iter, **kwargs)
    z_final, history = unpack(out, 2, "guided_decoding(...)", "return (z_final, history), as iterative_decoding")
    expect_tensor(z_final, "z_final", z.shape, torch.int64)
    expect(isinstance(history, list) and all(isinstance(h, (tuple, list)) and len(h) == 2 for h in history),
           "history", "a list of (z_pred, new_mask) pairs, one per step", short(history))
    return z_final, history


@points(3, DECODE)
def test_guided_schedule_and_history(impl, maskgit):
    """Step t gets ratio (t + 1) / T, N0, the previous step's output and the options; history as iterative_decoding"""
    z, mask = _tiny.tokens_and_mask()
    rec = maskgit.inpainting_step = StepRecorder(maskgit)
    g = [torch.Generator().manual_seed(i) for i in range(3)]
    z_final, history = decode(impl, maskgit, z, mask, torch.tensor([1, 0, 4]), 5, guidance=2.0, generators=g,
                              choice_temperature=2.0, sample=False)
    ratios = [c["ratio"] for c in rec.calls]
    expect(len(ratios) == 5 and all(math.isclose(r, (t + 1) / 5) for t, r in enumerate(ratios)),
           "ratios passed to inpainting_step with T = 5", "[0.2, 0.4, 0.6, 0.8, 1.0] ((t + 1) / T)",
           short([round(r, 3) for r in ratios]))
    n0 = mask.sum(1)
    for t, c in enumerate(rec.calls):
        prev_z, prev_mask = (z, mask) if t == 0 else rec.returned[t - 1]
        expect(torch.equal(c["n0"].reshape(-1).long(), n0), f"num_unknown_start at step {t}", short(n0.tolist()),
               short(c["n0"].tolist()), "compute N0 = mask.sum(1) once, before the loop")
        expect(torch.equal(c["mask"], prev_mask) and torch.equal(c["z"][~c["mask"]], prev_z[~c["mask"]]),
               f"ids and mask passed at step {t}", "the previous step's (z_pred, new_mask)", "something else")
        expect(c["generators"] is g and c["temperature"] == 2.0 and c["sample"] is False,
               f"options passed at step {t}", "generators, choice_temperature=2.0, sample=False as given",
               f"generators {'ok' if c['generators'] is g else 'missing'}, temperature {c['temperature']}, "
               f"sample {c['sample']}", "pass generators=generators and **step_kwargs to every step")
    expect(len(history) == 5 and all(torch.equal(h[0], r[0]) and torch.equal(h[1], r[1])
                                     for h, r in zip(history, rec.returned, strict=False)),
           "history", "the (z_pred, new_mask) of each step, in order", f"{len(history)} entries, not those")
    expect(torch.equal(z_final, rec.returned[-1][0]), "z_final", "z_pred of the last step", "something else")


@points(1, DECODE)
def test_guided_sweet_spot(impl, maskgit):
    """sweet_spot = 3 of T = 8 runs 3 steps of the 8-step schedule"""
    z, mask = _tiny.tokens_and_mask()
    rec = maskgit.inpainting_step = StepRecorder(maskgit)
    z_final, history = decode(impl, maskgit, z, mask, torch.tensor([0, 1, 2]), 8, sweet_spot=3)
    ratios = [round(c["ratio"], 4) for c in rec.calls]
    expect(ratios == [0.125, 0.25, 0.375] and len(history) == 3, "ratios with total_iter = 8, sweet_spot = 3",
           [0.125, 0.25, 0.375], ratios, "stop after sweet_spot steps; the ratio still divides by total_iter")


@points(3, DECODE)
def test_guided_steps_are_conditioned(impl, maskgit):
    """Every step runs inside model.conditioned(labels, g): the labels and guidance g at each call, reset after"""
    z, mask = _tiny.tokens_and_mask()
    rec = maskgit.inpainting_step = StepRecorder(maskgit)
    labels = torch.tensor([4, -1, 2])
    decode(impl, maskgit, z, mask, labels.clone(), 4, guidance=2.5)
    for t, c in enumerate(rec.calls):
        expect(c["labels"] is not None and torch.equal(c["labels"].reshape(-1).long(), labels),
               f"the model's labels during step {t}", short(labels.tolist()), short(c["labels"]),
               "call each inpainting_step inside `with model.conditioned(labels, scale):`")
        expect(math.isclose(c["guidance"], 2.5), f"the model's guidance during step {t} (ramp off)", 2.5,
               c["guidance"], "scale = guidance at every step when ramp is False")
    t = maskgit.transformer
    expect(t.labels is None and t.guidance == 1.0, "the model after guided_decoding",
           "unconditioned again (labels None, guidance 1)", f"labels {short(t.labels)}, guidance {t.guidance}",
           "use the context manager model.conditioned: it restores the model when the block ends")


@points(2, DECODE)
def test_guided_ramp(impl, maskgit):
    """ramp=True: step t uses 1 + (g - 1) * (t + 1) / T (also with a sweet spot: still divided by T)"""
    z, mask = _tiny.tokens_and_mask()
    for total, sweet, g in ((4, None, 3.0), (8, 3, 0.0)):
        rec = maskgit.inpainting_step = StepRecorder(maskgit)
        decode(impl, maskgit, z, mask, torch.tensor([0, 1, 2]), total, guidance=g, ramp=True, sweet_spot=sweet)
        want = [1 + (g - 1) * (t + 1) / total for t in range(sweet or total)]
        found = [c["guidance"] for c in rec.calls]
        expect(len(found) == len(want) and all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(found, want,
                                                                                             strict=False)),
               f"guidance per step with ramp=True, g = {g}, T = {total}, sweet_spot = {sweet}",
               short([round(w, 4) for w in want]), short([round(f, 4) for f in found]),
               "scale = 1 + (guidance - 1) * (t + 1) / total_iter at step t (0-based)")
