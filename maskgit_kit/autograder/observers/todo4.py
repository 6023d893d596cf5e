"""Observers of TODO4 (the class-conditional extension): ClassConditionalTransformer.class_token_ids and forward,
inpainting.guided_decoding (see __init__.py).

The model observers wrap a tiny net of the sizes and weights the trusted side chose (the grader's attention, no
dropout), as the public checks do; the decoding observer runs guided_decoding on a tiny class-conditional MaskGit
whose step is the public checks' recording stand-in.
"""
from __future__ import annotations

from .common import guarded as _guarded
from .common import plain as _plain

CLASS_COND = "models.Transformer.class_conditional"
INPAINT = "inpainting"
CHECKS = "test_todo4_class_conditional"


def _generator(seed):
    import torch
    return None if seed is None else torch.Generator().manual_seed(int(seed))


def _after(g):
    """The generator's next draws (None: no generator): whether and how far the call advanced it."""
    import torch
    return None if g is None else torch.rand(4, generator=g)


def _model(impl, inputs: dict):
    """The student's ClassConditionalTransformer of ``inputs["sizes"]`` with ``inputs["state"]`` as weights, the
    passes' batch sizes recorded in ``model.rows``."""
    c = impl.module("models.config")
    K, N, C = inputs["sizes"]
    cfg = c.TransformerConfig(num_image_tokens=N, num_codebook_vectors=K, dim=32, n_layers=2, hidden_dim=64,
                              num_heads=4, dropout=0.0, attn_dropout=0.0, num_classes=C)
    model = impl.module(CLASS_COND).ClassConditionalTransformer(cfg, class_dropout=0.5).eval()
    model.load_state_dict(inputs["state"])
    model.rows = []
    model.net.blocks.register_forward_pre_hook(lambda m, args: model.rows.append(int(args[0].shape[0])))
    return model


def class_ids(impl, grader, inputs: dict) -> dict:
    """Each case: class_token_ids(labels) (``drop_prob`` None: the defaults) or class_token_ids(labels, drop_prob,
    generator from a seed) under a global seed; the ids and the generator's next draws."""
    import pytest
    import torch
    outputs = []
    with pytest.MonkeyPatch.context() as mp:
        grader.module("_standins").use(mp, impl, "attention")
        model = _model(impl, inputs)

        def one(case):
            g = _generator(case.get("gen"))
            torch.manual_seed(int(case["global_seed"]))
            args = (case["labels"].clone(),) if case.get("drop_prob") is None else \
                (case["labels"].clone(), float(case["drop_prob"]), g)
            return {"ids": _plain(model.class_token_ids(*args)), "after": _after(g)}
        outputs = [_guarded(one, case) for case in inputs["cases"]]
    return {"cases": outputs}


def forward(impl, grader, inputs: dict) -> dict:
    """Each case: forward(ids) in train or eval mode with the case's labels (None allowed), guidance, class_dropout
    and generator (from a seed), under a global seed; the logits (float), the rows the net's passes saw and the
    generator's next draws."""
    import pytest
    import torch
    with pytest.MonkeyPatch.context() as mp:
        grader.module("_standins").use(mp, impl, "attention")
        model = _model(impl, inputs)

        def one(case):
            model.train(bool(case["train"]))
            model.class_dropout = float(case["class_dropout"])
            g = _generator(case.get("gen"))
            labels = case.get("labels")
            model.labels = None if labels is None else labels.clone()
            model.guidance, model.generator = float(case["guidance"]), g
            model.rows.clear()
            torch.manual_seed(int(case["global_seed"]))
            with torch.no_grad():
                out = model(case["ids"].clone())
            return {"logits": _plain(out).float(), "rows": list(model.rows), "after": _after(g)}
        outputs = [_guarded(one, case) for case in inputs["cases"]]
    return {"cases": outputs}


def _option(x):
    return x if isinstance(x, (bool, int, float)) or x is None else repr(x)[:80]


def guided(impl, grader, inputs: dict) -> dict:
    """Each case: guided_decoding(model, z, mask, labels, T, guidance, ramp, sweet_spot, generators (from seeds),
    choice_temperature, sample) on a tiny class-conditional MaskGit whose step is the public checks' recorder;
    what each step call got, the history, z_final and the model's conditioning afterwards."""
    import torch
    c = impl.module("models.config")
    base = grader.module("_tiny").config(impl)
    tcfg = c.TransformerConfig(**{**grader.module("_tiny").TRANSFORMER, "num_classes": int(inputs["classes"])})
    torch.manual_seed(0)
    maskgit = impl.module("models.VQGAN_Transformer").MaskGit(c.MaskGitConfig(**{**vars(base),
                                                                                  "transformer": tcfg})).eval()
    recorder = grader.module(CHECKS).StepRecorder

    def one(case):
        rec = maskgit.inpainting_step = recorder(maskgit)
        gens = [torch.Generator().manual_seed(int(s)) for s in case["gens"]]
        kwargs = {"guidance": case["guidance"], "ramp": case["ramp"], "sweet_spot": case["sweet_spot"],
                  "generators": gens, "choice_temperature": case["temperature"], "sample": case["sample"]}
        try:
            out = impl.module(INPAINT).guided_decoding(maskgit, case["z"].clone(), case["mask"].clone(),
                                                       case["labels"].clone(), case["total"], **kwargs)
        finally:
            t = maskgit.transformer
            after = {"labels": None if t.labels is None else _plain(torch.as_tensor(t.labels)),
                     "guidance": _option(t.guidance)}
            maskgit.__dict__.pop("inpainting_step", None)
            t.labels, t.guidance, t.generator = None, 1.0, None
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(f"guided_decoding returned {type(out).__name__}, not (z_final, history)")
        z_final, history = out
        if not isinstance(history, list) or not all(isinstance(h, (tuple, list)) and len(h) == 2 for h in history):
            raise TypeError(f"history is a {type(history).__name__}, not a list of (z_pred, new_mask) pairs")
        calls = [{"z": x["z"], "mask": x["mask"], "n0": _plain(x["n0"]), "ratio": x["ratio"],
                  "temperature": _option(x["temperature"]), "sample": _option(x["sample"]),
                  "generators": "same" if x["generators"] is gens else ("none" if x["generators"] is None else
                                                                        "other"),
                  "labels": None if x["labels"] is None else _plain(x["labels"]), "guidance": x["guidance"]}
                 for x in rec.calls]
        return {"z_final": _plain(z_final), "history": [[_plain(a), _plain(b)] for a, b in history],
                "calls": calls, "after": after}
    return {"cases": [_guarded(one, case) for case in inputs["cases"]]}


OBSERVERS = {"todo4_class_ids": class_ids, "todo4_forward": forward, "todo4_guided": guided}
