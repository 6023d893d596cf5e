"""The hole pre-fill used before tokenizing masked images (solutions/hole_fill.py)."""
import pytest
import torch

from hole_fill import laplace_fill, prefill_holes


def _ramp_with_hole():
    ramp = torch.linspace(-1, 1, 32).view(1, 1, 1, 32).expand(2, 3, 32, 32).clone()
    mask = torch.ones(2, 1, 32, 32)
    mask[:, :, 8:20, 10:22] = 0  # an interior hole
    masked = ramp * mask + 0.0 * (1 - mask)  # painted flat
    return ramp, mask, masked


def test_known_pixels_are_kept_exactly():
    ramp, mask, masked = _ramp_with_hole()
    filled = laplace_fill(masked, mask)
    assert torch.equal(filled * mask, masked * mask)


def test_fill_is_the_harmonic_interpolation_of_the_border():
    """A linear ramp is harmonic: the fill must recover it inside the hole (the gray paint must not survive)."""
    ramp, mask, masked = _ramp_with_hole()
    filled = laplace_fill(masked, mask, iterations=600)
    hole = mask.expand_as(ramp) == 0
    assert (filled - ramp)[hole].abs().max() < 1e-3
    assert (masked - ramp)[hole].abs().max() > 0.3  # the test would fail without the fill


def test_fill_stays_within_the_known_range():
    torch.manual_seed(0)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    mask = (torch.rand(4, 1, 16, 16) > 0.3).float()
    filled = laplace_fill(images * mask, mask)
    known = images.masked_select(mask.expand_as(images).bool())
    assert filled.min() >= known.min() - 1e-5 and filled.max() <= known.max() + 1e-5


def test_none_and_bad_method():
    ramp, mask, masked = _ramp_with_hole()
    assert prefill_holes(masked, mask, "none") is masked
    all_hole = torch.zeros_like(mask)
    assert torch.equal(laplace_fill(masked, all_hole), masked)  # nothing known: left as given
    with pytest.raises(ValueError, match="laplace"):
        prefill_holes(masked, mask, "telea")
