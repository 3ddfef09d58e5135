"""Stereo guidance strategies: how the known (warped) content steers the right view.

A strategy hooks into the denoising loop (:func:`stereo_lit.diffusion.sampler.denoise`)
at two points, both on latents ``[B, 16, f, h, w]`` with masks ``[B, 1, f, h, w]``
(1 = known latent cell):

- :meth:`Guidance.edit_velocity` between the model and the scheduler: edit the model's
  prediction. Any scheduler then integrates the edited prediction and stores it in its
  history;
- :meth:`Guidance.edit_sample` after the scheduler step: overwrite the sample itself
  (the latent ``x`` at the next sigma), i.e. before the next model call.

What is known about the original ``latent_shift`` failure (DESIGN.md section 4, checked
with an exact posterior-mean denoiser in place of the network): UniPC's corrector does
discard a sample edit made after a step, but an edit re-applied before *every* model call
still holds the known region exactly under UniPC, Euler and DPM++ (the last edit is at
sigma 0); "multistep history" alone does not explain the failure, and every strategy here
runs with every scheduler (``tests/test_diffusion_sampler.py`` checks ``repaint`` under
UniPC). What reproduces the symptom (the right view comes back as a copy of the left) is
starting the right view from the left view's *unshifted* noise while the left itself was
generated from that noise (text-to-stereo), with guidance stopped early. The right view's
noise is therefore the left's noise shifted onto the known cells with
:func:`~stereo_lit.stereo.geometry.shift_noise` (nearest cell, unit variance kept), fresh noise in the
holes.

Strategies:

- :class:`X0Blend` (default): ``x0_hat = x_t - sigma*v``; known cells of ``x0_hat`` <- the
  VAE latent of the pixel-space warp; ``v <- (x_t - x0_edit) / sigma``.
- :class:`Repaint`: known cells of ``x_t`` <- a freshly noised copy of the warp latent at
  the current sigma.
- :class:`LatentShift`: the original experiment: known cells of the right ``x_t`` <- the
  left view's ``x_t`` forward-warped on the latent grid with the latent-grid disparity,
  every ``every`` steps.
"""

from __future__ import annotations

import torch

from stereo_lit.diffusion.flow import add_noise, blend, velocity_from_x0, x0_from_velocity
from stereo_lit.stereo.geometry import forward_warp, shift_noise

STRATEGIES = ("x0_blend", "repaint", "latent_shift", "none")


class Guidance:
    """No guidance (plain Wan sampling); the base every strategy overrides."""

    name = "none"

    def prepare(self, latents: torch.Tensor, sigma: float) -> torch.Tensor:
        """Edit the initial latents (at the first sigma) before the first model call."""
        return latents

    def edit_velocity(self, x_t: torch.Tensor, velocity: torch.Tensor, sigma: float) -> torch.Tensor:
        """Edit the model's velocity at ``(x_t, sigma)`` before the scheduler step."""
        return velocity

    def edit_sample(self, x: torch.Tensor, sigma: float, step: int) -> torch.Tensor:
        """Edit the sample ``x`` (now at ``sigma``) after scheduler step ``step``."""
        return x


class X0Blend(Guidance):
    """Replace the known cells of the clean-latent prediction and rewrite ``v`` from it.

    Args:
        known_latent: normalised latent of the known content ``[B, 16, f, h, w]``.
        mask: ``[B, 1, f, h, w]``, 1 where a latent cell is fully known.
    """

    name = "x0_blend"

    def __init__(self, known_latent: torch.Tensor, mask: torch.Tensor) -> None:
        self.known_latent = known_latent
        self.mask = mask

    def edit_velocity(self, x_t: torch.Tensor, velocity: torch.Tensor, sigma: float) -> torch.Tensor:
        # x0_edit = blend(x0_hat, known, mask) with x0_hat = x_t - sigma * v, and
        # v_edit = (x_t - x0_edit) / sigma. Since x0 is affine in v, that equals blending the
        # velocities, which leaves unknown cells bit-identical to the model's prediction.
        velocity_known = velocity_from_x0(x_t, self.known_latent, sigma)
        return blend(velocity, velocity_known, self.mask)

    def clean_prediction(self, x_t: torch.Tensor, velocity: torch.Tensor, sigma: float) -> torch.Tensor:
        """The edited clean-latent prediction ``x0_edit`` (what the scheduler will integrate towards)."""
        return blend(x0_from_velocity(x_t, velocity, sigma), self.known_latent, self.mask)


