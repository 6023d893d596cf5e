"""TODO3: iterative_decoding (inpainting.py), and the whole inpainting script on a tiny model.

The schedule and argument checks replace ``model.inpainting_step`` by a recording stand-in, so they grade the
loop alone; the others run the student's own step with the grader's attention and cosine schedule.
"""
from __future__ import annotations

import math

import _standins
import _tiny
import numpy as np
import pytest
import torch
from _tiny import K
from PIL import Image

from maskgit_kit.autograder.check import expect, expect_tensor, short, unpack
from maskgit_kit.autograder.points import points

TODO = "TODO3"  # the TODO of every check in this file (see @points)


@pytest.fixture
def model(impl, monkeypatch):
    _standins.use(monkeypatch, impl, "attention", "gamma")
    return _tiny.maskgit(impl)


def decode(impl, model, z, mask, total_iter, sweet_spot=None, choice_temperature=4.5, **kwargs):
    out = impl.module("inpainting").iterative_decoding(model, z, mask, total_iter, sweet_spot,
                                                       choice_temperature=choice_temperature, **kwargs)
    z_final, history = unpack(out, 2, "iterative_decoding(...)", "return (z_final, history)")
    expect_tensor(z_final, "z_final", z.shape, torch.int64)
    expect(isinstance(history, list) and all(isinstance(h, (tuple, list)) and len(h) == 2 for h in history),
           "history", "a list of (z_pred, new_mask) pairs, one per step", short(history))
    return z_final, history


class StepRecorder:
    """Stands in for model.inpainting_step: records each call, reveals tokens in index order."""

    def __init__(self):
        self.calls, self.returned = [], []

    def __call__(self, z_indices, mask, num_unknown_start, ratio, choice_temperature, sample=True, generators=None):
        self.calls.append({"z": z_indices.clone(), "mask": mask.clone(), "n0": torch.as_tensor(num_unknown_start),
                           "ratio": float(ratio), "temperature": choice_temperature, "sample": sample,
                           "generators": generators})
        n0 = torch.as_tensor(num_unknown_start).long()
        keep = (n0.double() * (1 - float(ratio))).floor().long() if ratio < 1 else torch.zeros_like(n0)
        rank = mask.long().cumsum(1)  # 1.. over the unknown positions, in index order
        new_mask = mask & (rank > (mask.sum(1) - keep.clamp(max=mask.sum(1)))[:, None])
        z_pred = torch.where(mask, torch.full_like(z_indices, len(self.calls) % K), z_indices)
        self.returned.append((z_pred, new_mask))
        return z_pred, new_mask


@points(4, "iterative_decoding")
def test_loop_schedule_and_arguments(impl, model):
    """Step t gets ratio (t + 1) / T, the original N0, the previous step's output, and the caller's options"""
    z, mask = _tiny.tokens_and_mask()
    rec = model.inpainting_step = StepRecorder()
    g = [torch.Generator().manual_seed(i) for i in range(3)]
    z_final, history = decode(impl, model, z, mask, 5, generators=g, choice_temperature=2.0, sample=False)
    ratios = [c["ratio"] for c in rec.calls]
    expect(len(ratios) == 5 and all(math.isclose(r, (t + 1) / 5) for t, r in enumerate(ratios)),
           "ratios passed to inpainting_step with T = 5", "[0.2, 0.4, 0.6, 0.8, 1.0] ((t + 1) / T)",
           short([round(r, 3) for r in ratios]), "ratio = (t + 1) / total_iter (t = 0 would reveal nothing)")
    n0 = mask.sum(1)
    for t, c in enumerate(rec.calls):
        expect(torch.equal(c["n0"].reshape(-1).long(), n0), f"num_unknown_start at step {t}",
               f"{n0.tolist()} (unknown before step 0)", short(c["n0"].tolist()),
               "compute N0 = mask.sum(1) once, before the loop")
        prev_z, prev_mask = (z, mask) if t == 0 else rec.returned[t - 1]
        expect(torch.equal(c["mask"], prev_mask), f"mask passed at step {t}",
               "the original mask" if t == 0 else "new_mask of the previous step", "something else",
               "feed each step's new_mask into the next step")
        known = ~c["mask"]
        expect(torch.equal(c["z"][known], prev_z[known]), f"token ids passed at step {t}",
               "the input ids" if t == 0 else "z_pred of the previous step", "something else",
               "feed each step's z_pred into the next step")
        expect(c["generators"] is g and c["temperature"] == 2.0 and c["sample"] is False,
               f"options passed at step {t}", "generators, choice_temperature=2.0, sample=False as given",
               f"generators {'ok' if c['generators'] is g else 'missing'}, temperature {c['temperature']}, "
               f"sample {c['sample']}", "pass generators=generators and **step_kwargs to every step")
    expect(len(history) == 5 and all(torch.equal(h[0], r[0]) and torch.equal(h[1], r[1])
                                     for h, r in zip(history, rec.returned, strict=False)),
           "history", "the (z_pred, new_mask) of each step, in order", f"{len(history)} entries, not those")
    expect(torch.equal(z_final, rec.returned[-1][0]), "z_final", "z_pred of the last step", "something else")


