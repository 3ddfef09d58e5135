"""The denoising loop: a diffusers Wan transformer + scheduler, with stereo guidance hooks.

No Lightning, no VAE, no geometry here: :func:`denoise` takes initial latents and
prompt embeddings and returns clean latents. It is ``WanPipeline.__call__``'s loop
step for step (same transformer call, same classifier-free guidance, the scheduler's
own ``step``), so with no guidance it reproduces diffusers' Wan sampling exactly; the
stereo strategies of :mod:`stereo_lit.diffusion.guidance` hook in between.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
from typing import Any

import torch

from stereo_lit.io.console import stage_progress

from stereo_lit.diffusion.flow import euler_step
from stereo_lit.diffusion.guidance import Guidance

BATCH_MODES = ("separate", "shared")


def num_guided_steps(num_inference_steps: int, guidance_stop: float) -> int:
    """Steps ``0 .. n-1`` that are guided: the first ``ceil(guidance_stop * steps)``."""
    if not 0.0 <= guidance_stop <= 1.0:
        raise ValueError(f"guidance_stop must be a fraction of the steps in [0, 1], got {guidance_stop}")
    return math.ceil(guidance_stop * num_inference_steps - 1e-9)


def _expand(embeds: torch.Tensor, batch: int) -> torch.Tensor:
    if embeds.shape[0] == batch:
        return embeds
    if embeds.shape[0] != 1:
        raise ValueError(f"prompt embeddings have batch {embeds.shape[0]}, latents have {batch}")
    return embeds.expand(batch, -1, -1)


def _double_batched(value: Any, batch: int) -> Any:
    """``value`` for a shared cond+uncond batch: a per-sample tensor (2+ dims, first dim ``batch``)
    twice along dim 0, anything else (a per-layer scale, a flag) unchanged."""
    if isinstance(value, torch.Tensor) and value.ndim >= 2 and value.shape[0] == batch:
        return torch.cat([value, value])
    return value


def predict_velocity(
    transformer: Any,
    latents: torch.Tensor,
    timestep: torch.Tensor,
    prompt_embeds: torch.Tensor,
    negative_prompt_embeds: torch.Tensor | None = None,
    *,
    guidance_scale: float = 1.0,
    batch_mode: str = "separate",
    attention_kwargs: dict | None = None,
    transformer_kwargs: dict | None = None,
) -> torch.Tensor:
    """The transformer's velocity with classifier-free guidance, as ``WanPipeline`` computes it.

    Args:
        latents: ``[B, 16, f, h, w]``.
        timestep: 0-d timestep (the scheduler's ``timesteps[i]``, i.e. ``sigma * 1000``).
        prompt_embeds, negative_prompt_embeds: ``[1 or B, L, D]``.
        guidance_scale: CFG scale; the unconditional pass runs only when > 1.
        batch_mode: ``"separate"``: one transformer call per prompt (as WanPipeline);
            ``"shared"``: conditional and unconditional inputs in one batch (same
            timestep), one call.
        transformer_kwargs: extra keyword arguments of every transformer call, e.g. VACE's
            ``control_hidden_states [B, 96, f, h, w]`` and ``control_hidden_states_scale
            [num_vace_layers]`` (as ``WanVACEPipeline`` passes them). With ``batch_mode="shared"``
            the batched ones (tensors of 2+ dims whose first dim is ``B``) are concatenated like
            the latents (cond then uncond); the rest go as they are.

    Returns:
        velocity, same shape and dtype as ``latents``.
    """
    if batch_mode not in BATCH_MODES:
        raise ValueError(f"batch_mode must be one of {BATCH_MODES}, got {batch_mode!r}")
    dtype = transformer.dtype
    batch = latents.shape[0]
    model_input = latents.to(dtype)
    cond = _expand(prompt_embeds.to(dtype), batch)
    use_cfg = guidance_scale > 1.0
    if use_cfg and negative_prompt_embeds is None:
        raise ValueError("guidance_scale > 1 needs negative_prompt_embeds")

    # diffusers' cache hooks (transformer.enable_cache) keep one state per named call, as in WanPipeline
    hooked = getattr(transformer, "_diffusers_hook", None) is not None and hasattr(transformer, "cache_context")

    extra = dict(transformer_kwargs or {})

    def call(x: torch.Tensor, embeds: torch.Tensor, name: str, kwargs: dict) -> torch.Tensor:
        with transformer.cache_context(name) if hooked else contextlib.nullcontext():
            return transformer(
                hidden_states=x,
                timestep=timestep.expand(x.shape[0]),
                encoder_hidden_states=embeds,
                attention_kwargs=attention_kwargs,
                return_dict=False,
                **kwargs,
            )[0]

    if not use_cfg:
        return call(model_input, cond, "cond", extra).to(latents.dtype)
    uncond = _expand(negative_prompt_embeds.to(dtype), batch)
    if batch_mode == "shared":
        doubled = {k: _double_batched(v, batch) for k, v in extra.items()}
        v_cond, v_uncond = call(
            torch.cat([model_input, model_input]), torch.cat([cond, uncond]), "cond_uncond", doubled
        ).chunk(2)
    else:
        v_cond = call(model_input, cond, "cond", extra)
        v_uncond = call(model_input, uncond, "uncond", extra)
    velocity = v_uncond + guidance_scale * (v_cond - v_uncond)
    return velocity.to(latents.dtype)


def set_schedule(scheduler: Any, num_inference_steps: int, device: Any, sigmas: list[float] | None = None) -> None:
    """``scheduler.set_timesteps`` with the scheduler's own spacing, or with explicit unshifted ``sigmas``
    (one per step, e.g. ``[1.0, 0.75, 0.5, 0.25]``; the scheduler applies its shift)."""
    if sigmas is None:
        scheduler.set_timesteps(num_inference_steps, device=device)
        return
    if len(sigmas) != num_inference_steps:
        raise ValueError(f"sigmas must have num_inference_steps={num_inference_steps} values, got {len(sigmas)}")
    if "sigmas" not in inspect.signature(scheduler.set_timesteps).parameters:
        raise ValueError(f"{type(scheduler).__name__} takes no explicit sigmas; use scheduler euler or lcm")
    scheduler.set_timesteps(num_inference_steps, device=device, sigmas=list(sigmas))


@torch.no_grad()
def denoise(
    transformer: Any,
    scheduler: Any,
    latents: torch.Tensor,
    prompt_embeds: torch.Tensor,
    negative_prompt_embeds: torch.Tensor | None = None,
    *,
    num_inference_steps: int = 50,
    guidance_scale: float = 5.0,
    guidance: Guidance | None = None,
    guidance_stop: float = 1.0,
    constraint: Guidance | None = None,
    batch_mode: str = "separate",
    attention_kwargs: dict | None = None,
    transformer_kwargs: dict | None = None,
    progress: str | None = None,
    sigmas: list[float] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample clean latents from ``latents`` (pure noise at the first sigma, float32).

    Args:
        transformer: ``WanTransformer3DModel``.
        scheduler: a *fresh* flow-matching scheduler (:func:`~stereo_lit.diffusion.loading.make_scheduler`).
        latents: initial latents ``[B, 16, f, h, w]``.
        guidance: stereo strategy, applied on the first ``guidance_stop`` fraction of
            the steps; None = plain Wan sampling.
        constraint: applied on *every* step (content that must come out as given, e.g.
            the overlap carried from the previous window).
        transformer_kwargs: merged into every transformer call (:func:`predict_velocity`), e.g.
            VACE's ``control_hidden_states`` and ``control_hidden_states_scale``.
        progress: label of a progress bar over the steps; None = no bar.
        sigmas: explicit unshifted sigmas, one per step (:func:`set_schedule`); None = the scheduler's spacing.
        generator: the per-step noise of a stochastic scheduler (``lcm``); deterministic ones ignore it.

    Returns:
        clean latents ``[B, 16, f, h, w]``, float32.
    """
    guidance = guidance or Guidance()
    constraint = constraint or Guidance()
    device = latents.device

    # 1. Timesteps and sigmas (the scheduler's own schedule, as WanPipeline sets it).
    set_schedule(scheduler, num_inference_steps, device, sigmas)
    scheduler.set_begin_index(0)
    # stochastic schedulers (lcm) draw their per-step noise from ``generator``: reproducible for a seed
    takes_generator = "generator" in inspect.signature(scheduler.step).parameters
    step_kwargs = {"generator": generator} if generator is not None and takes_generator else {}
    timesteps = scheduler.timesteps
    sigmas = [float(s) for s in scheduler.sigmas]  # len = steps + 1, last is 0
    guided = num_guided_steps(len(timesteps), guidance_stop)

    # 2. Initial latents: strategies that overwrite x_t start from their known content.
    latents = latents.float()
    if guided > 0:
        latents = guidance.prepare(latents, sigmas[0])
    latents = constraint.prepare(latents, sigmas[0])

    # 3. Denoising loop.
    steps = stage_progress(timesteps, desc=progress or "", unit="step", leave=False, disable=progress is None,
                           plain_level=logging.DEBUG)  # a log gets no line per window at INFO
    for i, t in enumerate(steps):
        guiding = i < guided

        # 3a. Velocity from the transformer, with classifier-free guidance.
        velocity = predict_velocity(
            transformer, latents, t, prompt_embeds, negative_prompt_embeds,
            guidance_scale=guidance_scale, batch_mode=batch_mode, attention_kwargs=attention_kwargs,
            transformer_kwargs=transformer_kwargs,
        )

        # 3b. Edit the prediction (x0_blend); the scheduler stores what it is given.
        if guiding:
            velocity = guidance.edit_velocity(latents, velocity, sigmas[i])
        velocity = constraint.edit_velocity(latents, velocity, sigmas[i])

        # 3c. The scheduler's step (UniPC / DPM++ / Euler), unchanged.
        latents = scheduler.step(velocity, t, latents, return_dict=False, **step_kwargs)[0]

        # 3d. Edit the sample at the next sigma (repaint, latent_shift), i.e. before the next
        # model call: a multistep corrector may rewrite the edited cells from its history, but
        # the model always sees the edited sample and the last edit (sigma 0) is exact.
        if guiding:
            latents = guidance.edit_sample(latents, sigmas[i + 1], i)
        latents = constraint.edit_sample(latents, sigmas[i + 1], i)

    return latents


@torch.no_grad()
def invert(
    transformer: Any,
    clean_latents: torch.Tensor,
    sigmas: torch.Tensor,
    prompt_embeds: torch.Tensor,
    negative_prompt_embeds: torch.Tensor | None = None,
    *,
    guidance_scale: float = 1.0,
    num_train_timesteps: int = 1000,
    batch_mode: str = "separate",
    transformer_kwargs: dict | None = None,
) -> torch.Tensor:
    """Flow-matching inversion: integrate the ODE from ``sigma = 0`` up to the largest sigma.

    Euler steps along the (ascending) ``sigmas`` with the sampler's own velocity
    (classifier-free guidance at ``guidance_scale``, as :func:`denoise` computes it), so
    that sampling back from the result with the same prompt, scale and schedule retraces
    the path. Returns the noise-like latent that the sampler maps back to about
    ``clean_latents`` (each step evaluates the velocity at the lower sigma, sampling at
    the higher: the round trip is exact only as the steps shrink).

    Args:
        clean_latents: ``[B, 16, f, h, w]`` normalised latents.
        sigmas: ascending, starting at 0 (:func:`~stereo_lit.diffusion.flow.inversion_sigmas`).
        negative_prompt_embeds: needed when ``guidance_scale > 1``.
        transformer_kwargs: merged into every transformer call (:func:`predict_velocity`).
    """
    x = clean_latents.float()
    for sigma, sigma_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        timestep = torch.tensor(sigma * num_train_timesteps, device=x.device)
        velocity = predict_velocity(
            transformer, x, timestep, prompt_embeds, negative_prompt_embeds,
            guidance_scale=guidance_scale, batch_mode=batch_mode, transformer_kwargs=transformer_kwargs,
        )
        x = euler_step(x, velocity, sigma, sigma_next)
    return x
