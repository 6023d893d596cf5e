"""TODO5 (extension): the TiTok 1D tokenizer's latent tokens (models/TiTok/titok.py): ``TiTok.encode_latents``,
``TiTok.decoder_input`` and ``TiTok.proxy_code_loss``.

In the extension pool (POOL below), as TODO4: its points are reported beside the course's 100, never added to them.
Each method is called directly on a tiny random TiTok whose sizes all differ (K latents, W width, G grid side,
K_codes teacher codes), so a mixed-up axis shows. The encoder check runs the model's own blocks with the grader's
attention (TODO1 is not charged here) and compares with the documented sequence built from the model's parameters,
so any correct way of building it passes.
"""
from __future__ import annotations

import _standins
import pytest
import torch
import torch.nn.functional as F

from maskgit_kit.autograder.check import expect, expect_tensor, max_abs_diff, short, unpack
from maskgit_kit.autograder.points import points

TODO = "TODO5"  # the TODO of every check in this file (see @points)
POOL = "extension"  # graded beside the core 100 points, not inside them (with TODO4's extension)
B, K, W, G, CODES = 2, 3, 16, 4, 6  # batch, latent tokens, width, grid side (P = G * G patches), teacher codes
P = G * G
ENCODE, DECODER_INPUT, LOSS = "TiTok.encode_latents", "TiTok.decoder_input", "TiTok.proxy_code_loss"
TINY = {"image_size": 4 * G, "patch_size": 4, "num_latent_tokens": K, "max_latent_tokens": P, "width": W,
        "encoder_layers": 1, "decoder_layers": 1, "num_heads": 2, "mlp_dim": 32, "codebook_size": 8, "code_dim": 4,
        "teacher_codes": CODES, "teacher_grid": G}


@pytest.fixture
def titok(impl, monkeypatch):
    """The student's TiTok, tiny and random, in eval mode (the grader's attention in its blocks)."""
    _standins.use(monkeypatch, impl, "attention")
    mod = impl.module("models.TiTok.titok")
    cfg = impl.module("models.TiTok.config").TiTokConfig(**TINY)
    torch.manual_seed(0)
    return mod.TiTok(cfg).eval()


