"""Training losses: flow matching (exactness, masks, weights), sigma sampling, pixel and latent cycle."""

from __future__ import annotations

import pytest
import torch

from stereo_lit.data.synthetic import render_sequence
from stereo_lit.diffusion.losses import cycle_loss, flow_matching_loss, latent_cycle_loss, sample_sigmas, shift_sigmas


def _latents(seed: int, shape=(2, 16, 2, 4, 6)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- flow matching
def test_flow_matching_loss_is_zero_for_the_true_velocity_and_positive_otherwise():
    x0, noise = _latents(0), _latents(1)
    assert flow_matching_loss(noise - x0, noise, x0).item() == 0.0
    wrong = noise - x0 + 0.5
    assert flow_matching_loss(wrong, noise, x0).item() == pytest.approx(0.25)
    assert flow_matching_loss(torch.zeros_like(x0), noise, x0).item() == pytest.approx(((noise - x0) ** 2).mean().item())


def test_flow_matching_loss_mask_counts_only_known_cells():
    x0, noise = _latents(0), _latents(1)
    mask = torch.zeros(2, 1, 2, 4, 6)
    mask[..., :, :3] = 1.0  # left half known
    v = noise - x0
    v_bad_unknown = v.clone()
    v_bad_unknown[..., 3:] += 10.0  # errors only where the mask is 0
    assert flow_matching_loss(v_bad_unknown, noise, x0, mask=mask).item() == 0.0
    v_bad_known = v.clone()
    v_bad_known[..., :3] += 2.0  # error 4 on every known entry
    assert flow_matching_loss(v_bad_known, noise, x0, mask=mask).item() == pytest.approx(4.0)
    # unmasked, the same prediction averages over every entry
    assert flow_matching_loss(v_bad_known, noise, x0).item() == pytest.approx(2.0)
    assert flow_matching_loss(v_bad_known, noise, x0, mask=torch.zeros_like(mask)).item() == 0.0


def test_flow_matching_loss_per_sample_weight():
    x0, noise = _latents(0), _latents(1)
    v = noise - x0
    v[1] += 1.0  # only sample 1 is wrong (error 1 everywhere)
    assert flow_matching_loss(v, noise, x0, weight=torch.tensor([1.0, 0.0])).item() == 0.0
    assert flow_matching_loss(v, noise, x0, weight=torch.tensor([1.0, 3.0])).item() == pytest.approx(0.75)
    with pytest.raises(ValueError, match="one value per batch"):
        flow_matching_loss(v, noise, x0, weight=torch.ones(3))
    with pytest.raises(ValueError, match="one shape"):
        flow_matching_loss(v[:1], noise, x0)


# ----------------------------------------------------------------------------- sigmas
def test_shift_matches_diffusers_flow_match_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    unshifted = torch.linspace(1, 1000, 1000).flip(0) / 1000
    torch.testing.assert_close(shift_sigmas(unshifted, 3.0), scheduler.sigmas[:1000].float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(shift_sigmas(unshifted, 1.0), unshifted)


@pytest.mark.parametrize("scheme", ["logit_normal", "uniform"])
def test_sample_sigmas_range_reproducibility_and_shift(scheme):
    draw = lambda shift: sample_sigmas(4000, torch.Generator().manual_seed(3), shift, scheme=scheme)  # noqa: E731
    plain, shifted = draw(1.0), draw(3.0)
    assert plain.shape == (4000,) and plain.dtype == torch.float32
    assert plain.min() >= 1e-3 and plain.max() <= 1.0
    torch.testing.assert_close(draw(3.0), shifted)  # same generator seed, same draws
    assert (shifted >= plain - 1e-6).all()  # the shift moves every sigma towards noise
    assert shifted.mean() > plain.mean() + 0.1
    if scheme == "logit_normal":  # sigmoid(N(0, 1)): symmetric about 0.5, concentrated in the middle
        assert abs(plain.mean().item() - 0.5) < 0.02
        assert ((plain > 0.25) & (plain < 0.75)).float().mean() > 0.7
    else:
        assert ((plain > 0.25) & (plain < 0.75)).float().mean() == pytest.approx(0.5, abs=0.05)
    with pytest.raises(ValueError, match="sigma sampling"):
        sample_sigmas(2, scheme="cosine")


# ----------------------------------------------------------------------------- cycle (pixels)
@pytest.fixture(scope="module")
def stereo_scene():
    """A small exact stereo sequence: left, right ``[1,3,T,H,W]`` and the right view's disparity."""
    seq = render_sequence(num_frames=3, height=48, width=96, seed=0)

    def video(frames):
        return torch.from_numpy(frames).float().permute(3, 0, 1, 2)[None] / 255.0

    disparity_right = torch.from_numpy(seq.fx * seq.baseline_m / seq.depth_right_m).float()[None, None]
    return video(seq.left), video(seq.right), disparity_right


def test_cycle_loss_small_for_the_true_right_view_large_for_copy_left(stereo_scene):
    left, right, disparity_right = stereo_scene
    assert disparity_right.max() > 3.0  # the scene has real parallax
    true_loss = cycle_loss(right, left, disparity_right).item()
    copy_left = cycle_loss(left, left, disparity_right).item()
    shifted = cycle_loss(torch.roll(right, 3, dims=-1), left, disparity_right).item()
    assert true_loss < 0.02
    assert copy_left > 3 * true_loss
    assert shifted > 3 * true_loss


def test_cycle_loss_masks_and_gradient(stereo_scene):
    left, right, disparity_right = stereo_scene
    right_pred = left.clone().requires_grad_(True)
    loss = cycle_loss(right_pred, left, disparity_right)
    loss.backward()
    grad = right_pred.grad
    assert grad is not None and grad.abs().sum() > 0
    # a right-frame mask of zeros leaves no co-visible pixel: loss 0, no gradient
    none = cycle_loss(right_pred, left, disparity_right, mask=torch.zeros_like(disparity_right))
    assert none.item() == 0.0
    # masking the left view's right half changes which pixels count
    left_mask = torch.ones_like(disparity_right)
    left_mask[..., 48:] = 0.0
    half = cycle_loss(left, left, disparity_right, left_mask=left_mask).item()
    assert half != pytest.approx(cycle_loss(left, left, disparity_right).item())


# ----------------------------------------------------------------------------- cycle (latents)
def test_latent_cycle_loss_zero_for_an_exact_shift_and_gradient():
    left_latent = _latents(5, (1, 16, 2, 6, 12))
    shift = 2  # latent px: the right cell at x shows the left cell at x + 2
    right_latent = torch.randn_like(left_latent)
    right_latent[..., : 12 - shift] = left_latent[..., shift:]
    disparity = torch.full((1, 1, 2, 6, 12), float(shift))
    exact = latent_cycle_loss(right_latent, left_latent, disparity)
    assert exact.item() < 1e-6
    copy_left = latent_cycle_loss(left_latent.clone(), left_latent, disparity)
    assert copy_left.item() > 0.5
    pred = left_latent.clone().requires_grad_(True)
    latent_cycle_loss(pred, left_latent, disparity).backward()
    assert pred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="differ"):
        latent_cycle_loss(pred[:, :8], left_latent, disparity)

