"""Hidden forms of the TODO5 checks (the TiTok 1D tokenizer extension: TiTok.encode_latents, decoder_input and
proxy_code_loss).

As the public checks: the methods are called directly on a tiny TiTok (the grader's attention, eval mode) and compared
with the reference's answer on the same inputs. Here the sizes (K latents, width W, grid side G, K_codes teacher
codes, all distinct), the weights (positions included), the batch sizes, the inputs and the codes are drawn afresh
from each submission's seed. Each probe judges only what its public check judges (e.g. the slice of the encoder's
output with the positions zeroed, as the public check zeroes them).
"""
from __future__ import annotations

import torch

from maskgit_kit.autograder.judging import Bad
from maskgit_kit.autograder.judging import judged as _judged
from maskgit_kit.autograder.judging import paired_cases as _cases
from maskgit_kit.autograder.trusted import Probe

TODO = "TODO5"
KEEP, POSITIONS, ENC_ALONE = ("test_encode_latents_keeps_the_latent_outputs", "test_encode_latents_adds_both_positions",
                              "test_encode_latents_leaves_inputs_alone")
GRID, LATENTS, DEC_ALONE = ("test_decoder_input_mask_tokens_over_the_grid",
                            "test_decoder_input_latents_with_their_positions", "test_decoder_input_leaves_inputs_alone")
LAYOUT, MEAN_CE, BF16, LOSS_ALONE = ("test_proxy_logits_layout", "test_proxy_loss_is_the_mean_cross_entropy",
                                     "test_proxy_loss_is_float32_for_bfloat16_outputs",
                                     "test_proxy_loss_leaves_inputs_alone")
CALLS = "todo5_calls"


def _int(g, lo: int, hi: int) -> int:
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _sizes(g) -> dict:
    """K, W, G, K_codes drawn until K, W, G * G and K_codes all differ (a mixed-up axis then shows)."""
    while True:
        K, W, G, C = _int(g, 2, 7), 8 * _int(g, 2, 4), _int(g, 3, 5), _int(g, 5, 19)
        if len({K, W, G * G, C, G}) == 5 and K <= G * G:
            return {"K": K, "W": W, "G": G, "C": C}


def _setup(seed: int, reference, zero_positions: bool = False):
    """(generator, sizes, the TiTok config dict, the reference TiTok's weights from a drawn seed)."""
    g = torch.Generator().manual_seed(seed)
    s = _sizes(g)
    config = {"image_size": 4 * s["G"], "patch_size": 4, "num_latent_tokens": s["K"], "max_latent_tokens": s["G"] ** 2,
              "width": s["W"], "encoder_layers": 1, "decoder_layers": 1, "num_heads": 2, "mlp_dim": 2 * s["W"],
              "codebook_size": 8, "code_dim": 4, "teacher_codes": s["C"], "teacher_grid": s["G"]}
    mod = reference.impl.module("models.TiTok")
    with torch.random.fork_rng():
        torch.manual_seed(_int(g, 0, 2**31 - 2))
        model = mod.TiTok(mod.TiTokConfig(**config))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if zero_positions:
        state["patch_pos"].zero_()
        state["latent_pos"].zero_()
    return g, s, config, state


def _inputs(seed, reference, call: str, batches, zero_positions=False, dtype=torch.float32, grad=False) -> dict:
    g, s, config, state = _setup(seed, reference, zero_positions)
    K, W, G, C = s["K"], s["W"], s["G"], s["C"]
    cases = []
    for b in batches:
        if call == "encode":
            case = {"call": call, "x": torch.randn(b, G * G, W, generator=g)}
        elif call == "decoder":
            case = {"call": call, "x": torch.randn(b, K, W, generator=g)}
        else:
            codes = torch.randint(0, C, (b, G, G), generator=g)
            codes[0] = _int(g, 0, C - 1)  # one easy image: a mean per image or a sum differs from the mean
            case = {"call": call, "x": (2 * torch.randn(b, G * G, C, generator=g)).to(dtype), "codes": codes,
                    "grad": grad}
        cases.append(case)
    return {"config": config, "state": state, "sizes": s, "cases": cases}


def _where(ctx, case) -> str:
    s = ctx.inputs["sizes"]
    return f"B = {len(case['x'])}, K = {s['K']}, W = {s['W']}, G = {s['G']}, K_codes = {s['C']}"


def _close(got, want, what: str, where: str, tol: float, rows=None) -> None:
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        raise Bad(f"{what} is {shape}, not {tuple(want.shape)} ({where})")
    a, b = (got, want) if rows is None else (got[rows], want[rows])
    diff = float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
    if not diff <= tol:
        raise Bad(f"{what} differs by {diff:.3g} from the expected ({where})")


def _untouched(ctx, inputs_only: bool = False) -> None:
    for case, got, _ in _cases(ctx):
        where = _where(ctx, case)
        x_after = got.get("x_after")
        if not isinstance(x_after, torch.Tensor) or not torch.equal(x_after, case["x"]):
            raise Bad(f"the input tensor was modified by the call ({where})")
        if "codes" in case and not torch.equal(got.get("codes_after", case["codes"]), case["codes"]):
            raise Bad(f"codes were modified by the call ({where})")
        if not inputs_only and got.get("changed"):
            raise Bad(f"parameters {', '.join(map(str, got['changed']))[:200]} modified by the call ({where})")


# --- encode_latents ------------------------------------------------------------------------------------------------
def keep_inputs(seed, reference):
    return _inputs(seed, reference, "encode", (1, 3), zero_positions=True)


