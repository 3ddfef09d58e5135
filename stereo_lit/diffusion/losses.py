"""Training losses as pure functions: flow matching and the right -> left warp cycle.

Conventions (DESIGN.md): ``x_sigma = (1 - sigma) * x0 + sigma * noise``, the model
predicts ``v = noise - x0``; videos ``[B, C, T, H, W]`` in [0, 1]; disparity in pixels
of the tensor it belongs to, here the *right* view's frame (the right pixel at column
``x`` is seen in the left view at ``x + d``); masks 1 = valid.
"""

from __future__ import annotations

import torch

from stereo_lit.stereo.geometry import cycle_warp_right_to_left

SIGMA_SAMPLING = ("logit_normal", "uniform")


def _masked_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` weighted by ``weight`` (broadcast to ``values``); 0 when the weight sums to 0."""
    if weight is None:
        return values.mean()
    w = weight.to(values.dtype).expand_as(values)
    return (values * w).sum() / w.sum().clamp_min(1e-8)


def flow_matching_loss(
    v_pred: torch.Tensor,
    noise: torch.Tensor,
    x0: torch.Tensor,
    weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Flow-matching MSE ``|v_pred - (noise - x0)|^2``, a (masked, weighted) mean.

    Args:
        v_pred, noise, x0: latents ``[B, C, f, h, w]`` (any equal shapes).
        weight: per-sample loss weight ``[B]`` (e.g. a sigma weighting), or None.
        mask: 1 where the target is known, broadcastable to ``v_pred`` (e.g. a latent
            mask ``[B, 1, f, h, w]``); the mean is over masked entries only (0 if none).

    Returns:
        0-d float32 loss.
    """
    if v_pred.shape != noise.shape or v_pred.shape != x0.shape:
        raise ValueError(
            f"v_pred {tuple(v_pred.shape)}, noise {tuple(noise.shape)} and x0 {tuple(x0.shape)} must have one shape"
        )
    err = (v_pred.float() - (noise.float() - x0.float())).pow(2)
    w: torch.Tensor | None = None
    if mask is not None:
        w = mask.float()
    if weight is not None:
        per_sample = weight.float().reshape(-1, *([1] * (err.ndim - 1)))
        if per_sample.shape[0] != err.shape[0]:
            raise ValueError(f"weight must have one value per batch element ({err.shape[0]}), got {tuple(weight.shape)}")
        w = per_sample if w is None else w * per_sample
    return _masked_mean(err, w)


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """Wan's / SD3's time shift ``sigma' = shift * s / (1 + (shift - 1) * s)`` (identity for shift 1).

    The same transform ``FlowMatchEulerDiscreteScheduler`` and UniPC's ``flow_shift`` apply
    to the sampling schedule, so training sees sigmas distributed like sampling visits them.
    """
    if shift <= 0:
        raise ValueError(f"flow shift must be > 0, got {shift}")
    return shift * sigmas / (1.0 + (shift - 1.0) * sigmas)


def sample_sigmas(
    batch: int,
    generator: torch.Generator | None = None,
    shift: float = 3.0,
    *,
    scheme: str = "logit_normal",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    min_sigma: float = 1e-3,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Training sigmas ``[batch]`` in ``[min_sigma, 1]`` (float32), on ``device``.

    ``u`` is drawn from the logit-normal density of Esser et al. 2024 (SD3, "Scaling
    Rectified Flow Transformers", sec. 3.1: ``u = sigmoid(n)``, ``n ~ N(logit_mean,
    logit_std^2)``), or uniformly in [0, 1] (``scheme="uniform"``, as Wan's own training
    code draws timesteps), then shifted with :func:`shift_sigmas` (``shift`` = the
    sampler's ``flow_shift``). The timestep the Wan transformer takes is ``1000 * sigma``.

    Args:
        batch: number of sigmas (one per batch element).
        generator: CPU ``torch.Generator`` for reproducible draws (None: global RNG).
    """
    if scheme not in SIGMA_SAMPLING:
        raise ValueError(f"sigma sampling must be one of {SIGMA_SAMPLING}, got {scheme!r}")
    if scheme == "logit_normal":
        normal = torch.randn(batch, generator=generator, dtype=torch.float32)
        u = torch.sigmoid(logit_mean + logit_std * normal)
    else:
        u = torch.rand(batch, generator=generator, dtype=torch.float32)
    return shift_sigmas(u, shift).clamp(min_sigma, 1.0).to(device)


def _masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Channel-mean absolute error, averaged over pixels where ``mask`` (one channel) is 1."""
    err = (pred.float() - target.float()).abs().mean(dim=1, keepdim=True)
    return _masked_mean(err, mask.float())


def _cycle_disparity(disparity_right_px: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Right disparity with invalid entries (``mask`` 0) set to NaN so that they are never splatted."""
    disparity = disparity_right_px.float()
    if mask is None:
        return disparity
    return torch.where(mask.to(disparity.device) > 0.5, disparity, torch.full_like(disparity, float("nan")))


def cycle_loss(
    right_pred: torch.Tensor,
    left: torch.Tensor,
    disparity_right_px: torch.Tensor,
    mask: torch.Tensor | None = None,
    left_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Right -> left cycle L1 in pixel space, differentiable w.r.t. ``right_pred``.

    The predicted right view is forward-splatted back to the left view with the right
    view's disparity (z-buffered, :func:`~stereo_lit.stereo.geometry.cycle_warp_right_to_left`;
    the splat is linear in the image, so gradients reach every right pixel that lands),
    and compared with the true left view on co-visible pixels: left pixels that receive
    right content (right pixels hidden in the left view lose the z-buffer; left pixels
    disoccluded in the right view receive nothing).

    Args:
        right_pred: ``[B, 3, T, H, W]`` in [0, 1] (or any image-like tensor, e.g. [-1, 1]).
        left: ``[B, 3, T, H, W]``, same range.
        disparity_right_px: ``[B, 1, T, H, W]`` px in the right view's frame.
        mask: ``[B, 1, T, H, W]``, 1 where the right disparity is valid (right frame).
        left_mask: ``[B, 1, T, H, W]``, 1 where the left view counts (left frame).

    Returns:
        0-d mean absolute error over co-visible pixels (0 when there are none).
    """
    left_hat, received = cycle_warp_right_to_left(right_pred, _cycle_disparity(disparity_right_px, mask))
    weight = received if left_mask is None else received * left_mask.to(received)
    return _masked_l1(left_hat, left, weight)


def latent_cycle_loss(
    right_x0_latent: torch.Tensor,
    left_latent: torch.Tensor,
    disparity_right_latent: torch.Tensor,
    mask: torch.Tensor | None = None,
    left_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The right -> left cycle on the Wan latent grid (no VAE decode): cheap, approximate.

    Same splat as :func:`cycle_loss`, applied to latents ``[B, 16, f, h, w]`` with the
    right disparity in *latent* pixels (:func:`~stereo_lit.stereo.geometry.disparity_to_latent_grid`
    of the pixel disparity). A latent cell summarises 8x8 pixels and 4 frames, so this is
    exact only for shifts the VAE commutes with; pass masks that drop cells straddling
    depth edges (see :mod:`stereo_lit.diffusion.training`).

    Args:
        right_x0_latent: predicted clean right latent ``[B, 16, f, h, w]``.
        left_latent: the left video's latent, same shape.
        disparity_right_latent: ``[B, 1, f, h, w]`` latent px, right frame.
        mask: ``[B, 1, f, h, w]``, 1 where the right latent disparity is trustworthy.
        left_mask: ``[B, 1, f, h, w]``, 1 on left cells that count.

    Returns:
        0-d mean absolute error over co-visible cells.
    """
    if right_x0_latent.shape != left_latent.shape:
        raise ValueError(f"right latent {tuple(right_x0_latent.shape)} and left latent {tuple(left_latent.shape)} differ")
    left_hat, received = cycle_warp_right_to_left(right_x0_latent, _cycle_disparity(disparity_right_latent, mask))
    weight = received if left_mask is None else received * left_mask.to(received)
    return _masked_l1(left_hat, left_latent, weight)
