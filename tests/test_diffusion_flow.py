"""Flow-matching math and guidance strategies on plain tensors (no model)."""

from __future__ import annotations

import pytest
import torch

from stereo_lit.diffusion.flow import (
    add_noise,
    blend,
    euler_step,
    inversion_sigmas,
    noise_from_velocity,
    velocity_from_x0,
    x0_from_velocity,
)
from stereo_lit.diffusion.guidance import LatentShift, Repaint, X0Blend
from stereo_lit.diffusion.sampler import num_guided_steps


def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 16, 3, 4, 6, generator=g), torch.randn(2, 16, 3, 4, 6, generator=g)


def test_true_velocity_recovers_x0_and_noise():
    x0, noise = _pair()
    for sigma in (0.05, 0.5, 0.97):
        x_t = add_noise(x0, noise, sigma)
        v = noise - x0  # the exact flow-matching target
        torch.testing.assert_close(x0_from_velocity(x_t, v, sigma), x0, atol=1e-5, rtol=0)
        torch.testing.assert_close(noise_from_velocity(x_t, v, sigma), noise, atol=1e-5, rtol=0)
        torch.testing.assert_close(velocity_from_x0(x_t, x0, sigma), v, atol=1e-4, rtol=0)


def test_euler_step_with_rewritten_velocity_lands_on_target_at_sigma_zero():
    x0, noise = _pair(1)
    target = torch.randn_like(x0)
    x_t = add_noise(x0, noise, 0.3)
    v = velocity_from_x0(x_t, target, 0.3)
    torch.testing.assert_close(euler_step(x_t, v, 0.3, 0.0), target, atol=1e-6, rtol=0)


def test_velocity_from_x0_refuses_sigma_zero():
    x0, _ = _pair()
    with pytest.raises(ValueError, match="sigma"):
        velocity_from_x0(x0, x0, 0.0)


def test_blend_and_inversion_sigmas():
    base, known = _pair(2)
    mask = torch.zeros(2, 1, 3, 4, 6)
    mask[..., :2] = 1
    out = blend(base, known, mask)
    assert torch.equal(out[..., :2], known[..., :2]) and torch.equal(out[..., 2:], base[..., 2:])
    sig = inversion_sigmas(torch.tensor([0.99, 0.6, 0.2, 0.0]))
    assert sig.tolist() == pytest.approx([0.0, 0.2, 0.6, 0.99])


def test_x0_blend_edits_only_known_cells_and_keeps_noise_estimate():
    x_t, v = _pair(3)
    known, _ = _pair(4)
    mask = torch.zeros(2, 1, 3, 4, 6)
    mask[:, :, 1:] = 1
    sigma = 0.4
    v_edit = X0Blend(known, mask).edit_velocity(x_t, v, sigma)
    assert torch.equal(v_edit[:, :, :1], v[:, :, :1])
    torch.testing.assert_close(x0_from_velocity(x_t, v_edit, sigma)[:, :, 1:], known[:, :, 1:], atol=1e-5, rtol=0)


def test_repaint_and_latent_shift_overwrite_the_sample():
    known, noise = _pair(5)
    mask = torch.zeros(2, 1, 3, 4, 6)
    mask[..., 3:] = 1
    x = torch.zeros_like(known)
    out = Repaint(known, mask, torch.Generator().manual_seed(0)).edit_sample(x, 0.0, 0)
    assert torch.equal(out[..., 3:], known[..., 3:]) and torch.equal(out[..., :3], x[..., :3])
    # a uniform shift of 1 latent pixel to the left: column c+1 of the left lands in column c
    shift = LatentShift(known, noise, torch.ones(2, 1, 3, 4, 6), every=2)
    assert torch.equal(shift.mask[..., -1], torch.zeros_like(shift.mask[..., -1]))  # right edge uncovered
    torch.testing.assert_close(shift.shifted_latent[..., :-1], known[..., 1:])
    assert torch.equal(shift.edit_sample(x, 0.5, 0), x)  # step 0 of every=2: no shift
    shifted = shift.edit_sample(x, 0.5, 1)
    torch.testing.assert_close(shifted[..., :-1], add_noise(known, noise, 0.5)[..., 1:])


def test_num_guided_steps():
    assert num_guided_steps(50, 0.8) == 40
    assert num_guided_steps(4, 1.0) == 4
    assert num_guided_steps(4, 0.0) == 0
    assert num_guided_steps(3, 0.5) == 2
    with pytest.raises(ValueError):
        num_guided_steps(4, 1.5)


def test_x0_blend_velocity_matches_the_x0_formulation_for_soft_masks():
    x_t, v = _pair(6)
    known, _ = _pair(7)
    mask = torch.rand(2, 1, 3, 4, 6, generator=torch.Generator().manual_seed(0))
    sigma = 0.7
    guide = X0Blend(known, mask)
    v_edit = guide.edit_velocity(x_t, v, sigma)
    x0_edit = guide.clean_prediction(x_t, v, sigma)
    torch.testing.assert_close(x0_from_velocity(x_t, v_edit, sigma), x0_edit, atol=1e-5, rtol=0)
