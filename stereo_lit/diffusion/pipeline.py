"""``WanStereoPipeline``: one stereo window as a diffusers ``DiffusionPipeline`` (Wan2.1 T2V or VACE).

    pipe = WanStereoPipeline.from_pretrained("checkpoints/Wan2.1-T2V-1.3B-Diffusers", torch_dtype=torch.bfloat16)
    pipe.enable_model_cpu_offload()
    out = pipe(left, disparity_px, prompt="a street at night", generator=torch.Generator().manual_seed(0))
    out.right, out.known_mask, out.latents, out.nfe

Loaded from an unchanged Wan2.1 Diffusers folder (its ``model_index.json`` names ``WanPipeline``
or ``WanVACEPipeline``; the components are the same, VACE's transformer is a
``WanVACETransformer3DModel``). With a VACE transformer the warped right view (holes grey) and the
disocclusion mask condition every transformer call, as ``WanVACEPipeline`` prepares its
``video`` / ``mask`` (:mod:`~stereo_lit.diffusion.vace`); the stereo strategies work on top.
``__call__`` follows ``WanPipeline.__call__`` (numbered steps, ``callback_on_step_end``,
``self.progress_bar``, model offload hooks) and reuses stereo-lit's
pieces for the math: the warp (:class:`~stereo_lit.generators.geometric.WarpFill`), the codec
(:mod:`~stereo_lit.diffusion.codec`), the strategies (:mod:`~stereo_lit.diffusion.guidance`)
and the denoising loop (:func:`~stereo_lit.diffusion.sampler.denoise`). Window planning,
carried overlap between windows and seams stay in
:class:`~stereo_lit.diffusion.generator.WanStereoGenerator`, around this pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from diffusers import AutoencoderKLWan, DiffusionPipeline, WanPipeline, WanTransformer3DModel, WanVACETransformer3DModel
from diffusers.loaders import WanLoraLoaderMixin
from diffusers.schedulers import FlowMatchEulerDiscreteScheduler
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import AutoTokenizer, UMT5EncoderModel

from stereo_lit.diffusion.codec import decode_latents, encode_video
from stereo_lit.diffusion.flow import inversion_sigmas
from stereo_lit.diffusion.guidance import STRATEGIES, Guidance, LatentShift, Repaint, X0Blend
from stereo_lit.diffusion.nfe import count_nfe
from stereo_lit.diffusion.sampler import BATCH_MODES, denoise, invert, set_schedule
from stereo_lit.diffusion.vace import backbone_of, conditioning_scales, grey_holes, vace_conditioning
from stereo_lit.stereo.geometry import disparity_to_latent_grid, mask_to_latent_grid, shift_noise
from stereo_lit.stereo.windows import is_wan_length

NOISE_MODES = ("shared", "inverted")
OUTPUT_TYPES = ("pt", "np", "latent")


@dataclass
class WanStereoPipelineOutput(BaseOutput):
    """What :class:`WanStereoPipeline` returns for one window.

    Attributes:
        right: right view ``[B, 3, T, H, W]`` in [0, 1] (``output_type="pt"``), ``[B, T, H, W, 3]``
            numpy (``"np"``) or None (``"latent"``: not decoded).
        known_mask: ``[B, 1, T, H, W]``, 1 where the pixel warp of the left view covers the right view.
        latents: clean normalised latents ``[B, 16, f, h, w]``, float32.
        nfe: transformer evaluations made (inversion included; CFG: 2 per step with ``batch_mode="separate"``).
        control_latents: VACE only: the control latents ``[B, 96, f, h, w]`` every transformer call saw
            (:func:`~stereo_lit.diffusion.vace.vace_conditioning`); None with a T2V transformer.
        known_latent: the encoded right-view estimate (carried frames first, then the warp); None when
            nothing holds it (strategy ``none`` or ``latent_shift`` without carried frames: not encoded).
        latent_mask: ``[B, 1, f, h, w]`` latent cells the strategy holds (1 = known).
        fixed_latent_mask: ``[B, 1, f, h, w]`` latent cells of the carried frames (``fixed_right``).
    """

    right: Any
    known_mask: torch.Tensor
    latents: torch.Tensor
    nfe: int
    known_latent: torch.Tensor | None = None
    latent_mask: torch.Tensor | None = None
    fixed_latent_mask: torch.Tensor | None = None
    control_latents: torch.Tensor | None = None


#: ``cache: {kind: ...}`` -> the diffusers cache config class (``transformer.enable_cache``).
CACHE_KINDS = {"first_block": "FirstBlockCacheConfig", "taylorseer": "TaylorSeerCacheConfig", "mag": "MagCacheConfig"}


def cache_config(cache: dict[str, Any]) -> Any:
    """``{"kind": "first_block"|"taylorseer"|"mag", **options}`` -> a diffusers cache config.

    The options are the config's own fields (``threshold`` for ``first_block`` / ``mag``,
    ``cache_interval`` for ``taylorseer``, ``mag_ratios`` for ``mag``...).
    """
    import diffusers

    options = dict(cache)
    kind = options.pop("kind", None)
    if kind not in CACHE_KINDS:
        raise ValueError(f"cache.kind must be one of {tuple(CACHE_KINDS)}, got {kind!r}")
    try:
        return getattr(diffusers, CACHE_KINDS[kind])(**options)
    except TypeError as exc:
        raise ValueError(f"cache options {options} do not fit diffusers.{CACHE_KINDS[kind]}: {exc}") from exc


def apply_cache(transformer: Any, cache: dict[str, Any] | None) -> None:
    """Enable a diffusers cache on ``transformer`` (``cache`` as in :func:`cache_config`); None = no cache.
    The sampler names each call (``cond`` / ``uncond``) so the cache keeps one state per prompt."""
    if cache:
        transformer.enable_cache(cache_config(cache))


def apply_attention_backend(transformer: Any, backend: str | None) -> None:
    """``transformer.set_attention_backend(backend)`` (e.g. ``"native"``, ``"flash"``, ``"sage"``); None = diffusers' default."""
    if backend:
        transformer.set_attention_backend(backend)


