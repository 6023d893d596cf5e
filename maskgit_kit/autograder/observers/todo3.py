"""Observers of TODO3, MaskGit.inpainting_step and iterative_decoding / inpainting.run (see __init__.py).

They run with the public checks' stand-ins for the other TODOs (the grader's attention and cosine schedule), on
a tiny MaskGit whose transformer weights the trusted side chose.
"""
from __future__ import annotations

from contextlib import contextmanager

MODEL = "models.VQGAN_Transformer"
SAMPLING = "models.sampling"
INPAINT = "inpainting"


@contextmanager
def _tiny_model(impl, grader, inputs: dict, *stand_ins: str):
    """A tiny MaskGit (eval mode) with ``inputs["state"]`` as transformer weights, the named stand-ins in place;
    everything patched is restored on exit (the reference is observed in the trusted process)."""
    import pytest
    with pytest.MonkeyPatch.context() as mp:
        grader.module("_standins").use(mp, impl, "attention", "gamma", *stand_ins)
        model = grader.module("_tiny").maskgit(impl)
        if inputs.get("state") is not None:
            model.transformer.load_state_dict(inputs["state"])
        yield mp, model


class _Noise:
    """Stands in for gumbel_noise and records each call (dims, generators is None). With ``known`` noise
    ({"ids": (N, K + 1), "conf": (N,)}) it returns that noise by the rank of ``like`` (3 dims: the ids, otherwise
    the confidence), the same for every image; without, the real gumbel_noise."""

    def __init__(self, real, known=None):
        self.real, self.known, self.calls = real, known, []

    def __call__(self, like, generators=None):
        self.calls.append([int(like.dim()), generators is None])
        if self.known is None:
            return self.real(like, generators)
        base = self.known["ids"][..., :like.shape[-1]] if like.dim() == 3 else self.known["conf"]
        return base.expand(like.shape).clone().to(like.device)


def _plain(x):
    """A tensor returned by student code, as a plain CPU tensor (anything else is an error)."""
    import torch
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"returned a {type(x).__name__}, not a tensor")
    return x.detach().to("cpu").clone().as_subclass(torch.Tensor)


def _option(x):
    """An option a loop passed on (True/False/a number) as plain data; anything else by its repr."""
    return x if isinstance(x, (bool, int, float)) or x is None else repr(x)[:80]


def _step_once(model, impl, case: dict, z, global_seed: int) -> dict:
    """One inpainting_step call on clones of the inputs: what it returned, which inputs it edited, and its
    gumbel_noise calls."""
    import torch
    noise = _Noise(impl.module(SAMPLING).gumbel_noise, case.get("noise"))
    mask, n0 = case["mask"], case["n0"]
    args = (z.clone(), mask.clone(), n0.clone())
    kwargs = {"sample": case["sample"]}
    if case.get("gens") is not None:
        kwargs["generators"] = [torch.Generator().manual_seed(int(s)) for s in case["gens"]]
    import pytest
    with pytest.MonkeyPatch.context() as mp:
        for name in (MODEL, SAMPLING):
            mp.setattr(impl.module(name), "gumbel_noise", noise, raising=False)
        torch.manual_seed(global_seed)
        out = model.inpainting_step(*args, case["ratio"], choice_temperature=case["temperature"], **kwargs)
    edited = [name for name, x, orig in zip(("z_indices", "mask", "num_unknown_start"), args, (z, mask, n0),
                                            strict=True) if not torch.equal(x, orig)]
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"inpainting_step returned {type(out).__name__}, not (z_pred, new_mask)")
    return {"z_pred": _plain(out[0]), "new_mask": _plain(out[1]), "edited": edited, "calls": noise.calls}


def _guarded(fn, *args) -> dict:
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - reported, judged by the trusted side
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def step(impl, grader, inputs: dict) -> dict:
    """Each case: inpainting_step(z, mask, n0, ratio, choice_temperature, sample, generators from seeds) with the
    mask token's logit bias and a logit scale set first; optionally again under another global seed
    (``again_seed``), with other ids under the mask (``garbage``), with ``known`` noise, or (``batch``) each image
    alone, twice, then the batch. With ``log_probs``, also the log-softmax over the K codes the model gives."""
    import torch
    K = grader.module("_tiny").K
    outputs = []
    with _tiny_model(impl, grader, inputs) as (_, model):
        for case in inputs["cases"]:
            with torch.no_grad():
                model.transformer.bias[:, K] = float(case.get("mask_bias", -30.0))
            scale = float(case.get("scale", 1.0))
            hook = model.transformer.register_forward_hook(lambda module, args, out, s=scale: out * s) \
                if scale != 1.0 else None
            try:
                outputs.append(_one_case(model, impl, case, K))
            finally:
                if hook is not None:
                    hook.remove()
    return {"cases": outputs}


