"""The given decoding code checks the token ids that ``iterative_decoding`` returns before the VQGAN decodes them:
a bad id (the mask id K, a negative id, a float tensor) is one clear ``TokenIdError`` naming the TODO functions and
the id, never an IndexError deep inside the codebook lookup."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from decoding import DecodeSettings, TokenIdError, check_token_ids, inpaint_batch

K = 16


class StubModel:
    """Just what inpaint_batch uses: 4 x 4 = 16 tokens, K codes; decoding records what it was given."""

    def __init__(self):
        self.cfg = SimpleNamespace(vqgan=SimpleNamespace(latent_size=4))
        self.num_codebook_vectors = K
        self.decoded = []

    def encode_to_z(self, x):
        return None, torch.zeros(x.shape[0], 16, dtype=torch.int64)

    def decode_to_image(self, z):
        self.decoded.append(z)
        return torch.zeros(z.shape[0], 3, 16, 16)


def run_with(z_final, history=()):
    model = StubModel()
    images, masks = torch.zeros(2, 3, 16, 16), torch.ones(2, 1, 16, 16)
    masks[:, :, :8] = 0
    loop = lambda *args, **kwargs: (z_final, list(history))  # noqa: E731
    out = inpaint_batch(model, images, masks, torch.tensor([0, 1]), DecodeSettings(choice_temperature=4.5), loop)
    return model, out


def test_mask_id_in_z_final_is_named_before_decoding():
    z = torch.zeros(2, 16, dtype=torch.int64)
    z[1, 5] = K
    with pytest.raises(TokenIdError, match=r"iterative_decoding returned z_final with token id 16 \(the mask id\) "
                                           r"at \(image, position\) \(1, 5\).*inpainting_step"):
        run_with(z)


def test_bad_id_in_a_step_of_history_is_named():
    good = torch.zeros(2, 16, dtype=torch.int64)
    with pytest.raises(TokenIdError, match=r"z_pred of step 1 \(in history\) with token id -1"):
        run_with(good, [(good, torch.zeros(2, 16, dtype=torch.bool)), (good - 1, torch.zeros(2, 16, dtype=torch.bool))])


def test_not_an_int64_tensor_is_named():
    with pytest.raises(TokenIdError, match="not an int64 tensor"):
        check_token_ids(torch.zeros(2, 16), K)


def test_real_codes_are_decoded():
    z = torch.arange(32).reshape(2, 16) % K
    model, (out, steps, masks) = run_with(z, [(z, torch.zeros(2, 16, dtype=torch.bool))])
    assert torch.equal(model.decoded[0], z) and out.shape == (2, 3, 16, 16) and len(steps) == 1 and len(masks) == 2
