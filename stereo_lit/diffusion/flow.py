"""Flow-matching math as small pure functions (DESIGN.md conventions).

``x_sigma = (1 - sigma) * x0 + sigma * noise``; the model predicts the velocity
``v = noise - x0``; hence ``x0_hat = x_sigma - sigma * v`` and, for any target clean
latent ``x0``, the velocity that the scheduler must see to land on it is
``v = (x_sigma - x0) / sigma``. ``sigma`` is a Python float or a 0-d tensor (the
scheduler's ``sigmas[i]``); every tensor argument has the same shape (latents
``[B, 16, f, h, w]``) or broadcasts to it.
"""

from __future__ import annotations

import torch

Sigma = float | torch.Tensor

#: Below this sigma, ``v = (x - x0) / sigma`` is ill-conditioned; callers never edit at sigma 0.
MIN_SIGMA = 1e-6


def _as_sigma(sigma: Sigma, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(sigma, dtype=like.dtype, device=like.device)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """``x_sigma = (1 - sigma) * x0 + sigma * noise``."""
    s = _as_sigma(sigma, x0)
    return (1 - s) * x0 + s * noise


def x0_from_velocity(x_t: torch.Tensor, velocity: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """Clean-latent prediction ``x0_hat = x_t - sigma * v``."""
    return x_t - _as_sigma(sigma, x_t) * velocity


def noise_from_velocity(x_t: torch.Tensor, velocity: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """Noise prediction ``noise_hat = x_t + (1 - sigma) * v`` (so that ``v = noise_hat - x0_hat``)."""
    return x_t + (1 - _as_sigma(sigma, x_t)) * velocity


def velocity_from_x0(x_t: torch.Tensor, x0: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """The velocity whose clean-latent prediction at ``(x_t, sigma)`` is ``x0``: ``(x_t - x0) / sigma``."""
    s = _as_sigma(sigma, x_t)
    if float(s) < MIN_SIGMA:
        raise ValueError(f"cannot rewrite the velocity at sigma={float(s):.2e} (< {MIN_SIGMA}); x0 is x_t there")
    return (x_t - x0) / s


def blend(base: torch.Tensor, known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``known`` where ``mask`` is 1, ``base`` where it is 0 (linear in between); mask broadcasts over channels.

    Exact at both ends (``torch.lerp``), so a fully known cell holds ``known`` bit for bit.
    """
    return torch.lerp(base, known.to(base.dtype), mask.to(base.dtype).expand_as(base))


def euler_step(x_t: torch.Tensor, velocity: torch.Tensor, sigma: Sigma, sigma_next: Sigma) -> torch.Tensor:
    """One Euler step of the flow ODE ``dx/dsigma = v`` from ``sigma`` to ``sigma_next`` (either direction)."""
    return x_t + (_as_sigma(sigma_next, x_t) - _as_sigma(sigma, x_t)) * velocity


def inversion_sigmas(sampling_sigmas: torch.Tensor) -> torch.Tensor:
    """Sigmas for inversion: the sampling schedule reversed, from 0 up to its first (largest) sigma."""
    return torch.flip(sampling_sigmas.float(), dims=[0])
