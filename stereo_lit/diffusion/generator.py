"""Video-to-stereo with Wan2.1: the training-free warped sampler as a :class:`StereoGenerator`.

Per window of ``4k+1`` frames (:meth:`WanStereoGenerator.sample_window`):

1. warp the left view to the right (z-buffered splat) and fill the holes from the
   background, so the VAE sees no black gaps at the edges of known cells;
2. encode that right-view estimate (the carried overlap frames first, when there are
   any) with the VAE, and build the latent masks: a cell is known only where every
   pixel it covers is covered by the warp; carried frames are fully known;
3. initial noise: the seeded Gaussian (``noise="shared"``: what the left view would get,
   and what ``WanPipeline`` draws for that seed) or the flow-matching inversion of the
   left latent shifted to the right view, fresh noise in the holes (``"inverted"``); when
   the left's own noise is known (text-to-stereo, ``left_noise=``) the right starts from
   it shifted, fresh noise in the holes. Noise is shifted to the nearest latent cell
   (:func:`~stereo_lit.geometry.shift_noise`), so it stays unit-variance;
4. denoise (:func:`~stereo_lit.diffusion.sampler.denoise`) with the strategy on the first
   ``guidance_stop`` fraction of steps and the carried overlap enforced on every step;
5. decode; carried frames are returned exactly as given.

Long videos run in overlapping windows (:func:`stereo_lit.windows.plan_windows`); every
frame is produced once, and each window starts from the previous window's produced
frames. The same mechanism chains calls: ``StereoOutput.carry`` holds the last frames.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stereo_lit.diffusion.codec import decode_latents, encode_video
from stereo_lit.diffusion.cycle import cycle_error
from stereo_lit.diffusion.flow import inversion_sigmas
from stereo_lit.diffusion.guidance import STRATEGIES, Guidance, LatentShift, Repaint, X0Blend
from stereo_lit.diffusion.loading import (
    SCHEDULERS,
    SharedComponents,
    WanComponents,
    check_positional_range,
    check_wan_folder,
    load_wan,
    make_scheduler,
    parse_dtype,
    positional_range,
)
from stereo_lit.diffusion.memory_plan import (
    OOM_ERRORS,
    MemoryPlan,
    WanOutOfMemoryError,
    free_gpu_bytes,
    model_size_from_config,
    normalize_offload,
    oom_message,
    plan_memory,
)
from stereo_lit.diffusion.sampler import BATCH_MODES, denoise, invert
from stereo_lit.diffusion.training import LoRATrainingObjective, prepare_lora
from stereo_lit.generators.base import StereoGenerator, StereoOutput
from stereo_lit.generators.geometric import WarpFill
from stereo_lit.geometry import disparity_to_latent_grid, mask_to_latent_grid, shift_noise
from stereo_lit.padding import Padding, pad_video, padding_for, unpad_video
from stereo_lit.windows import is_wan_length, plan_windows

#: Wan's usual negative prompt, in English.
DEFAULT_NEGATIVE_PROMPT = (
    "bright colors, overexposed, static, blurred details, subtitles, worst quality, low quality, "
    "JPEG artifacts, ugly, deformed, disfigured, extra fingers, poorly drawn hands, poorly drawn face, "
    "messy background, walking backwards"
)
NOISE_MODES = ("shared", "inverted")
#: frames per window when ``window`` is unset and the memory plan does not lower it
DEFAULT_WINDOW = 81
log = logging.getLogger(__name__)


@dataclass
class WindowResult:
    """One sampled window on the padded grid (tensors ``[B, C, T, H, W]`` / latents ``[B, C, f, h, w]``)."""

    right: torch.Tensor
    known_mask: torch.Tensor
    latents: torch.Tensor
    known_latent: torch.Tensor
    latent_mask: torch.Tensor
    fixed_latent_mask: torch.Tensor


class WanStereoGenerator(StereoGenerator):
    """Left video + disparity -> right video with Wan2.1 filling what the warp cannot see.

    Args:
        checkpoint: local Wan2.1 Diffusers folder (loaded on first use). Leave it unset in a
            config and set ``model.wan_checkpoint`` once: it fills every Wan method, and the
            methods of one module that agree on folder, dtype, device and LoRA share one load.
        strategy: ``"x0_blend"`` (default), ``"repaint"``,
            ``"latent_shift"`` (the original scheme) or ``"none"`` (plain Wan sampling).
        num_inference_steps, guidance_scale, flow_shift: as in ``WanPipeline``.
        guidance_stop: fraction of the steps that are guided (the rest harmonise seams).
        scheduler: ``"unipc"`` (Wan's default), ``"euler"`` or ``"dpmpp"``.
        noise: right-view initial noise: ``"shared"`` with the left (the seed's noise) or
            ``"inverted"`` (left latent inverted to noise with the sampler's CFG, shifted to
            the right view).
        batch_mode: ``"separate"`` transformer calls per prompt (as WanPipeline) or one
            ``"shared"`` batch for conditional and unconditional inputs.
        shift_every: ``latent_shift`` only: shift every k-th step.
        window, overlap: frames per window (``4k+1``) and frames shared by neighbours.
            ``window`` unset: 81, lowered on a small GPU by the memory plan
            (:mod:`~stereo_lit.diffusion.memory_plan`).
        seed: noise seed of the first window (window i uses ``seed + i``).
        dtype: transformer / text-encoder dtype; the VAE runs in float32.
        device: ``"auto"`` (cuda when available), ``"cuda"``, ``"cpu"``...
        offload: CPU offload: ``"none"``/false, ``"model"``/true (diffusers model offload) or
            ``"sequential"`` (layer by layer: least memory, slowest).
        vae_tiling, vae_slicing: VAE memory savers.
            ``offload``, ``vae_tiling`` and ``window`` left unset (None) are chosen on CUDA from
            the free GPU memory at the first video (:attr:`memory_plan`, logged); set values win.
        prompt: default prompt when ``generate`` gets none.
        negative_prompt: for classifier-free guidance.
        fill_holes: fill warp holes from the background before VAE encoding.
        progress: show a progress bar over the denoising steps of each window.
        max_sequence_length: text tokens (Wan: 512).
        lora_rank: LoRA rank of the transformer's attention projections; 0 = no training.
        lora_alpha: LoRA scale numerator (default: ``lora_rank``, i.e. scale 1).
        lora_dropout, lora_target_modules: peft options (default ``to_q, to_k, to_v, to_out.0``).
        lora_path: a saved adapter folder (``pytorch_lora_weights.safetensors``) loaded into
            the transformer with ``WanPipeline.load_lora_weights``: inference with a fine-tuned
            model, or (with ``lora_rank > 0``) resumed training.
        cycle_weight, cycle_space, train_sigma_sampling: the training objective
            (:class:`~stereo_lit.diffusion.training.LoRATrainingObjective`).
        gradient_checkpointing: recompute transformer blocks in the backward pass (training).
        cache: a diffusers cache on the transformer, e.g. ``{kind: first_block, threshold: 0.05}``
            (``first_block`` | ``taylorseer`` | ``mag``; the other keys are the diffusers config's
            fields: :func:`~stereo_lit.diffusion.pipeline.cache_config`); None = no cache.
        attention_backend: diffusers attention backend (``set_attention_backend``, e.g. ``"flash"``);
            None = diffusers' default. Both are applied when this generator loads the models.
    """

    name = "wan_stereo"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        strategy: str = "x0_blend",
        num_inference_steps: int = 50,
        guidance_scale: float = 5.0,
        guidance_stop: float = 0.8,
        flow_shift: float = 3.0,
        scheduler: str = "unipc",
        noise: str = "shared",
        batch_mode: str = "separate",
        shift_every: int = 1,
        window: int | None = None,
        overlap: int = 9,
        seed: int = 0,
        dtype: str = "bfloat16",
        device: str = "auto",
        offload: bool | str | None = None,
        vae_tiling: bool | None = None,
        vae_slicing: bool = False,
        prompt: str = "",
        negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
        fill_holes: bool = True,
        progress: bool = True,
        max_sequence_length: int = 512,
        lora_rank: int = 0,
        lora_alpha: float | None = None,
        lora_dropout: float = 0.0,
        lora_target_modules: list[str] | None = None,
        lora_path: str | None = None,
        cycle_weight: float = 0.1,
        cycle_space: str = "latent",
        train_sigma_sampling: str = "logit_normal",
        gradient_checkpointing: bool = False,
        cache: dict[str, Any] | None = None,
        attention_backend: str | None = None,
    ) -> None:
        for value, allowed, arg in (
            (strategy, STRATEGIES, "strategy"),
            (scheduler, SCHEDULERS, "scheduler"),
            (noise, NOISE_MODES, "noise"),
            (batch_mode, BATCH_MODES, "batch_mode"),
        ):
            if value not in allowed:
                raise ValueError(f"{arg} must be one of {allowed}, got {value!r}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if not 0.0 <= guidance_stop <= 1.0:
            raise ValueError(f"guidance_stop must be in [0, 1], got {guidance_stop}")
        if shift_every < 1:
            raise ValueError(f"shift_every must be >= 1, got {shift_every}")
        plan_windows(window or DEFAULT_WINDOW, window or DEFAULT_WINDOW, overlap)  # validates window / overlap
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.strategy = strategy
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.guidance_stop = guidance_stop
        self.flow_shift = flow_shift
        self.scheduler = scheduler
        self.noise = noise
        self.batch_mode = batch_mode
        self.shift_every = shift_every
        # user settings (None = unset: planned); self.window is also the carried frames' count
        self._user_memory = dict(window=window, offload=normalize_offload(offload), vae_tiling=vae_tiling)
        self.window = DEFAULT_WINDOW if window is None else window
        self.sampling_window = self.window  # frames per sampled window (the memory plan may lower it)
        self.memory_plan: MemoryPlan | None = None
        self.overlap = overlap
        self.seed = seed
        self.dtype = dtype
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.offload = normalize_offload(offload) or "none"
        self.vae_tiling = bool(vae_tiling)
        self.vae_slicing = vae_slicing
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.fill_holes = fill_holes
        self.progress = progress
        self.max_sequence_length = max_sequence_length
        if lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0 (0 = no training), got {lora_rank}")
        self.lora = dict(rank=lora_rank, alpha=lora_alpha, dropout=lora_dropout, target_modules=lora_target_modules,
                         path=lora_path, gradient_checkpointing=gradient_checkpointing)
        self.objective = LoRATrainingObjective(
            cycle_weight=cycle_weight, cycle_space=cycle_space, sigma_sampling=train_sigma_sampling, flow_shift=flow_shift
        )
        self.name = f"wan_{strategy}"
        self._components: WanComponents | None = None
        self._shared: SharedComponents | None = None
        self._prompt_cache: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self.cache = dict(cache) if cache else None
        self.attention_backend = attention_backend

    # ------------------------------------------------------------------ models
    @property
    def components(self) -> WanComponents:
        """The loaded Wan parts (loaded on first access)."""
        if self._components is None:
            if self._shared is not None:
                self._components = self._shared.get(self.components_key(), self._load)
            else:
                self._components = self._load()
        return self._components

    def _load(self) -> WanComponents:
        components = load_wan(
            self.checkpoint, dtype=self.dtype, device=self.device, offload=self.offload,
            vae_tiling=self.vae_tiling, vae_slicing=self.vae_slicing,
        )
        prepare_lora(components.pipe, **self.lora)
        from stereo_lit.diffusion.pipeline import apply_attention_backend, apply_cache

        apply_cache(components.transformer, self.cache)
        apply_attention_backend(components.transformer, self.attention_backend)
        return components

    def components_key(self) -> tuple:
        """What two generators must agree on to share loaded components (see :class:`SharedComponents`)."""
        folder = str(check_wan_folder(self.checkpoint).resolve())
        lora = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in self.lora.items()))
        return (folder, str(parse_dtype(self.dtype)), str(torch.device(self.device)), self.offload,
                self.vae_tiling, self.vae_slicing, lora, json.dumps(self.cache, sort_keys=True), self.attention_backend)

    def share_loads(self, shared: SharedComponents) -> "WanStereoGenerator":
        """Load through ``shared``: generators with equal :meth:`components_key` get one set of models."""
        self._shared = shared
        return self

    def plan_memory(self, frames: int, height: int, width: int) -> MemoryPlan:
        """Settle the unset ``offload`` / ``vae_tiling`` / ``window`` from the free GPU memory
        (:func:`~stereo_lit.diffusion.memory_plan.plan_memory`; a no-op off CUDA), once, before
        the models load, and log the choice. Generators sharing loads reuse the first plan."""
        if self.memory_plan is not None:
            return self.memory_plan
        user = dict(self._user_memory)
        if self._components is not None:  # already loaded: its offload is fixed
            user["offload"] = self.offload
        free = free_gpu_bytes(self.device)
        key = None
        if self._shared is not None and self.checkpoint is not None:
            key = (str(self.checkpoint), self.dtype, self.device, tuple(sorted(user.items())))
        plan = self._shared.memory_plans.get(key) if key is not None else None
        if plan is None:
            size = self._model_size() if free is not None else "1.3B"
            plan = plan_memory(free, frames, height, width, model_size=size, dtype_bytes=parse_dtype(self.dtype).itemsize,
                               overlap=self.overlap, default_window=self.window, **user)
            if key is not None:
                self._shared.memory_plans[key] = plan
        self.offload, self.sampling_window = plan.offload, plan.window
        if plan.vae_tiling and not self.vae_tiling and self._components is not None:
            self._components.vae.enable_tiling()
        self.vae_tiling = plan.vae_tiling
        self.memory_plan = plan
        log.log(logging.INFO if free is not None else logging.DEBUG, "Wan memory plan: %s", plan.describe())
        return plan

    def _model_size(self) -> str:
        """``"1.3B"`` or ``"14B"``, from the transformer's config (loaded, or the folder's config.json)."""
        if self._components is not None:
            return model_size_from_config(dict(self._components.transformer.config))
        config = check_wan_folder(self.checkpoint) / "transformer" / "config.json"
        return model_size_from_config(json.loads(config.read_text()))

    def fill_checkpoint(self, checkpoint: str | Path) -> None:
        """Use ``checkpoint`` when none was given (the module's ``wan_checkpoint``)."""
        if self.checkpoint is None:
            self.checkpoint = Path(checkpoint)

    def check_frame_size(self, height: int, width: int, num_frames: int | None = None, option: str | None = None) -> None:
        """Raise before any work when ``height x width`` px (or ``num_frames``) exceeds the
        transformer's positional range (:func:`~stereo_lit.diffusion.loading.check_positional_range`)."""
        if self._components is not None:  # models given or loaded: their own configs
            limits = positional_range(dict(self._components.transformer.config), dict(self._components.vae.config))
        else:
            limits = positional_range(self.checkpoint if self.checkpoint is not None else check_wan_folder(None))
        check_positional_range(limits, height, width, num_frames, option=option)

    def check_paths(self) -> None:
        """Fail at setup, before any depth or sampling, when the checkpoint folder (or LoRA) is missing."""
        if self._components is None:
            check_wan_folder(self.checkpoint)
        lora = self.lora.get("path")
        if lora and not Path(str(lora)).exists():
            raise FileNotFoundError(f"generator lora_path {lora} does not exist (a diffusers LoRA folder or file)")

    def use_components(self, components: WanComponents) -> "WanStereoGenerator":
        """Share models already loaded (e.g. by another generator: compare strategies on one GPU)."""
        self._components = components
        self._prompt_cache.clear()
        prepare_lora(components.pipe, **self.lora)  # no-op when the transformer already holds an adapter
        return self

    def to(self, device: torch.device | str) -> "WanStereoGenerator":
        self.device = str(device)
        if self._components is not None and self.offload == "none":
            self._components.pipe.to(device)
            self._prompt_cache.clear()
        return self

    @property
    def execution_device(self) -> torch.device:
        return self.components.execution_device

    def new_scheduler(self) -> Any:
        return make_scheduler(self.scheduler, self.flow_shift, self.components.scheduler_config)

    @torch.no_grad()
    def prompt_embeds(self, prompt: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(prompt_embeds, negative_prompt_embeds)`` ``[1, L, D]``, cached per prompt (the text encoder is large)."""
        text = self.prompt if prompt is None else prompt
        if text not in self._prompt_cache:
            use_cfg = self.guidance_scale > 1.0
            cond, uncond = self.components.pipe.encode_prompt(
                text, self.negative_prompt if use_cfg else None, do_classifier_free_guidance=use_cfg,
                max_sequence_length=self.max_sequence_length, device=self.execution_device,
            )
            self._prompt_cache[text] = (cond, uncond)
        return self._prompt_cache[text]

    def cache_prompt_embeds(self, prompt: str, prompt_embeds: torch.Tensor, negative_prompt_embeds: torch.Tensor | None) -> None:
        """Use precomputed embeddings for ``prompt`` (e.g. computed once, then the text encoder freed)."""
        self._prompt_cache[prompt] = (prompt_embeds, negative_prompt_embeds)

    def initial_noise(self, shape: tuple[int, ...], seed: int) -> torch.Tensor:
        """Seeded Gaussian latents, drawn exactly as ``WanPipeline.prepare_latents`` draws them."""
        from diffusers.utils.torch_utils import randn_tensor

        generator = torch.Generator(device="cpu").manual_seed(seed)
        return randn_tensor(shape, generator=generator, device=self.execution_device, dtype=torch.float32)

    # ------------------------------------------------------------------ LoRA fine-tuning
    def trainable_modules(self) -> list[torch.nn.Module]:
        """``[transformer]`` (holding the trainable LoRA weights) when ``lora_rank > 0``, else ``[]``."""
        return [self.components.transformer] if self.lora["rank"] > 0 else []

    def training_loss(self, batch: dict[str, Any], disparity_left_px: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"loss", "loss_fm", "loss_cycle"}`` of one batch (see :class:`LoRATrainingObjective`).

        Prompts: each element's ``caption`` (the generator's ``prompt`` when empty/absent).
        Mono video (no ``right`` / ``disparity_left_px`` in the batch) needs ``disparity_left_px``.
        """
        if self.lora["rank"] <= 0:
            raise ValueError("training needs a LoRA adapter: set lora_rank > 0 on WanStereoGenerator")
        batch_size = batch["left"].shape[0]
        captions = list(batch.get("caption") or [None] * batch_size)
        embeds = torch.cat([self.prompt_embeds(c or None)[0] for c in captions])
        return self.objective(
            self.components.vae, self.components.transformer, batch, embeds, disparity_left_px=disparity_left_px
        )

    def save_lora(self, folder: str | Path) -> Path:
        """Write the adapter as ``folder/pytorch_lora_weights.safetensors`` (diffusers format, atomic)."""
        from stereo_lit.diffusion.lora import save_lora

        return save_lora(self.components.transformer, folder)

    # ------------------------------------------------------------------ one window
    def _right_estimate(self, left: torch.Tensor, disparity_px: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel-space warp of the left view (holes filled from the background when asked) and its coverage."""
        warp = WarpFill().generate(left, disparity_px)
        estimate = warp.right if self.fill_holes else warp.extras["warped"]
        return estimate, warp.known_mask

    @torch.no_grad()
    def sample_window(
        self,
        left: torch.Tensor,
        disparity_px: torch.Tensor,
        *,
        prompt: str | None = None,
        fixed_right: torch.Tensor | None = None,
        seed: int | None = None,
        left_noise: torch.Tensor | None = None,
    ) -> WindowResult:
        """Sample the right view of one window (``T = 4k+1``, ``H, W`` multiples of 16).

        Args:
            left: ``[B, 3, T, H, W]`` in [0, 1]; disparity_px: ``[B, 1, T, H, W]``.
            fixed_right: ``[B, 3, n, H, W]``: the first ``n`` right frames, already produced
                (carried overlap); they are enforced on every step and returned unchanged.
            seed: noise seed (default: the generator's).
            left_noise: the noise the left view was sampled from (text-to-stereo), latent
                shape: the right view starts from it shifted onto the known cells, with
                fresh noise (from ``seed``) in the holes; overrides ``noise``.
        """
        b, _, t, h, w = left.shape
        if not is_wan_length(t) or h % 16 or w % 16:
            raise ValueError(f"a window must have 4k+1 frames and H, W multiples of 16, got T={t}, {h}x{w}")
        device = self.execution_device
        seed = self.seed if seed is None else seed
        left = left.to(device, torch.float32)
        disparity_px = disparity_px.to(device, torch.float32)
        num_fixed = 0 if fixed_right is None else fixed_right.shape[2]
        cond, uncond = self.prompt_embeds(prompt)
        vae, transformer = self.components.vae, self.components.transformer

        # 1. Pixel-space warp of the left view.
        estimate, covered = self._right_estimate(left, disparity_px)

        # 2. Known content in latent space: carried frames first, then the warp.
        if num_fixed:
            estimate = torch.cat([fixed_right.to(estimate), estimate[:, :, num_fixed:]], dim=2)
        known_latent = encode_video(vae, estimate).to(device)
        fixed_pixels = torch.zeros_like(covered)
        fixed_pixels[:, :, :num_fixed] = 1.0
        fixed_mask = mask_to_latent_grid(fixed_pixels)
        warp_mask = mask_to_latent_grid(covered) * (1.0 - fixed_mask)

        # 3. Initial noise: fresh from the seed, or the left's noise shifted (fresh in the holes).
        noise = self.initial_noise(tuple(known_latent.shape), seed)
        disparity_latent = disparity_to_latent_grid(disparity_px)
        inverting = self.noise == "inverted" and left_noise is None
        if self.strategy == "latent_shift" or inverting:
            left_latent = encode_video(vae, left).to(device)
        if inverting:
            scheduler = self.new_scheduler()
            scheduler.set_timesteps(self.num_inference_steps, device=device)
            left_noise = invert(
                transformer, left_latent, inversion_sigmas(scheduler.sigmas), cond, uncond,
                guidance_scale=self.guidance_scale,
                num_train_timesteps=scheduler.config.num_train_timesteps, batch_mode=self.batch_mode,
            )
        if left_noise is None:
            left_noise = noise  # video-to-stereo, shared: latent_shift's left trajectory noise
        else:
            if tuple(left_noise.shape) != tuple(noise.shape):
                raise ValueError(f"left_noise must have the latent shape {tuple(noise.shape)}, got {tuple(left_noise.shape)}")
            left_noise = left_noise.to(device, torch.float32)
            noise, _ = shift_noise(left_noise, disparity_latent, noise)

        # 4. Denoise with the strategy, enforcing the carried frames on every step.
        guidance: Guidance | None
        if self.strategy == "x0_blend":
            guidance = X0Blend(known_latent, warp_mask)
        elif self.strategy == "repaint":
            guidance = Repaint(known_latent, warp_mask, torch.Generator(device=device).manual_seed(seed + 1))
        elif self.strategy == "latent_shift":
            guidance = LatentShift(left_latent, left_noise, disparity_latent, every=self.shift_every)
            guidance.mask = guidance.mask * (1.0 - fixed_mask)
            warp_mask = guidance.mask
        else:
            guidance, warp_mask = None, torch.zeros_like(warp_mask)
        constraint = X0Blend(known_latent, fixed_mask) if num_fixed else None
        latents = denoise(
            transformer, self.new_scheduler(), noise, cond, uncond,
            num_inference_steps=self.num_inference_steps, guidance_scale=self.guidance_scale,
            guidance=guidance, guidance_stop=self.guidance_stop, constraint=constraint, batch_mode=self.batch_mode,
            progress=f"sampling ({self.strategy})" if self.progress else None,
        )

        # 5. Decode; carried frames come back exactly as given.
        right = decode_latents(vae, latents).to(device)
        if num_fixed:
            right[:, :, :num_fixed] = fixed_right.to(right)
        return WindowResult(right, covered, latents, known_latent, warp_mask, fixed_mask)

    # ------------------------------------------------------------------ whole videos
    @torch.no_grad()
    def generate(
        self,
        left: torch.Tensor,
        disparity_px: torch.Tensor,
        *,
        prompt: str | None = None,
        carry: Any = None,
        num_overlap: int = 0,
    ) -> StereoOutput:
        if left.ndim != 5 or left.shape[1] != 3 or disparity_px.ndim != 5 or disparity_px.shape[1] != 1:
            raise ValueError(
                f"expected left [B,3,T,H,W] and disparity_px [B,1,T,H,W], got {tuple(left.shape)} and {tuple(disparity_px.shape)}"
            )
        if disparity_px.shape[0] != left.shape[0] or disparity_px.shape[2:] != left.shape[2:]:
            raise ValueError(f"disparity_px {tuple(disparity_px.shape)} does not match left {tuple(left.shape)}")
        b, _, t, h, w = left.shape
        if carry is None:
            num_overlap = 0
        elif not 0 <= num_overlap <= min(t, carry["right"].shape[2]):
            raise ValueError(
                f"num_overlap={num_overlap} must be in [0, min(T={t}, carried frames={carry['right'].shape[2]})]"
            )
        out_device = left.device
        self.check_frame_size(h, w, min(t, self.window), option="the frame size")
        self.plan_memory(min(t, self.window), h, w)
        space = padding_for(h, w)
        left_p = pad_video(left.float(), space)
        disp_p = pad_video(disparity_px.float(), space)
        right_p = torch.empty_like(left_p)
        known_p = torch.empty_like(disp_p)
        if num_overlap:
            right_p[:, :, :num_overlap] = carry["right"][:, :, -num_overlap:].to(right_p)
        first_index = 0 if carry is None else int(carry["next_window"])

        windows = plan_windows(t, self.sampling_window, self.overlap)
        for k, win in enumerate(windows):
            frames = slice(win.start, win.stop)
            num_fixed = win.num_overlap if k > 0 else num_overlap
            time = Padding(frames=win.pad_frames)
            fixed = right_p[:, :, win.start : win.start + num_fixed] if num_fixed else None
            window_left = pad_video(left_p[:, :, frames], time)
            try:
                result = self.sample_window(
                    window_left, pad_video(disp_p[:, :, frames], time),
                    prompt=prompt, fixed_right=fixed, seed=self.seed + first_index + k,
                )
            except OOM_ERRORS as exc:
                torch.cuda.empty_cache()
                raise WanOutOfMemoryError(oom_message(
                    *window_left.shape[2:], offload=self.offload, vae_tiling=self.vae_tiling, window=self.sampling_window,
                    dtype=self.dtype, planned=self.memory_plan.describe() if self.memory_plan else None,
                )) from exc
            keep = slice(win.keep_start - win.start, win.num_frames)
            right_p[:, :, win.keep_start : win.stop] = result.right[:, :, keep].to(right_p)
            known_p[:, :, win.keep_start : win.stop] = result.known_mask[:, :, keep].to(known_p)
        if num_overlap:  # carried frames: the windows' known mask for them was written above
            right_p[:, :, :num_overlap] = carry["right"][:, :, -num_overlap:].to(right_p)

        right = unpad_video(right_p, space).contiguous()
        known = unpad_video(known_p, space).contiguous()
        tail = right_p[:, :, -min(t, self.window) :].detach().cpu()
        return StereoOutput(
            right=right.to(out_device),
            known_mask=known.to(out_device),
            extras={
                "cycle_error": cycle_error(left.float(), right, disparity_px.float()).to(out_device),
                # first frame of each later window: where the temporal metrics look for seams
                "seam_frames": torch.tensor([win.keep_start for win in windows[1:]], dtype=torch.long),
            },
            carry={"right": tail, "next_window": first_index + len(windows)},
        )