@points(3, "iterative_decoding")
def test_loop_fills_every_token(impl, model):
    """After T steps no token is masked, known tokens are unchanged and every id is a real code"""
    z, mask = _tiny.tokens_and_mask(1, fractions=(0.5,))  # one image: batching is the step's own check
    g = impl.module("models.sampling").image_generators(range(1), seed=7)
    z_final, history = decode(impl, model, z, mask, 6, generators=g)
    expect(len(history) == 6, "steps run with total_iter = 6", 6, len(history))
    left = int(history[-1][1].sum())
    expect(left == 0, "tokens still masked after the last step", 0, left, "the last step has ratio (T-1+1)/T = 1")
    for t in range(1, len(history)):
        expect(not (history[t][1] & ~history[t - 1][1]).any(), f"mask at step {t}",
               "a subset of the previous step's mask", "re-masked tokens")
    expect(torch.equal(z_final[~mask], z[~mask]), "known tokens in z_final", "unchanged", "changed")
    expect(0 <= z_final.min() and z_final.max() < K, "z_final ids", f"in [0, {K})",
           f"[{z_final.min()}, {z_final.max()}]")
    expect(torch.equal(z_final, history[-1][0]), "z_final", "z_pred of the last step", "something else")


@points(3, "iterative_decoding")
def test_loop_sweet_spot_stops_early(impl, model):
    """sweet_spot = 3 of T = 8 runs 3 steps of the 8-step schedule and returns the third step's prediction"""
    z, mask = _tiny.tokens_and_mask()
    rec = model.inpainting_step = StepRecorder()
    z_final, history = decode(impl, model, z, mask, 8, sweet_spot=3)
    ratios = [round(c["ratio"], 4) for c in rec.calls]
    expect(ratios == [0.125, 0.25, 0.375], "ratios with total_iter = 8, sweet_spot = 3", [0.125, 0.25, 0.375],
           ratios, "stop after sweet_spot steps; the ratio still divides by total_iter")
    expect(len(history) == 3, "history length", 3, len(history))
    expect(torch.equal(z_final, rec.returned[-1][0]), "z_final", "z_pred of step 3", "something else")