def _one_case(model, impl, case: dict, K: int) -> dict:
    import torch
    z, seed = case["z"], int(case.get("global_seed", 0))
    if case.get("batch"):
        def alone(run):
            parts = [_step_once(model, impl, {**case, "mask": case["mask"][b:b + 1], "n0": case["n0"][b:b + 1],
                                              "gens": case["gens"][b:b + 1]}, z[b:b + 1], seed + run)
                     for b in range(len(z))]
            return {"z_pred": torch.cat([p["z_pred"] for p in parts]),
                    "new_mask": torch.cat([p["new_mask"] for p in parts]),
                    "calls": [c for p in parts for c in p["calls"]]}
        return {"alone": _guarded(alone, 0), "again": _guarded(alone, 1),
                "batched": _guarded(_step_once, model, impl, case, z, seed + 2)}
    result = _guarded(_step_once, model, impl, case, z, seed)
    if case.get("again_seed") is not None:
        result["again"] = _guarded(_step_once, model, impl, case, z, int(case["again_seed"]))
    if case.get("garbage") is not None:
        result["garbage"] = _guarded(_step_once, model, impl, case, case["garbage"], seed)
    if case.get("log_probs"):
        with torch.no_grad():
            logits = model.transformer(z.masked_fill(case["mask"], K))
        result["log_probs"] = logits.double()[..., :K].log_softmax(-1)
    return result


def loop(impl, grader, inputs: dict) -> dict:
    """Each case: iterative_decoding(model, z, mask, T, sweet_spot, generators (from seeds), choice_temperature,
    sample) with the public checks' recording stand-in for the step (``recorder``) or the student's own step.
    Returns z_final, the history and, with the recorder, what each step call got."""
    outputs = []
    checks = grader.module("test_todo3_step_loop")
    with _tiny_model(impl, grader, inputs) as (_, model):
        for case in inputs["cases"]:
            outputs.append(_guarded(_loop_case, impl, model, checks, case))
    return {"cases": outputs}


def _loop_case(impl, model, checks, case: dict) -> dict:
    import torch
    model.__dict__.pop("inpainting_step", None)
    rec = None
    if case.get("recorder"):
        rec = model.inpainting_step = checks.StepRecorder()
    kwargs = {"choice_temperature": case["temperature"]}
    gens = None
    if case.get("gens") is not None:
        gens = kwargs["generators"] = [torch.Generator().manual_seed(int(s)) for s in case["gens"]]
    if case.get("sample") is not None:
        kwargs["sample"] = case["sample"]
    torch.manual_seed(int(case.get("global_seed", 0)))
    try:
        out = impl.module(INPAINT).iterative_decoding(model, case["z"].clone(), case["mask"].clone(), case["total"],
                                                      case["sweet_spot"], **kwargs)
    finally:
        model.__dict__.pop("inpainting_step", None)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"iterative_decoding returned {type(out).__name__}, not (z_final, history)")
    z_final, history = out
    if not isinstance(history, list) or not all(isinstance(h, (tuple, list)) and len(h) == 2 for h in history):
        raise TypeError(f"history is a {type(history).__name__}, not a list of (z_pred, new_mask) pairs")
    result = {"z_final": _plain(z_final), "history": [[_plain(a), _plain(b)] for a, b in history]}
    if rec is not None:
        result["calls"] = [{"z": c["z"], "mask": c["mask"], "n0": _plain(c["n0"]), "ratio": c["ratio"],
                            "temperature": _option(c["temperature"]), "sample": _option(c["sample"]),
                            "generators": "same" if gens is not None and c["generators"] is gens else
                            ("none" if c["generators"] is None else "other")} for c in rec.calls]
    return result


def run(impl, grader, inputs: dict) -> dict:
    """inpainting.main on a tiny setup with the trusted side's test images and masks (uint8 (n, 64, 64, 3) and
    (n, 64, 64), 255 = known), the step fed one image at a time as the public check does; returns the files of
    the three output folders and the pixels of test_results/."""
    import contextlib
    import io
    import tempfile
    from pathlib import Path

    import numpy as np
    import torch
    from PIL import Image
    tiny, checks = grader.module("_tiny"), grader.module("test_todo3_step_loop")
    with _tiny_model(impl, grader, {}, "encode") as (mp, _), tempfile.TemporaryDirectory() as tmp:
        checks.one_image_at_a_time(mp, impl)
        images, masks = inputs["images"], inputs["masks"]
        setup = tiny.write_run_setup(impl, Path(tmp), n_images=len(images))
        for i in range(len(images)):
            Image.fromarray(images[i].numpy()).save(setup["images"] / f"image_{i:03d}.png")
            Image.fromarray(masks[i].numpy(), mode="L").save(setup["masks"] / f"mask_{i:03d}.png")
        out = Path(tmp) / "out"
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                impl.module(INPAINT).main(["--config", str(setup["config"]), "--test-maskedimage-path",
                                           str(setup["images"]), "--test-mask-path", str(setup["masks"]),
                                           "--output-dir", str(out), "--device", "cpu", "--batch-size",
                                           str(inputs["batch_size"]), "--total-iter", str(inputs["total_iter"]),
                                           "--composite", "--precision", "fp32"])
            error = ""
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported, judged by the trusted side
            error = f"{type(exc).__name__}: {exc}"[:500]
        names = {folder: sorted(p.name for p in (out / folder).glob("*.png")) if (out / folder).is_dir() else []
                 for folder in ("test_results", "mask_scheduling", "imga")}
        results = {}
        for name in names["test_results"][:64]:
            try:
                results[name] = torch.from_numpy(np.asarray(Image.open(out / "test_results" / name).convert("RGB"))
                                                 .copy())
            except Exception as exc:  # noqa: BLE001
                results[name] = f"unreadable: {type(exc).__name__}"
    return {"error": error, "names": names, "results": results} if error else {"names": names, "results": results}


OBSERVERS = {"inpainting_step": step, "iterative_decoding": loop, "inpainting_run": run}