def rand(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def params_of(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def unchanged(model, before: dict[str, torch.Tensor]) -> list[str]:
    """The names of the parameters whose values changed since ``before``."""
    return [k for k, v in model.named_parameters() if not torch.equal(v.detach(), before[k])]


# --- encode_latents -----------------------------------------------------------------------------------------------
@torch.no_grad()
def encoder_out(model, patches):
    """The encoder blocks' output (B, P + K, W) over the documented sequence [patches, latents]."""
    lat = (model.latent_tokens + model.latent_pos).expand(len(patches), K, W)
    return model.encoder_blocks(torch.cat([patches + model.patch_pos, lat], 1))


def encode(model, patches):
    with torch.no_grad():
        out = model.encode_latents(patches.clone())
    expect_tensor(out, "encode_latents(patch_tokens)", (len(patches), K, W), hint="return the outputs at the K "
                  "latent positions only, token-major (B, K, W): the patch positions' outputs are dropped")
    return out.float()


def diagnose_encoder(model, out, patches) -> str:
    h = encoder_out(model, patches)
    tries = {"the first K positions (the patch positions, not the latent ones)": h[:, :K],
             "a (B, W, K) tensor read as (B, K, W) without a transpose (the legacy reshape: tokens and channels "
             "scrambled)": h[:, P:].transpose(1, 2).reshape(len(patches), K, W)}
    for what, value in tries.items():
        if max_abs_diff(out, value) < 1e-4:
            return f"your output is {what}"
    return ("the sequence is [patch_tokens + patch_pos, latent_tokens + latent_pos] (patches first, the same K "
            "latents for every image); keep encoder_blocks(sequence)[:, P:]")


@points(3, ENCODE)
def test_encode_latents_keeps_the_latent_outputs(impl, titok):
    """The K outputs at the latent positions (after the P patches) of the encoder over [patches, latents]"""
    with torch.no_grad():  # no positions here: only the order of the sequence and the slice are tested
        titok.patch_pos.zero_()
        titok.latent_pos.zero_()
    patches = rand(B, P, W)
    out = encode(titok, patches)
    want = encoder_out(titok, patches)[:, P:]
    expect(max_abs_diff(out, want) < 1e-4, "encode_latents output (positions zeroed)",
           "the encoder's outputs at positions P..P+K-1 of [patches, latent tokens]",
           f"a difference of {max_abs_diff(out, want):.3g}", diagnose_encoder(titok, out, patches))


@points(2, ENCODE)
def test_encode_latents_adds_both_positions(impl, titok):
    """patch_pos is added to the patches and latent_pos to the latent tokens before the encoder"""
    patches = rand(B, P, W, seed=2)
    out = encode(titok, patches)
    want = encoder_out(titok, patches)[:, P:]
    found = f"a difference of {max_abs_diff(out, want):.3g}"
    for what, pos in (("patch_pos", titok.patch_pos), ("latent_pos", titok.latent_pos)):
        with torch.no_grad():
            saved = pos.clone()
            pos.zero_()
            if max_abs_diff(out, encoder_out(titok, patches)[:, P:]) < 1e-4:
                found = f"the output of a sequence without {what}"
            pos.copy_(saved)
    expect(max_abs_diff(out, want) < 1e-4, "encode_latents output",
           "the encoder over [patch_tokens + patch_pos, latent_tokens + latent_pos], latent outputs", found,
           "add self.patch_pos to the patches and self.latent_pos to the latent tokens")


@points(1, ENCODE)
def test_encode_latents_leaves_inputs_alone(impl, titok):
    """encode_latents modifies neither patch_tokens nor the model's parameters (no in-place +=)"""
    patches = rand(B, P, W, seed=3)
    given, before = patches.clone(), params_of(titok)
    with torch.no_grad():
        titok.encode_latents(patches)
    changed = unchanged(titok, before)
    expect(torch.equal(patches, given) and not changed, "the inputs after encode_latents",
           "patch_tokens and every parameter unchanged",
           "patch_tokens modified" if not torch.equal(patches, given) else f"{', '.join(changed)} modified",
           "build new tensors (patch_tokens + self.patch_pos), never patch_tokens += ... or .add_()")


# --- decoder_input ------------------------------------------------------------------------------------------------
def decoder_seq(model, latents):
    with torch.no_grad():
        out = model.decoder_input(latents.clone())
    expect_tensor(out, "decoder_input(latents)", (len(latents), P + K, W), hint="the sequence is the mask token "
                  "repeated at the G * G grid positions (each with its grid_pos), then the K latents: (B, G*G + K, W)")
    return out.float()


@points(3, DECODER_INPUT)
def test_decoder_input_mask_tokens_over_the_grid(impl, titok):
    """The first G * G tokens: mask_token + grid_pos (row-major), the same for every image"""
    latents = rand(B, K, W, seed=4)
    out = decoder_seq(titok, latents)
    with torch.no_grad():
        want = (titok.mask_token + titok.grid_pos).expand(B, P, W)
        plain = titok.mask_token.expand(B, P, W)
    grid = out[:, :P]
    found = ("the mask token without the grid positions" if max_abs_diff(grid, plain) < 1e-4 else
             "the latents first" if max_abs_diff(out[:, K:K + 1], want[:, :1]) < 1e-4 else
             f"a difference of {max_abs_diff(grid, want):.3g}")
    expect(max_abs_diff(grid, want) < 1e-5, "decoder_input positions 0..G*G-1",
           "self.mask_token + self.grid_pos for every image", found,
           "one mask token at each of the G * G grid positions, plus its position (self.grid_pos): the grid first")


@points(2, DECODER_INPUT)
def test_decoder_input_latents_with_their_positions(impl, titok):
    """The last K tokens: latents + decoder_latent_pos, in the latents' order"""
    latents = rand(B, K, W, seed=5)
    out = decoder_seq(titok, latents)
    with torch.no_grad():
        want = latents + titok.decoder_latent_pos
    tail = out[:, P:]
    found = ("the latents without their positions" if max_abs_diff(tail, latents) < 1e-5 else
             "the latents' tokens and channels scrambled (a (B, K, W) tensor read as (B, W, K): the legacy reshape)"
             if max_abs_diff(tail, latents.reshape(B, W, K).transpose(1, 2) + titok.decoder_latent_pos.detach()) < 1e-5
             else f"a difference of {max_abs_diff(tail, want):.3g}")
    expect(max_abs_diff(tail, want) < 1e-5, "decoder_input positions G*G..G*G+K-1",
           "latents + self.decoder_latent_pos", found,
           "the decoder needs the latents' positions too: latents + self.decoder_latent_pos, after the grid")


@points(1, DECODER_INPUT)
def test_decoder_input_leaves_inputs_alone(impl, titok):
    """decoder_input modifies neither the latents nor the model's parameters (no in-place +=)"""
    latents = rand(B, K, W, seed=6)
    given, before = latents.clone(), params_of(titok)
    with torch.no_grad():
        titok.decoder_input(latents)
    changed = unchanged(titok, before)
    expect(torch.equal(latents, given) and not changed, "the inputs after decoder_input",
           "latents and every parameter unchanged",
           "latents modified" if not torch.equal(latents, given) else f"{', '.join(changed)} modified",
           "build new tensors (latents + self.decoder_latent_pos), never latents += ... or .add_()")


# --- proxy_code_loss ----------------------------------------------------------------------------------------------
def grid_and_codes(seed: int = 7, batch: int = B, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    grid_out = (2 * torch.randn(batch, P, CODES, generator=g)).to(dtype)
    codes = torch.randint(0, CODES, (batch, G, G), generator=g)
    return grid_out, codes


def call_loss(titok, grid_out, codes):
    try:
        out = titok.proxy_code_loss(grid_out, codes)
    except NotImplementedError:
        raise
    except (RuntimeError, IndexError, ValueError) as exc:  # a shape mistake reaching F.cross_entropy
        expect(False, "proxy_code_loss(grid_out (B, G*G, K_codes), codes (B, G, G))", "a loss and the logits",
               f"{type(exc).__name__}: {short(str(exc).splitlines()[0] if str(exc) else '', 120)}",
               "F.cross_entropy reads the class axis second: pass it logits (B, K_codes, G, G) and codes (B, G, G) "
               "(grid_out as given is (B, G*G, K_codes): its class axis is the last)")
    loss, logits = unpack(out, 2, "proxy_code_loss(grid_out, codes)", "return (loss, logits)")
    expect_tensor(logits, "logits", (len(grid_out), CODES, G, G), hint="(B, K_codes, G, G): the class axis second, "
                  "as F.cross_entropy reads it; not (B, G, G, K_codes)")
    expect_tensor(loss, "loss", ())
    return loss, logits


def expected_loss(grid_out, codes) -> torch.Tensor:
    """The mean over the B * G * G positions of -log softmax(grid_out[b, i * G + j])[codes[b, i, j]], in float64."""
    logp = torch.log_softmax(grid_out.double(), dim=-1)
    return -logp.gather(-1, codes.reshape(len(codes), P, 1)).mean()


@points(3, LOSS)
def test_proxy_logits_layout(impl, titok):
    """logits[b, :, i, j] == grid_out[b, i * G + j]: (B, K_codes, G, G), the class axis second, rows first"""
    grid_out, codes = grid_and_codes()
    _, logits = call_loss(titok, grid_out.clone(), codes.clone())
    want = grid_out.transpose(1, 2).reshape(B, CODES, G, G)
    tries = {"the G axes transposed (column-major)": want.transpose(2, 3),
             "grid_out reshaped to (B, K_codes, G, G) without a transpose (the legacy reshape: positions and codes "
             "scrambled)": grid_out.reshape(B, CODES, G, G)}
    found = next((w for w, v in tries.items() if max_abs_diff(logits, v) < 1e-6),
                 f"a difference of {max_abs_diff(logits, want):.3g}")
    expect(max_abs_diff(logits, want) < 1e-6, "logits", "logits[b, :, i, j] = grid_out[b, i * G + j]", found,
           "(B, G*G, K_codes) -> (B, K_codes, G*G) with a transpose, then reshape the last axis to (G, G)")


@points(3, LOSS)
def test_proxy_loss_is_the_mean_cross_entropy(impl, titok):
    """loss: cross-entropy over the code axis, the mean over all B * G * G positions; its gradient reaches grid_out"""
    grid_out, codes = grid_and_codes(seed=8)
    codes[0] = 0  # image 0 is easy, image 1 random: a mean per image or a sum differs from the mean
    x = grid_out.clone().requires_grad_(True)
    loss, _ = call_loss(titok, x, codes.clone())
    want = expected_loss(grid_out, codes)
    value = float(loss.detach())
    per_image = -torch.log_softmax(grid_out.double(), -1).gather(-1, codes.reshape(B, P, 1)).mean((1, 2))
    found = ("the sum over all positions (use the mean)" if abs(value - float(want) * B * P) < 1e-3 else
             "the sum of the images' means (use the mean over all positions)"
             if abs(value - float(per_image.sum())) < 1e-4 else f"{value:.6g}")
    expect(abs(value - float(want)) < 1e-4, "loss", f"{float(want):.6g} (the mean cross-entropy over the codes axis "
           "of all B * G * G positions, no label smoothing)", found,
           "F.cross_entropy(logits, codes) with logits (B, K_codes, G, G), codes (B, G, G)")
    expect(loss.requires_grad, "loss.requires_grad", True, False, "compute the loss from grid_out (no .detach())")
    loss.backward()
    grad = (torch.softmax(grid_out.double(), -1) - F.one_hot(codes.reshape(B, P), CODES).double()) / (B * P)
    expect(x.grad is not None and max_abs_diff(x.grad, grad) < 1e-6, "the gradient of the loss w.r.t. grid_out",
           "(softmax - one_hot) / (B * G * G)", short(x.grad), "the loss must be a function of grid_out")


@points(1, LOSS)
def test_proxy_loss_is_float32_for_bfloat16_outputs(impl, titok):
    """The loss is a float32 scalar when the head's output is bfloat16 (mixed precision)"""
    grid_out, codes = grid_and_codes(seed=9, dtype=torch.bfloat16)
    loss, _ = call_loss(titok, grid_out, codes)
    expect(loss.dtype == torch.float32, "loss dtype for a bfloat16 grid_out", "float32",
           str(loss.dtype).replace("torch.", ""), "compute the cross-entropy on logits.float()")
    want = expected_loss(grid_out.float(), codes)
    expect(abs(float(loss) - float(want)) < 1e-4, "loss for a bfloat16 grid_out", f"{float(want):.6g}",
           f"{float(loss):.6g}", "the mean cross-entropy of the float32 logits")


@points(1, LOSS)
def test_proxy_loss_leaves_inputs_alone(impl, titok):
    """proxy_code_loss modifies neither grid_out nor codes"""
    grid_out, codes = grid_and_codes(seed=10)
    given_out, given_codes = grid_out.clone(), codes.clone()
    call_loss(titok, grid_out, codes)
    expect(torch.equal(grid_out, given_out) and torch.equal(codes, given_codes), "the inputs after proxy_code_loss",
           "grid_out and codes unchanged", "grid_out modified" if not torch.equal(grid_out, given_out) else
           "codes modified", "no in-place operation on the inputs (no .transpose_(), no .sub_(), no [...] =)")
