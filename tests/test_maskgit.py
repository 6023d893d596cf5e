"""The reference TODO solutions against independent computations (tiny configs, CPU, seconds)."""
import math

import pytest
import torch
import torch.nn.functional as F

from decoding import latent_mask
from inpainting import iterative_decoding
from models.sampling import image_generators
from models.Transformer.modules.layer import MultiHeadAttention
from models.VQGAN_Transformer import EXTRA_MASK_FUNCS, IGNORE_INDEX, MASK_FUNCS, MaskGit

T = 4.5  # choice_temperature, MaskGIT's (the tiny config's) value


def sdpa_reference(m: MultiHeadAttention, x):
    """PyTorch's fused attention computed from the module's own weights."""
    B, N, C = x.shape
    q, k, v = (p(x).view(B, N, m.num_heads, m.d_k).transpose(1, 2) for p in (m.q_proj, m.k_proj, m.v_proj))
    return m.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C))


@pytest.mark.parametrize("B,N,C,H", [(2, 256, 64, 16), (3, 7, 12, 3), (1, 5, 8, 1)])
def test_attention_matches_sdpa(B, N, C, H):
    torch.manual_seed(0)
    m = MultiHeadAttention(C, H, attn_drop=0.5).eval()
    x = torch.randn(B, N, C)
    out = m(x)
    assert out.shape == (B, N, C)
    torch.testing.assert_close(out, sdpa_reference(m, x), rtol=1e-5, atol=1e-5)


def test_attention_is_bidirectional_and_dropout_only_in_train():
    torch.manual_seed(0)
    m = MultiHeadAttention(16, 4, attn_drop=0.5)
    x = torch.randn(1, 6, 16)
    y = x.clone()
    y[0, -1] += 1.0
    m.eval()
    assert not torch.allclose(m(x)[0, 0], m(y)[0, 0])  # the first token sees the last one
    torch.testing.assert_close(m(x), m(x))
    m.train()
    assert not torch.allclose(m(x), m(x))


def test_gamma_functions(tiny_model):
    r = torch.linspace(0, 1, 11)
    assert MASK_FUNCS == ("cosine", "linear", "square")  # the course's three: graded, the scripts' defaults
    for mode in MASK_FUNCS + EXTRA_MASK_FUNCS:
        g = tiny_model.gamma_func(mode)(r)
        assert g.shape == r.shape
        start = 1 - 1 / 256 if mode == "exp" else 1.0
        assert abs(g[0].item() - start) < 1e-6 and abs(g[-1].item()) < 1e-6, mode
        assert (g[1:] <= g[:-1] + 1e-7).all() and (g >= 0).all() and (g <= 1).all(), mode
    half = torch.tensor(0.5)
    assert tiny_model.gamma_func("cosine")(half).item() == pytest.approx(math.cos(math.pi / 4))
    assert tiny_model.gamma_func("linear")(half).item() == pytest.approx(0.5)
    assert tiny_model.gamma_func("square")(half).item() == pytest.approx(0.75)
    with pytest.raises(ValueError, match="cosine"):
        tiny_model.gamma_func("triangle")


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_mask_tokens_counts(tiny_model, ratio):
    z = torch.randint(0, 16, (4, 256))
    masked, mask = tiny_model.mask_tokens(z, ratio)
    expected = max(1, math.ceil(math.cos(math.pi / 2 * ratio) * 256 - 1e-4))
    assert mask.sum(1).tolist() == [min(256, expected)] * 4
    assert (masked[mask] == tiny_model.mask_token_id).all() and tiny_model.mask_token_id == 16
    assert torch.equal(masked[~mask], z[~mask])


def test_forward_targets_cover_masked_positions_only(tiny_model):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    logits, target = tiny_model(images, ratio=0.5)
    assert logits.shape == (2, 256, 17)
    _, z = tiny_model.encode_to_z(images)
    assert z.dtype == torch.int64 and z.shape == (2, 256) and z.max() < 16
    masked = target != IGNORE_INDEX
    assert masked.sum(1).tolist() == [182, 182]  # ceil(cos(pi/4) * 256)
    assert torch.equal(target[masked], z[masked])