def positions_inputs(seed, reference):
    return _inputs(seed, reference, "encode", (2, 4))


def enc_alone_inputs(seed, reference):
    return _inputs(seed, reference, "encode", (2,))


def _encode(ctx) -> None:
    for case, got, want in _cases(ctx):
        _close(got.get("out"), want["out"], "encode_latents(patch_tokens)", _where(ctx, case), 1e-4)


# --- decoder_input -------------------------------------------------------------------------------------------------
def decoder_inputs(seed, reference):
    return _inputs(seed, reference, "decoder", (1, 3))


def dec_alone_inputs(seed, reference):
    return _inputs(seed, reference, "decoder", (2,))


def _grid(ctx) -> None:
    P = ctx.inputs["sizes"]["G"] ** 2
    for case, got, want in _cases(ctx):
        out = got.get("out")
        if not isinstance(out, torch.Tensor) or out.shape != want["out"].shape:
            _close(out, want["out"], "decoder_input(latents)", _where(ctx, case), 1e-5)
        _close(out[:, :P], want["out"][:, :P], "decoder_input's first G * G tokens", _where(ctx, case), 1e-5)


def _latents(ctx) -> None:
    P = ctx.inputs["sizes"]["G"] ** 2
    for case, got, want in _cases(ctx):
        out = got.get("out")
        if not isinstance(out, torch.Tensor) or out.shape != want["out"].shape:
            _close(out, want["out"], "decoder_input(latents)", _where(ctx, case), 1e-5)
        _close(out[:, P:], want["out"][:, P:], "decoder_input's last K tokens", _where(ctx, case), 1e-5)


# --- proxy_code_loss -----------------------------------------------------------------------------------------------
def layout_inputs(seed, reference):
    return _inputs(seed, reference, "loss", (1, 3))


def mean_inputs(seed, reference):
    return _inputs(seed, reference, "loss", (2, 3), grad=True)


def bf16_inputs(seed, reference):
    return _inputs(seed, reference, "loss", (2,), dtype=torch.bfloat16)


def loss_alone_inputs(seed, reference):
    return _inputs(seed, reference, "loss", (2,))


def _layout(ctx) -> None:
    for case, got, want in _cases(ctx):
        _close(got.get("logits"), want["logits"].float(), "the logits", _where(ctx, case), 1e-6)


def _loss_value(got, want, where: str) -> None:
    loss = got.get("loss")
    if not isinstance(loss, torch.Tensor) or loss.shape != ():
        raise Bad(f"loss is {type(loss).__name__} {getattr(loss, 'shape', '')}, not a scalar tensor ({where})")
    _close(loss, want["loss"], "loss", where, 1e-4)


def _mean_ce(ctx) -> None:
    for case, got, want in _cases(ctx):
        where = _where(ctx, case)
        _loss_value(got, want, where)
        if not got.get("requires_grad"):
            raise Bad(f"the loss has no gradient ({where})")
        _close(got.get("grad"), want["grad"], "the gradient of the loss w.r.t. grid_out", where, 1e-6)


def _bf16(ctx) -> None:
    for case, got, want in _cases(ctx):
        where = _where(ctx, case) + ", grid_out bfloat16"
        if got.get("loss_dtype") != "torch.float32":
            raise Bad(f"loss dtype {got.get('loss_dtype')}, not float32 ({where})")
        _loss_value(got, want, where)


PROBES = [
    Probe("encode_latents_keep_hidden", TODO, "the latent outputs of the encoder, other sizes and weights", (KEEP,),
          _judged(KEEP, _encode), CALLS, keep_inputs),
    Probe("encode_latents_positions_hidden", TODO, "both positions added before the encoder, other weights",
          (POSITIONS,), _judged(POSITIONS, _encode), CALLS, positions_inputs),
    Probe("encode_latents_alone_hidden", TODO, "encode_latents changes no input and no parameter", (ENC_ALONE,),
          _judged(ENC_ALONE, _untouched), CALLS, enc_alone_inputs),
    Probe("decoder_input_grid_hidden", TODO, "the mask token over the grid, other sizes and weights", (GRID,),
          _judged(GRID, _grid), CALLS, decoder_inputs),
    Probe("decoder_input_latents_hidden", TODO, "the latents with their positions, other sizes and weights",
          (LATENTS,), _judged(LATENTS, _latents), CALLS, decoder_inputs),
    Probe("decoder_input_alone_hidden", TODO, "decoder_input changes no input and no parameter", (DEC_ALONE,),
          _judged(DEC_ALONE, _untouched), CALLS, dec_alone_inputs),
    Probe("proxy_logits_layout_hidden", TODO, "the (B, K_codes, G, G) logits, other sizes", (LAYOUT,),
          _judged(LAYOUT, _layout), CALLS, layout_inputs),
    Probe("proxy_loss_mean_hidden", TODO, "the mean cross-entropy and its gradient, other sizes and codes",
          (MEAN_CE,), _judged(MEAN_CE, _mean_ce), CALLS, mean_inputs),
    Probe("proxy_loss_bf16_hidden", TODO, "a float32 loss for bfloat16 outputs, other sizes", (BF16,),
          _judged(BF16, _bf16), CALLS, bf16_inputs),
    Probe("proxy_loss_alone_hidden", TODO, "proxy_code_loss changes neither grid_out nor codes", (LOSS_ALONE,),
          _judged(LOSS_ALONE, lambda ctx: _untouched(ctx, inputs_only=True)), CALLS, loss_alone_inputs),
]