@points(2, "iterative_decoding")
def test_loop_keeps_each_steps_predictions(impl, model):
    """z_final holds, at each position a step revealed, that step's prediction (sweet spot and full schedule)"""
    z, mask = _tiny.tokens_and_mask()
    for total, sweet in ((5, None), (8, 3)):
        rec = model.inpainting_step = StepRecorder()
        z_final, _ = decode(impl, model, z, mask, total, sweet_spot=sweet)
        for t, (c, (z_pred, new_mask)) in enumerate(zip(rec.calls, rec.returned, strict=True)):
            revealed = c["mask"] & ~new_mask
            wrong = int((z_final[revealed] != z_pred[revealed]).sum())
            back = int((z_final[revealed] == z[revealed]).sum()) if wrong else 0
            expect(wrong == 0, f"z_final at the {int(revealed.sum())} positions step {t} revealed (T = {total}, "
                   f"sweet_spot = {sweet})", "that step's z_pred", f"{wrong} other ids"
                   + (f" ({back} of them the input's own ids)" if back else ""),
                   "z = z_pred after every step: a revealed token keeps the id predicted for it")


def one_image_at_a_time(monkeypatch, impl) -> None:
    """The student's step fed one image at a time: batching is test_step_batched_equals_per_image's, not this."""
    maskgit = impl.module("models.VQGAN_Transformer").MaskGit
    own = maskgit.inpainting_step

    def step(self, z, mask, num_unknown_start, ratio, choice_temperature, sample=True, generators=None):
        n0 = torch.as_tensor(num_unknown_start).reshape(-1)
        outs = [unpack(own(self, z[b:b + 1], mask[b:b + 1], n0[b:b + 1], ratio, choice_temperature, sample=sample,
                           generators=None if generators is None else generators[b:b + 1]), 2,
                       "inpainting_step(...)", "return (z_pred, new_mask)") for b in range(len(z))]
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    monkeypatch.setattr(maskgit, "inpainting_step", step)


@points(2, "iterative_decoding and inpainting.run")
def test_run_saves_images_in_test_order(impl, monkeypatch, tmp_path):
    """inpainting.py writes test_results/image_{i:03d}.png for test image i (and the two step folders)"""
    # The step runs one image at a time (batching is graded once, by the step's own check); the given decoding code
    # validates the token ids before the VQGAN decodes them, and a bad id is reported here.
    _standins.use(monkeypatch, impl, "attention", "gamma", "encode")
    one_image_at_a_time(monkeypatch, impl)
    setup = _tiny.write_run_setup(impl, tmp_path, n_images=5)
    out = tmp_path / "out"
    token_error = impl.module("decoding").TokenIdError
    try:
        impl.module("inpainting").main([
            "--config", str(setup["config"]), "--test-maskedimage-path", str(setup["images"]),
            "--test-mask-path", str(setup["masks"]), "--output-dir", str(out), "--device", "cpu", "--batch-size", "2",
            "--total-iter", "2", "--composite", "--precision", "fp32"])
    except token_error as exc:  # raised by the given decoding code before the VQGAN sees a bad id
        expect(False, "token ids handed to the VQGAN decoder", "real codes in [0, K)", str(exc),
               "every id that iterative_decoding returns (z_final and each step's z_pred) must be a real code")
    for folder, pattern in (("test_results", "image_{:03d}.png"), ("mask_scheduling", "test_{}.png"),
                            ("imga", "test_{}.png")):
        names = sorted(p.name for p in (out / folder).glob("*.png")) if (out / folder).is_dir() else []
        want = sorted(pattern.format(i) for i in range(5))
        expect(names == want, f"files in {folder}/", short(want), short(names), "name outputs by the test index")
    for i in range(5):
        res = np.asarray(Image.open(out / "test_results" / f"image_{i:03d}.png")).astype(int)
        src = np.asarray(Image.open(setup["images"] / f"image_{i:03d}.png")).astype(int)
        known = np.asarray(Image.open(setup["masks"] / f"mask_{i:03d}.png")) == 255
        diff = np.abs(res[known] - src[known]).max()
        expect(diff <= 1, f"known pixels of test_results/image_{i:03d}.png (with --composite)",
               f"those of masked_image/image_{i:03d}.png", f"a difference of {diff} (another image's?)",
               "save out[b] under the index of image b")