def _setup_step(model, B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randint(0, 16, (B, 256), generator=g)
    mask = torch.rand(B, 256, generator=g) < torch.tensor([0.2, 0.5, 0.8])[:B, None]
    return z, mask


def test_inpainting_step_invariants(tiny_model):
    z, mask = _setup_step(tiny_model)
    n0 = mask.sum(1)
    z_pred, new_mask = tiny_model.inpainting_step(z, mask, n0, 1 / 8, T)
    assert torch.equal(z_pred[~mask], z[~mask])
    assert (z_pred < 16).all() and z_pred.dtype == torch.int64
    assert not (new_mask & ~mask).any()
    expected = torch.floor(n0 * math.cos(math.pi / 16)).long().clamp(max=n0 - 1).clamp(min=1)
    assert torch.equal(new_mask.sum(1), expected)
    _, last = tiny_model.inpainting_step(z_pred, new_mask, n0, 1.0, T)
    assert not last.any()


def test_step_uses_original_count_not_current(tiny_model):
    z, mask = _setup_step(tiny_model, B=1)
    n0 = torch.tensor([200])
    mask[:] = False
    mask[0, :100] = True  # 100 unknown now, 200 at the start
    _, new_mask = tiny_model.inpainting_step(z, mask, n0, 0.5, T)
    assert new_mask.sum().item() == min(99, math.floor(200 * math.cos(math.pi / 4)))


def test_zero_temperature_reveals_most_confident(tiny_model):
    z, mask = _setup_step(tiny_model, B=2)
    n0 = mask.sum(1)
    _, new_mask = tiny_model.inpainting_step(z, mask, n0, 0.5, choice_temperature=0.0, sample=False)
    with torch.no_grad():
        logits = tiny_model.transformer(z.masked_fill(mask, 16))[..., :16]
    conf = logits.log_softmax(-1).max(-1).values
    for b in range(2):
        revealed = mask[b] & ~new_mask[b]
        assert conf[b][revealed].min() >= conf[b][new_mask[b]].max()


def test_iterative_decoding_fills_everything_and_matches_per_image(tiny_model):
    z, mask = _setup_step(tiny_model)
    gens = image_generators(range(3), seed=7)
    z_final, history = iterative_decoding(tiny_model, z, mask, total_iter=6, generators=gens, choice_temperature=T)
    assert len(history) == 6 and not history[-1][1].any()
    counts = [m.sum(1) for _, m in history]
    assert all((a >= b).all() for a, b in zip(counts, counts[1:], strict=False))
    assert torch.equal(z_final[~mask], z[~mask]) and (z_final < 16).all()
    for i in range(3):
        zi, _ = iterative_decoding(tiny_model, z[i:i + 1], mask[i:i + 1], 6,
                                   generators=image_generators([i], seed=7), choice_temperature=T)
        assert torch.equal(zi[0], z_final[i])
    again, _ = iterative_decoding(tiny_model, z, mask, 6, generators=image_generators(range(3), seed=7),
                                  choice_temperature=T)
    assert torch.equal(again, z_final)


def test_sweet_spot_stops_early(tiny_model):
    z, mask = _setup_step(tiny_model)
    z_final, history = iterative_decoding(tiny_model, z, mask, total_iter=8, sweet_spot=3, choice_temperature=T)
    assert len(history) == 3 and history[-1][1].any()
    assert torch.equal(z_final, history[-1][0]) and (z_final < 16).all()


def test_latent_mask_marks_any_touched_token():
    pixel = torch.ones(1, 1, 64, 64)
    pixel[0, 0, 5, 5] = 0  # one hole pixel in token (1, 1)
    pixel[0, 0, 60:, 60:] = 0  # the bottom-right token
    m = latent_mask(pixel, 16)
    assert m.shape == (1, 256) and m.sum() == 2 and m[0, 17] and m[0, 255]


def test_maskgit_random_init_trains_nothing_in_vqgan(tiny_setup):
    model = MaskGit(tiny_setup["cfg"])
    assert not any(p.requires_grad for p in model.vqgan.parameters())
    model.train()
    assert not model.vqgan.training and model.transformer.training


def test_decode_to_image_decodes_the_ids(tiny_model):
    """decode_to_image: ids (B, N) -> images (B, 3, H, W) in [-1, 1], the VQGAN decoder of those ids, clamped."""
    torch.manual_seed(0)
    _, z = tiny_model.encode_to_z(torch.rand(2, 3, 64, 64) * 2 - 1)
    images = tiny_model.decode_to_image(z)
    assert images.shape == (2, 3, 64, 64) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    with torch.no_grad():
        raw = tiny_model.vqgan.decode(tiny_model.vqgan.indices_to_latent(z.view(2, 16, 16)))
    assert torch.equal(images, raw.clamp(-1, 1))
