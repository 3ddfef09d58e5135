"""The LoRA fine-tuning objective of the Wan transformer (DESIGN.md section 5).

Per batch (:meth:`LoRATrainingObjective.__call__`):

1. target clean latent ``x0`` (VAE, no grad): the true right video when the batch has one
   (TartanAir), else the left view forward-warped to the right (holes filled from the
   background) with its latent known mask (a cell is known only when all its pixels are
   covered by the warp);
2. ``sigma`` (:func:`~stereo_lit.diffusion.losses.sample_sigmas`, shifted like the sampler's
   schedule) and Gaussian noise; ``x_sigma = (1 - sigma) x0 + sigma noise``;
3. the transformer's velocity (conditional prompt only, no CFG), gradients through the
   LoRA weights only;
4. ``loss_fm``: flow-matching MSE on every cell (true right) or on known cells (mono);
5. ``loss_cycle``: ``x0_hat = x_sigma - sigma v`` warped back to the left view with the
   right view's disparity and compared with the left view, on the latent grid
   (``cycle_space="latent"``, default, no decode) or in pixels (``"pixel"``: ``x0_hat``
   decoded by the frozen VAE with gradients, memory-hungry at real sizes);
6. ``loss = loss_fm + cycle_weight * loss_cycle``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from stereo_lit.diffusion.codec import _latent_stats, _vae_device, encode_video
from stereo_lit.diffusion.lora import ADAPTER_NAME, add_lora, adapter_names, load_adapters, mark_lora_trainable
from stereo_lit.diffusion.options import LoRAOptions, as_options
from stereo_lit.diffusion.sampler import predict_velocity
from stereo_lit.generators.geometric import WarpFill, warp_only
from stereo_lit.stereo.geometry import (
    disparity_to_latent_grid,
    mask_to_latent_grid,
    occlusion_mask,
    right_disparity_from_left,
)
from stereo_lit.diffusion.losses import SIGMA_SAMPLING, cycle_loss, flow_matching_loss, latent_cycle_loss, sample_sigmas
from stereo_lit.stereo.windows import is_wan_length

CYCLE_SPACES = ("latent", "pixel")
#: Latent cycle: a right-view latent cell counts only when the disparity of the pixels it
#: covers spans at most this many pixels (one latent pixel): cells straddling a depth
#: edge have no single shift.
LATENT_EDGE_TOLERANCE_PX = 8.0


def decode_latents_with_grad(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Normalised latents ``[B, 16, f, h, w]`` -> video ``[B, 3, 4(f-1)+1, 8h, 8w]`` in [0, 1], differentiable.

    :func:`~stereo_lit.diffusion.codec.decode_latents` without ``no_grad`` (the VAE's own
    weights stay frozen; gradients flow to ``latents``). Values are clamped to [0, 1] as at
    inference, so pixels decoded out of range pass no gradient.
    """
    z = latents.to(device=_vae_device(vae), dtype=vae.dtype)
    mean, std = _latent_stats(vae, z)
    video = vae.decode(z * std + mean, return_dict=False)[0]
    return ((video.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def _edge_free(disparity_px: torch.Tensor, tolerance_px: float) -> torch.Tensor:
    """``[B,1,T,H,W]`` -> 1 on pixels whose 8x8 block's disparity spans <= ``tolerance_px`` (same shape)."""
    b, _, t, h, w = disparity_px.shape
    d = disparity_px.permute(0, 2, 1, 3, 4).reshape(b * t, 1, h, w)
    spread = F.max_pool2d(d, 8) + F.max_pool2d(-d, 8)
    ok = F.interpolate((spread <= tolerance_px).float(), scale_factor=8, mode="nearest")
    return ok.reshape(b, t, 1, h, w).permute(0, 2, 1, 3, 4)


def _nan_where_invalid(disparity_px: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return torch.where(valid > 0.5, disparity_px, torch.full_like(disparity_px, float("nan")))


@dataclass
class StereoTargets:
    """Geometry of one batch: ``[B,1,T,H,W]`` pixel tensors, all on the compute device."""

    disparity_left_px: torch.Tensor
    valid_left: torch.Tensor
    disparity_right_px: torch.Tensor
    valid_right: torch.Tensor


def stereo_targets(batch: dict[str, Any], disparity_left_px: torch.Tensor | None, device: torch.device) -> StereoTargets:
    """Left/right disparity and validity from a batch (TartanAir keys) or a given left disparity.

    The right view's disparity is the batch's ``disparity_right_px`` (true, TartanAir) when
    present, else the left disparity forward-splatted to the right view.
    """
    left = batch["left"]
    if disparity_left_px is None:
        disparity_left_px = batch.get("disparity_left_px")
    if disparity_left_px is None:
        raise ValueError(
            "LoRA training needs the left view's disparity: the batch has no 'disparity_left_px' (TartanAir) and "
            "none was passed (in-the-wild video: pass disparity_left_px=module.disparity_for(batch)[0])"
        )
    disparity_left = disparity_left_px.to(device, torch.float32)
    if disparity_left.shape[0] != left.shape[0] or disparity_left.shape[2:] != left.shape[2:] or disparity_left.shape[1] != 1:
        raise ValueError(f"disparity_left_px {tuple(disparity_left.shape)} does not match left {tuple(left.shape)}")
    valid_left = batch.get("valid_left")
    valid_left = torch.ones_like(disparity_left) if valid_left is None else valid_left.to(device, torch.float32)
    valid_left = valid_left * torch.isfinite(disparity_left).float()
    if batch.get("disparity_right_px") is not None:
        disparity_right = batch["disparity_right_px"].to(device, torch.float32)
        valid_right = batch.get("valid_right")
        valid_right = torch.ones_like(disparity_right) if valid_right is None else valid_right.to(device, torch.float32)
    else:
        disparity_right, valid_right = right_disparity_from_left(_nan_where_invalid(disparity_left, valid_left))
    valid_right = valid_right * torch.isfinite(disparity_right).float()
    return StereoTargets(
        torch.nan_to_num(disparity_left, nan=0.0), valid_left, torch.nan_to_num(disparity_right, nan=0.0), valid_right
    )


@dataclass
class LoRATrainingObjective:
    """Flow-matching + right->left cycle loss for the Wan transformer (see the module docstring).

    Args:
        cycle_weight: weight of the cycle loss (0 turns it off).
        cycle_space: ``"latent"`` (default) or ``"pixel"``.
        sigma_sampling: ``"logit_normal"`` (SD3) or ``"uniform"`` (Wan), then the flow shift.
        flow_shift: the sampler's flow shift (3.0 for 480p, 5.0 for 720p).
        logit_mean, logit_std: logit-normal parameters.
        fill_holes: mono video: fill warp holes from the background before VAE encoding
            (as the sampler does); those cells are excluded from the loss either way.
        num_train_timesteps: the Wan transformer's timestep is ``sigma * num_train_timesteps``.
    """

    cycle_weight: float = 0.1
    cycle_space: str = "latent"
    sigma_sampling: str = "logit_normal"
    flow_shift: float = 3.0
    logit_mean: float = 0.0
    logit_std: float = 1.0
    fill_holes: bool = True
    num_train_timesteps: int = 1000

    def __post_init__(self) -> None:
        if self.cycle_space not in CYCLE_SPACES:
            raise ValueError(f"cycle_space must be one of {CYCLE_SPACES}, got {self.cycle_space!r}")
        if self.sigma_sampling not in SIGMA_SAMPLING:
            raise ValueError(f"train_sigma_sampling must be one of {SIGMA_SAMPLING}, got {self.sigma_sampling!r}")
        if self.cycle_weight < 0:
            raise ValueError(f"cycle_weight must be >= 0, got {self.cycle_weight}")

    def __call__(
        self,
        vae: Any,
        transformer: Any,
        batch: dict[str, Any],
        prompt_embeds: torch.Tensor,
        *,
        disparity_left_px: torch.Tensor | None = None,
        sigmas: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Losses of one batch.

        Args:
            vae, transformer: the Wan VAE (frozen) and transformer (LoRA trainable).
            batch: ``left [B,3,T,H,W]`` in [0,1] (T = 4k+1, H, W multiples of 16), and
                either a true ``right`` (+ ``disparity_left_px``, optional
                ``disparity_right_px``, ``valid_left``, ``valid_right``) or none (mono).
            prompt_embeds: ``[1 or B, L, D]`` conditional text embeddings.
            disparity_left_px: ``[B,1,T,H,W]`` px; overrides the batch's (needed for mono video).
            sigmas: ``[B]`` fixed sigmas in (0, 1] (default: sampled); noise: fixed
                noise like the latents (default: Gaussian); generator: CPU generator for sigmas.

        Returns:
            ``{"loss", "loss_fm", "loss_cycle"}``: 0-d float32 tensors; ``loss`` carries the
            gradient, the parts are detached (for logging).
        """
        left = batch["left"]
        if left.ndim != 5 or left.shape[1] != 3:
            raise ValueError(f"batch['left'] must be a video [B, 3, T, H, W], got {tuple(left.shape)}")
        b, _, t, h, w = left.shape
        if not is_wan_length(t) or h % 16 or w % 16:
            raise ValueError(
                f"LoRA training clips need T = 4k+1 frames and H, W multiples of 16 (pad them), got T={t}, {h}x{w}"
            )
        device = _vae_device(vae)
        left = left.to(device, torch.float32)
        geo = stereo_targets(batch, disparity_left_px, device)

        # 1. Target clean latent (and which cells of it are known).
        with torch.no_grad():
            if batch.get("right") is not None:
                x0 = encode_video(vae, batch["right"].to(device, torch.float32))
                fm_mask = None
            else:
                warp = WarpFill().generate(left, _nan_where_invalid(geo.disparity_left_px, geo.valid_left))
                estimate = warp.right if self.fill_holes else warp_only(warp)
                x0 = encode_video(vae, estimate)
                fm_mask = mask_to_latent_grid(warp.known_mask)

        # 2. Noisy latent.
        if sigmas is None:
            sigmas = sample_sigmas(
                b, generator, self.flow_shift, scheme=self.sigma_sampling,
                logit_mean=self.logit_mean, logit_std=self.logit_std, device=device,
            )
        sigmas = sigmas.to(device, torch.float32).reshape(b)
        if noise is None:
            noise = torch.randn(x0.shape, device=device, dtype=torch.float32)
        noise = noise.to(device, torch.float32)
        sigma = sigmas.view(b, 1, 1, 1, 1)
        x_sigma = (1 - sigma) * x0 + sigma * noise

        # 3-4. Velocity (gradients through LoRA only) and flow matching.
        velocity = predict_velocity(transformer, x_sigma, sigmas * self.num_train_timesteps, prompt_embeds)
        loss_fm = flow_matching_loss(velocity, noise, x0, mask=fm_mask)

        # 5. Right -> left cycle on the model's clean-latent prediction.
        if self.cycle_weight > 0:
            x0_hat = x_sigma - sigma * velocity
            loss_cycle = self._cycle(vae, x0_hat, left, geo)
        else:
            loss_cycle = torch.zeros((), device=loss_fm.device)
        loss = loss_fm + self.cycle_weight * loss_cycle
        return {"loss": loss, "loss_fm": loss_fm.detach(), "loss_cycle": loss_cycle.detach()}

    def _cycle(self, vae: Any, x0_hat: torch.Tensor, left: torch.Tensor, geo: StereoTargets) -> torch.Tensor:
        # left pixels that the right camera sees (and whose disparity is valid)
        left_seen = occlusion_mask(_nan_where_invalid(geo.disparity_left_px, geo.valid_left), direction=-1) * geo.valid_left
        if self.cycle_space == "pixel":
            right_hat = decode_latents_with_grad(vae, x0_hat)
            return cycle_loss(right_hat, left, geo.disparity_right_px, geo.valid_right, left_seen)
        with torch.no_grad():
            left_latent = encode_video(vae, left)
        right_ok = geo.valid_right * _edge_free(geo.disparity_right_px, LATENT_EDGE_TOLERANCE_PX)
        disparity_right_latent = disparity_to_latent_grid(geo.disparity_right_px * geo.valid_right)
        return latent_cycle_loss(
            x0_hat, left_latent, disparity_right_latent, mask_to_latent_grid(right_ok), mask_to_latent_grid(left_seen)
        )


def prepare_lora(pipe: Any, options: LoRAOptions | dict | None = None, **fields: Any) -> None:
    """Set up a loaded Wan pipeline for LoRA inference and/or training (in place).

    ``options`` (:class:`~stereo_lit.diffusion.options.LoRAOptions`, a dict of its fields, or its
    fields as keywords):

    - ``path``: the saved adapters, loaded with their weights through diffusers' multi-adapter
      API (:func:`~stereo_lit.diffusion.lora.load_adapters`); one unnamed adapter loads as
      ``"default"``, several as ``adapter0``, ``adapter1``... unless named;
    - ``rank > 0`` (training): the adapter named ``"default"`` (a single unnamed path) resumes
      training; when no adapter is ``"default"`` (several unnamed, or named ones, e.g. a
      step-distillation LoRA), they stay frozen beneath a fresh trainable ``"default"`` adapter
      of rank ``rank`` (:func:`~stereo_lit.diffusion.lora.add_lora`), active with weight 1;
      ``save_lora`` writes only ``"default"``;
    - always: the VAE and the text encoder are frozen (``requires_grad=False``); without an
      adapter to train, so is the transformer.

    A transformer that already holds adapters (shared components) is left as it is.

    Raises:
        FileNotFoundError: a ``path`` that does not exist (named).
        ValueError: a duplicate adapter name, an adapter that does not fit the transformer, or a
            resumed ``"default"`` adapter with a weight other than 1.
    """
    if fields:
        options = {**(dataclasses.asdict(options) if isinstance(options, LoRAOptions) else dict(options or {})), **fields}
    options = as_options(options, LoRAOptions)
    for name in ("vae", "text_encoder"):
        part = getattr(pipe, name, None)
        if part is not None:
            part.requires_grad_(False)
    transformer = pipe.transformer
    if getattr(transformer, "peft_config", None):
        return
    adapters = options.adapters
    names = adapter_names(adapters)
    train = options.rank > 0
    resume = train and ADAPTER_NAME in names
    if resume and adapters[names.index(ADAPTER_NAME)].weight != 1:
        raise ValueError(
            f"lora.path: the adapter {ADAPTER_NAME!r} resumed for training (lora.rank > 0) must have weight 1, "
            f"got {adapters[names.index(ADAPTER_NAME)].weight}; its saved file always loads at weight 1"
        )
    if adapters:
        load_adapters(pipe, adapters, trainable=ADAPTER_NAME if resume else None)
    if train and not resume:
        kwargs = {"target_modules": tuple(options.target_modules)} if options.target_modules else {}
        add_lora(transformer, rank=options.rank, alpha=options.rank if options.alpha is None else options.alpha,
                 dropout=options.dropout, gradient_checkpointing=options.gradient_checkpointing, **kwargs)
        if adapters:  # add_adapter activated "default" alone: keep the loaded ones active beneath it
            pipe.set_adapters([*names, ADAPTER_NAME], adapter_weights=[float(a.weight) for a in adapters] + [1.0])
            transformer.requires_grad_(False)
            mark_lora_trainable(transformer, ADAPTER_NAME)
    elif not train:
        transformer.requires_grad_(False)
    if resume and options.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