class Repaint(Guidance):
    """Replace the known cells of ``x_t`` with the known latent freshly noised to the current sigma."""

    name = "repaint"

    def __init__(self, known_latent: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None) -> None:
        self.known_latent = known_latent
        self.mask = mask
        self.generator = generator

    def _noised_known(self, sigma: float) -> torch.Tensor:
        noise = torch.randn(
            self.known_latent.shape, generator=self.generator, device=self.known_latent.device, dtype=self.known_latent.dtype
        )
        return add_noise(self.known_latent, noise, sigma)

    def prepare(self, latents: torch.Tensor, sigma: float) -> torch.Tensor:
        return blend(latents, self._noised_known(sigma), self.mask)

    def edit_sample(self, x: torch.Tensor, sigma: float, step: int) -> torch.Tensor:
        return blend(x, self._noised_known(sigma), self.mask)


def shift_latent(latent: torch.Tensor, disparity_latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-warp a latent ``[B, C, f, h, w]`` to the right view with latent-grid disparity ``[B, 1, f, h, w]``.

    Returns ``(shifted, covered)``, covered ``[B, 1, f, h, w]`` (z-buffered splat, see geometry).
    For content (latents) only: a sub-pixel splat averages neighbours, so it shrinks noise;
    shift noise with :func:`shift_noise`.
    """
    return forward_warp(latent, disparity_latent.to(latent.dtype), direction=-1)


class LatentShift(Guidance):
    """The original scheme: the right ``x_t`` takes the left ``x_t`` shifted on the latent grid.

    The left view is given (video-to-stereo) or already generated (text-to-stereo), so its
    trajectory at any sigma is ``(1 - sigma) * z_left + sigma * noise_left``; latent and
    noise are shifted once and mixed per step: the latent with the sub-pixel splat
    (:func:`shift_latent`), the noise to the nearest cell (:func:`shift_noise`) so that the
    shifted ``x_t`` carries unit-variance noise for its sigma. Known cells: covered by both.

    Args:
        left_latent: normalised left latent ``[B, 16, f, h, w]``.
        left_noise: the left trajectory's noise (same shape).
        disparity_latent: ``[B, 1, f, h, w]`` disparity in latent pixels
            (:func:`stereo_lit.stereo.geometry.disparity_to_latent_grid`).
        every: shift after every ``every``-th step (1 = every step).
    """

    name = "latent_shift"

    def __init__(self, left_latent: torch.Tensor, left_noise: torch.Tensor, disparity_latent: torch.Tensor, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"shift_every must be >= 1, got {every}")
        self.shifted_latent, latent_cover = shift_latent(left_latent, disparity_latent)
        self.shifted_noise, noise_cover = shift_noise(left_noise, disparity_latent.to(left_noise.dtype))
        self.mask = latent_cover * noise_cover
        self.every = every

    def prepare(self, latents: torch.Tensor, sigma: float) -> torch.Tensor:
        return blend(latents, add_noise(self.shifted_latent, self.shifted_noise, sigma), self.mask)

    def edit_sample(self, x: torch.Tensor, sigma: float, step: int) -> torch.Tensor:
        if (step + 1) % self.every:
            return x
        return blend(x, add_noise(self.shifted_latent, self.shifted_noise, sigma), self.mask)