class _StepHooks(Guidance):
    """Wraps the per-step constraint of :func:`denoise` to run the pipeline's per-step work after it:
    ``callback_on_step_end`` (which may return new ``latents``) and the progress bar."""

    def __init__(self, inner: Guidance, on_step: Callable[[int, torch.Tensor], torch.Tensor]) -> None:
        self.inner = inner
        self.on_step = on_step

    def prepare(self, latents: torch.Tensor, sigma: float) -> torch.Tensor:
        return self.inner.prepare(latents, sigma)

    def edit_velocity(self, x_t: torch.Tensor, velocity: torch.Tensor, sigma: float) -> torch.Tensor:
        return self.inner.edit_velocity(x_t, velocity, sigma)

    def edit_sample(self, x: torch.Tensor, sigma: float, step: int) -> torch.Tensor:
        return self.on_step(step, self.inner.edit_sample(x, sigma, step))


class WanStereoPipeline(DiffusionPipeline, WanLoraLoaderMixin):
    r"""Left video + disparity -> right video for one window, with Wan2.1 filling what the warp cannot see.

    Args:
        tokenizer, text_encoder, vae, scheduler, transformer: as in ``WanPipeline`` (``transformer``:
            ``WanTransformer3DModel``, or ``WanVACETransformer3DModel`` for the VACE fill, as in
            ``WanVACEPipeline``). The scheduler is used as given (``pipe.scheduler = ...`` swaps it).
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        tokenizer: AutoTokenizer,
        text_encoder: UMT5EncoderModel,
        vae: AutoencoderKLWan,
        scheduler: FlowMatchEulerDiscreteScheduler,
        transformer: WanTransformer3DModel | WanVACETransformer3DModel,
    ) -> None:
        super().__init__()
        self.register_modules(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer, scheduler=scheduler
        )
        self.vae_scale_factor_temporal = self.vae.config.scale_factor_temporal if getattr(self, "vae", None) else 4
        self.vae_scale_factor_spatial = self.vae.config.scale_factor_spatial if getattr(self, "vae", None) else 8

    # Prompt encoding is WanPipeline's own (same tokenizer, text encoder, cleaning and padding).
    _get_t5_prompt_embeds = WanPipeline._get_t5_prompt_embeds
    encode_prompt = WanPipeline.encode_prompt

    @property
    def backbone(self) -> str:
        """``"t2v"`` or ``"vace"``: which Wan2.1 transformer this pipeline holds."""
        return backbone_of(self.transformer)

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1.0

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def current_timestep(self) -> Any:
        return self._current_timestep

    def check_inputs(
        self,
        video: torch.Tensor,
        disparity_px: torch.Tensor,
        prompt: Any,
        prompt_embeds: torch.Tensor | None,
        *,
        strategy: str,
        noise: str,
        batch_mode: str,
        output_type: str,
        num_inference_steps: int,
        guidance_scale: float,
        negative_prompt_embeds: torch.Tensor | None,
        fixed_right: torch.Tensor | None,
        callback_on_step_end_tensor_inputs: list[str] | None,
        conditioning_scale: Any = 1.0,
    ) -> None:
        """Raise ``ValueError`` naming the argument and what was expected."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"WanStereoPipeline: video must be [B, 3, T, H, W] in [0, 1], got {tuple(video.shape)}")
        b, _, t, h, w = video.shape
        if disparity_px.shape != (b, 1, t, h, w):
            raise ValueError(f"WanStereoPipeline: disparity_px must be [B, 1, T, H, W] = {(b, 1, t, h, w)}, got {tuple(disparity_px.shape)}")
        if not is_wan_length(t) or h % 16 or w % 16:
            raise ValueError(f"WanStereoPipeline: a window must have 4k+1 frames and H, W multiples of 16, got T={t}, {h}x{w}")
        for value, allowed, arg in (
            (strategy, STRATEGIES, "strategy"), (noise, NOISE_MODES, "noise"),
            (batch_mode, BATCH_MODES, "batch_mode"), (output_type, OUTPUT_TYPES, "output_type"),
        ):
            if value not in allowed:
                raise ValueError(f"WanStereoPipeline: {arg} must be one of {allowed}, got {value!r}")
        if num_inference_steps < 1:
            raise ValueError(f"WanStereoPipeline: num_inference_steps must be >= 1, got {num_inference_steps}")
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("WanStereoPipeline: give exactly one of prompt and prompt_embeds")
        if prompt_embeds is not None and guidance_scale > 1.0 and negative_prompt_embeds is None:
            raise ValueError("WanStereoPipeline: guidance_scale > 1 with prompt_embeds needs negative_prompt_embeds")
        if fixed_right is not None and (fixed_right.ndim != 5 or fixed_right.shape[:2] != (b, 3)
                                        or fixed_right.shape[3:] != (h, w) or fixed_right.shape[2] > t):
            raise ValueError(f"WanStereoPipeline: fixed_right must be [B, 3, n <= T, H, W], got {tuple(fixed_right.shape)}")
        if self.backbone == "vace":
            conditioning_scales(conditioning_scale, self.transformer.config.vace_layers)  # raises on a bad length
        elif not (isinstance(conditioning_scale, (int, float)) and conditioning_scale == 1.0):
            raise ValueError(
                f"WanStereoPipeline: conditioning_scale scales VACE's control, but this transformer is "
                f"{type(self.transformer).__name__} (text-to-video); leave it at 1.0 or load a Wan2.1-VACE folder"
            )
        if callback_on_step_end_tensor_inputs is not None and not all(
            k in self._callback_tensor_inputs for k in callback_on_step_end_tensor_inputs
        ):
            raise ValueError(
                f"WanStereoPipeline: callback_on_step_end_tensor_inputs must be in {self._callback_tensor_inputs}, "
                f"got {callback_on_step_end_tensor_inputs}"
            )

    @staticmethod
    def right_estimate(video: torch.Tensor, disparity_px: torch.Tensor, fill_holes: bool | str = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel-space warp of the left view (holes filled when asked: True = ``"background"``, or a
        ``WarpFill`` fill name such as ``"temporal"``) and its coverage."""
        from stereo_lit.generators.geometric import WarpFill, warp_only

        warp = WarpFill(fill=fill_holes if isinstance(fill_holes, str) else "background").generate(video, disparity_px)
        return (warp.right if fill_holes else warp_only(warp)), warp.known_mask

    @torch.no_grad()
    def __call__(
        self,
        video: torch.Tensor,
        disparity_px: torch.Tensor,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        num_inference_steps: int = 50,
        sigmas: list[float] | None = None,
        guidance_scale: float = 5.0,
        strategy: str = "x0_blend",
        guidance_stop: float = 0.8,
        noise: str = "shared",
        batch_mode: str = "separate",
        shift_every: int = 1,
        fill_holes: bool | str = True,
        fixed_right: torch.Tensor | None = None,
        left_noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        conditioning_scale: float | list[float] | torch.Tensor = 1.0,
        output_type: str = "pt",
        return_dict: bool = True,
        attention_kwargs: dict | None = None,
        callback_on_step_end: Callable[..., dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] = ["latents"],  # noqa: B006 (diffusers' signature)
        max_sequence_length: int = 512,
    ) -> WanStereoPipelineOutput | tuple:
        """Sample the right view of one window.

        Args:
            video: left view ``[B, 3, T, H, W]`` in [0, 1], ``T = 4k+1``, ``H, W`` multiples of 16.
            disparity_px: ``[B, 1, T, H, W]`` px >= 0 (left pixel x is seen at ``x - d`` on the right).
            prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, max_sequence_length,
                num_inference_steps, guidance_scale, attention_kwargs: as in ``WanPipeline``.
            strategy: ``"x0_blend"``, ``"repaint"``, ``"latent_shift"`` or ``"none"`` (= WanPipeline; with a
                VACE transformer = WanVACEPipeline on the warped view and its hole mask).
            guidance_stop: fraction of the steps that are guided.
            noise: ``"shared"`` (the generator's noise, what WanPipeline draws) or ``"inverted"``
                (the left latent inverted with the sampler's CFG, shifted to the right view).
            batch_mode: ``"separate"`` transformer calls per prompt or one ``"shared"`` CFG batch.
            shift_every: ``latent_shift`` only: shift every k-th step.
            fill_holes: fill warp holes before VAE encoding: True / ``"background"`` (background rule) or
                ``"temporal"`` (from other frames first, :mod:`stereo_lit.stereo.temporal`); False: black.
            fixed_right: ``[B, 3, n, H, W]`` first right frames already produced (carried overlap):
                held on every step and returned unchanged.
            left_noise: the noise the left view came from (text-to-stereo), latent shape: the right
                starts from it shifted onto the known cells, fresh noise in the holes.
            sigmas: explicit unshifted noise levels, one per step (e.g. ``[1.0, 0.75, 0.5, 0.25]``, lightx2v's
                schedule); schedulers that take them only (``FlowMatchEulerDiscreteScheduler``,
                ``FlowMatchLCMScheduler``); None = the scheduler's own spacing.
            generator: seeds the noise (drawn as ``WanPipeline.prepare_latents`` draws it) and, after it,
                the per-step noise of a stochastic scheduler (``FlowMatchLCMScheduler``); ``repaint``
                noises the known latent from ``generator.initial_seed() + 1``.
            conditioning_scale: VACE only (as ``WanVACEPipeline``): scale of the control, one float or
                one per VACE layer. The control is the right estimate (carried frames, then the warp)
                with grey holes and the mask ``1 - known_mask`` (carried frames: 0, nothing to generate).
            output_type: ``"pt"`` (tensor), ``"np"`` (``[B, T, H, W, 3]``) or ``"latent"`` (no decode).
            callback_on_step_end: ``f(pipe, step, timestep, callback_kwargs) -> dict`` after every step
                (edits included); a returned ``"latents"`` replaces the sample (embeddings returned are
                ignored: the loop holds its own).

        Returns:
            :class:`WanStereoPipelineOutput`, or a tuple ``(right, known_mask, latents, nfe)``.
        """
        # 1. Check inputs.
        self.check_inputs(
            video, disparity_px, prompt, prompt_embeds, strategy=strategy, noise=noise, batch_mode=batch_mode,
            output_type=output_type, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            negative_prompt_embeds=negative_prompt_embeds, fixed_right=fixed_right,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            conditioning_scale=conditioning_scale,
        )
        self._guidance_scale = guidance_scale
        self._current_timestep = None
        if getattr(self.transformer, "_diffusers_hook", None) is not None and hasattr(self.transformer, "_reset_stateful_cache"):
            self.transformer._reset_stateful_cache()  # a cache must not compare with the previous window
        device = self._execution_device
        video = video.to(device, torch.float32)
        disparity_px = disparity_px.to(device, torch.float32)
        num_fixed = 0 if fixed_right is None else fixed_right.shape[2]

        # 2. Encode the prompt (WanPipeline's encoder; embeddings given are used as they are).
        if prompt_embeds is None:
            prompt_embeds, negative_prompt_embeds = self.encode_prompt(
                prompt, negative_prompt, do_classifier_free_guidance=self.do_classifier_free_guidance,
                max_sequence_length=max_sequence_length, device=device,
            )
        prompt_embeds = prompt_embeds.to(device, self.transformer.dtype)
        if negative_prompt_embeds is not None:
            negative_prompt_embeds = negative_prompt_embeds.to(device, self.transformer.dtype)

        # 3. Warp the left view and encode the known right view (carried frames first, then the warp).
        estimate, known_mask = self.right_estimate(video, disparity_px, fill_holes)
        if num_fixed:
            estimate = torch.cat([fixed_right.to(estimate), estimate[:, :, num_fixed:]], dim=2)
        # encoded only when something holds it (a strategy that blends it in, or carried frames): plain
        # sampling and VACE's own fill make no extra VAE pass
        needs_known = strategy in ("x0_blend", "repaint") or num_fixed > 0
        known_latent = encode_video(self.vae, estimate).to(device) if needs_known else None
        fixed_pixels = torch.zeros_like(known_mask)
        fixed_pixels[:, :, :num_fixed] = 1.0
        fixed_mask = mask_to_latent_grid(fixed_pixels)
        warp_mask = mask_to_latent_grid(known_mask) * (1.0 - fixed_mask)
        disparity_latent = disparity_to_latent_grid(disparity_px)
        inverting = noise == "inverted" and left_noise is None
        left_latent = encode_video(self.vae, video).to(device) if strategy == "latent_shift" or inverting else None
        # VACE: the control latents of the right estimate and what is left to generate (WanVACEPipeline's
        # video / mask inputs), passed to every transformer call, inversion included.
        control_latents, transformer_kwargs = None, None
        if self.backbone == "vace":
            regenerate = 1.0 - known_mask
            regenerate[:, :, :num_fixed] = 0.0
            control_latents = vace_conditioning(
                self.vae, grey_holes(estimate, regenerate), regenerate, self.transformer.config.patch_size
            ).to(device, self.transformer.dtype)
            scales = conditioning_scales(conditioning_scale, self.transformer.config.vace_layers)
            transformer_kwargs = {
                "control_hidden_states": control_latents,
                "control_hidden_states_scale": scales.to(device, self.transformer.dtype),
            }

        # 4. Prepare the noise: the generator's (as WanPipeline draws it), inverted or the left's shifted.
        b, _, t, h, w = video.shape
        latent_shape = (b, self.transformer.config.in_channels, (t - 1) // self.vae_scale_factor_temporal + 1,
                        h // self.vae_scale_factor_spatial, w // self.vae_scale_factor_spatial)
        latents = randn_tensor(latent_shape, generator=generator, device=device, dtype=torch.float32)
        with count_nfe(self.transformer) as nfe:
            if inverting:
                set_schedule(self.scheduler, num_inference_steps, device, sigmas)
                left_noise = invert(
                    self.transformer, left_latent, inversion_sigmas(self.scheduler.sigmas), prompt_embeds,
                    negative_prompt_embeds, guidance_scale=guidance_scale,
                    num_train_timesteps=self.scheduler.config.num_train_timesteps, batch_mode=batch_mode,
                    transformer_kwargs=transformer_kwargs,
                )
            if left_noise is None:
                left_noise = latents
            else:
                if tuple(left_noise.shape) != tuple(latents.shape):
                    raise ValueError(f"WanStereoPipeline: left_noise must have the latent shape {tuple(latents.shape)}, got {tuple(left_noise.shape)}")
                left_noise = left_noise.to(device, torch.float32)
                latents, _ = shift_noise(left_noise, disparity_latent, latents)

            guidance: Guidance | None
            if strategy == "x0_blend":
                guidance = X0Blend(known_latent, warp_mask)
            elif strategy == "repaint":
                seed = (generator.initial_seed() if generator is not None else 0) + 1
                guidance = Repaint(known_latent, warp_mask, torch.Generator(device=device).manual_seed(seed))
            elif strategy == "latent_shift":
                guidance = LatentShift(left_latent, left_noise, disparity_latent, every=shift_every)
                guidance.mask = guidance.mask * (1.0 - fixed_mask)
                warp_mask = guidance.mask
            else:
                guidance, warp_mask = None, torch.zeros_like(warp_mask)
            constraint = X0Blend(known_latent, fixed_mask) if num_fixed else Guidance()

            # 5. Denoising loop (stereo_lit.diffusion.sampler.denoise); the callback and the
            # progress bar run after each step's edits.
            self._num_timesteps = num_inference_steps
            with self.progress_bar(total=num_inference_steps) as progress_bar:

                def on_step(i: int, x: torch.Tensor) -> torch.Tensor:
                    t = self.scheduler.timesteps[i]
                    self._current_timestep = t
                    if callback_on_step_end is not None:
                        values = {"latents": x, "prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds}
                        kwargs = {k: values[k] for k in callback_on_step_end_tensor_inputs}
                        x = (callback_on_step_end(self, i, t, kwargs) or {}).pop("latents", x)
                    progress_bar.update()
                    return x

                latents = denoise(
                    self.transformer, self.scheduler, latents, prompt_embeds, negative_prompt_embeds,
                    num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, guidance=guidance,
                    guidance_stop=guidance_stop, constraint=_StepHooks(constraint, on_step),
                    batch_mode=batch_mode, attention_kwargs=attention_kwargs, transformer_kwargs=transformer_kwargs,
                    sigmas=sigmas, generator=generator,
                )
        self._current_timestep = None

        # 6. Decode; carried frames come back exactly as given.
        right: Any = None
        if output_type != "latent":
            right = decode_latents(self.vae, latents).to(device)
            if num_fixed:
                right[:, :, :num_fixed] = fixed_right.to(right)
            if output_type == "np":
                right = np.ascontiguousarray(right.permute(0, 2, 3, 4, 1).cpu().numpy())
        self.maybe_free_model_hooks()

        if not return_dict:
            return right, known_mask, latents, nfe.count
        return WanStereoPipelineOutput(
            right=right, known_mask=known_mask, latents=latents, nfe=nfe.count,
            known_latent=known_latent, latent_mask=warp_mask, fixed_latent_mask=fixed_mask,
            control_latents=control_latents,
        )


__all__ = ["CACHE_KINDS", "WanStereoPipeline", "WanStereoPipelineOutput", "apply_attention_backend", "apply_cache", "cache_config"]
