"""Video-to-stereo with Wan2.1: the training-free warped sampler as a :class:`StereoGenerator`.

A thin Lightning-side adapter around :class:`~stereo_lit.diffusion.pipeline.WanStereoPipeline`,
which samples one window (warp, encode the known view, noise, guided denoising, decode;
read its ``__call__``). Here, around it:

- long videos run in overlapping windows (:func:`stereo_lit.stereo.windows.plan_windows`); every
  frame is produced once, and each window starts from the previous window's produced
  frames, held on every step (``fixed_right``); ``StereoOutput.carry`` chains calls;
- frames are padded to multiples of 16 and back (edge pixels repeated);
- the cost of each call is counted: ``extras["nfe"]`` (transformer evaluations),
  ``extras["nfe_full"]`` (those in which the whole block stack ran), ``extras["vae_encodes"]``
  and ``extras["vae_decodes"]``;
- LoRA training delegates to :class:`~stereo_lit.diffusion.training.LoRATrainingObjective`.

Models, memory plan and early checks: :class:`~stereo_lit.diffusion.wan_models.WanModels`.
Options: :mod:`~stereo_lit.diffusion.options`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from stereo_lit.diffusion.cycle import cycle_error
from stereo_lit.diffusion.guidance import STRATEGIES
from stereo_lit.diffusion.memory_plan import OOM_ERRORS, WanOutOfMemoryError, oom_message
from stereo_lit.diffusion.nfe import count_nfe, count_vae_passes
from stereo_lit.diffusion.options import LoRAOptions, MemoryOptions, SamplingOptions, as_options
from stereo_lit.diffusion.training import LoRATrainingObjective
from stereo_lit.diffusion.wan_models import BACKBONES, DEFAULT_WINDOW, WanModels
from stereo_lit.generators.base import StereoGenerator, StereoOutput
from stereo_lit.stereo.padding import Padding, pad_video, padding_for, unpad_video
from stereo_lit.stereo.windows import plan_windows

#: Wan's usual negative prompt, in English.
DEFAULT_NEGATIVE_PROMPT = (
    "bright colors, overexposed, static, blurred details, subtitles, worst quality, low quality, "
    "JPEG artifacts, ugly, deformed, disfigured, extra fingers, poorly drawn hands, poorly drawn face, "
    "messy background, walking backwards"
)
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
    nfe: int = 0


class WanStereoGenerator(WanModels, StereoGenerator):
    """Left video + disparity -> right video with Wan2.1 filling what the warp cannot see.

    Args:
        checkpoint: local Wan2.1 Diffusers folder, T2V or VACE (loaded on first use). Leave it
            unset in a config and set ``model.wan_checkpoint`` once: it fills every Wan method,
            and the methods of one module that agree on folder and options share one load.
        backbone: ``"auto"`` (from the folder's ``model_index.json``), ``"t2v"`` or ``"vace"``
            (Wan2.1-VACE, conditioned on the warped view and the disocclusion mask); a folder of
            the other kind is an error at setup.
        strategy: ``"x0_blend"`` (default), ``"repaint"``, ``"latent_shift"`` (the original scheme)
            or ``"none"`` (plain Wan sampling; with VACE: VACE's conditioning alone).
        sampling: steps, guidance, scheduler, noise, cache (:class:`~stereo_lit.diffusion.options.SamplingOptions`).
        memory: dtype, device, offload, VAE savers, attention backend (:class:`~stereo_lit.diffusion.options.MemoryOptions`).
            ``offload``, ``vae_tiling`` and ``window`` left unset are chosen on CUDA from the free
            GPU memory at the first video (:attr:`memory_plan`, logged); set values win.
        lora: adapters to load (several, with weights) and the fine-tuning settings
            (:class:`~stereo_lit.diffusion.options.LoRAOptions`).
        window: frames per window (``4k+1``); unset: 81, lowered on a small GPU by the memory plan.
        overlap: frames shared by neighbouring windows (the later one holds them as produced).
        seed: noise seed of the first window (window i uses ``seed + i``).
        prompt: default prompt when ``generate`` gets none.
        negative_prompt: the negative prompt of classifier-free guidance.
        fill_holes: fill warp holes before VAE encoding: True / ``"background"`` (background rule) or
            ``"temporal"`` (from other frames first, :mod:`stereo_lit.stereo.temporal`); False: black.
        progress: show a progress bar over the denoising steps of each window.
        max_sequence_length: text tokens (Wan: 512).
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        backbone: str = "auto",
        strategy: str = "x0_blend",
        sampling: SamplingOptions = SamplingOptions(),  # noqa: B008 (frozen copies: see as_options)
        memory: MemoryOptions = MemoryOptions(),  # noqa: B008
        lora: LoRAOptions = LoRAOptions(),  # noqa: B008
        window: int | None = None,
        overlap: int = 9,
        seed: int = 0,
        prompt: str = "",
        negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
        fill_holes: bool | Literal["background", "temporal"] = True,
        progress: bool = True,
        max_sequence_length: int = 512,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
        plan_windows(window or DEFAULT_WINDOW, window or DEFAULT_WINDOW, overlap)  # validates window / overlap
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.backbone = backbone
        self.strategy = strategy
        self.sampling = as_options(sampling, SamplingOptions)
        self.memory = as_options(memory, MemoryOptions)
        self.lora = as_options(lora, LoRAOptions)
        self.overlap = overlap
        self.seed = seed
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.fill_holes = fill_holes
        self.progress = progress
        self.max_sequence_length = max_sequence_length
        self.objective = LoRATrainingObjective(
            cycle_weight=self.lora.cycle_weight, cycle_space=self.lora.cycle_space,
            sigma_sampling=self.lora.sigma_sampling, flow_shift=self.sampling.flow_shift,
        )
        self._init_models(window)

    @property
    def name(self) -> str:
        """The method's row name: ``wan_{strategy}`` (T2V), ``wan_vace`` / ``wan_vace_{strategy}`` (VACE;
        with ``backbone: auto`` read from the folder when it is there)."""
        backbone = self.backbone
        if backbone == "auto" and self.checkpoint is not None and (self.checkpoint / "model_index.json").is_file():
            from stereo_lit.diffusion.vace import backbone_of

            try:
                backbone = backbone_of(self.checkpoint)
            except ValueError:  # not a T2V/VACE folder: check_paths says so at setup
                backbone = "t2v"
        if backbone == "vace":
            return "wan_vace" if self.strategy == "none" else f"wan_vace_{self.strategy}"
        return f"wan_{self.strategy}"

    # ------------------------------------------------------------------ LoRA fine-tuning
    def trainable_modules(self) -> list[torch.nn.Module]:
        """``[transformer]`` (holding the trainable LoRA weights) when ``lora.rank > 0``, else ``[]``."""
        return [self.components.transformer] if self.lora.rank > 0 else []

    def training_loss(self, batch: dict[str, Any], disparity_left_px: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"loss", "loss_fm", "loss_cycle"}`` of one batch (see :class:`LoRATrainingObjective`).

        Prompts: each element's ``caption`` (the generator's ``prompt`` when empty/absent).
        Mono video (no ``right`` / ``disparity_left_px`` in the batch) needs ``disparity_left_px``.
        """
        if self.lora.rank <= 0:
            raise ValueError("training needs a LoRA adapter: set lora.rank > 0 on WanStereoGenerator")
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
        """Sample the right view of one window (``T = 4k+1``, ``H, W`` multiples of 16) with the pipeline.

        Args:
            left: ``[B, 3, T, H, W]`` in [0, 1]; disparity_px: ``[B, 1, T, H, W]``.
            fixed_right: ``[B, 3, n, H, W]``: the first ``n`` right frames, already produced
                (carried overlap); they are enforced on every step and returned unchanged.
            seed: noise seed (default: the generator's).
            left_noise: the noise the left view was sampled from (text-to-stereo), latent
                shape: the right view starts from it shifted onto the known cells, with
                fresh noise (from ``seed``) in the holes; overrides ``sampling.noise``.
        """
        pipe, opts = self.pipeline, self.sampling
        seed = self.seed if seed is None else seed
        cond, uncond = self.prompt_embeds(prompt)
        pipe.scheduler = self.new_scheduler()
        pipe.set_progress_bar_config(disable=not self.progress, desc=f"sampling ({self.strategy})", leave=False)
        extra = {"conditioning_scale": opts.conditioning_scale} if self._is_vace() else {}
        out = pipe(
            left, disparity_px, prompt_embeds=cond, negative_prompt_embeds=uncond,
            num_inference_steps=opts.num_inference_steps, sigmas=opts.sigmas, guidance_scale=opts.guidance_scale,
            strategy=self.strategy, guidance_stop=opts.guidance_stop, noise=opts.noise, batch_mode=opts.batch_mode,
            shift_every=opts.shift_every, fill_holes=self.fill_holes, fixed_right=fixed_right, left_noise=left_noise,
            generator=torch.Generator(device="cpu").manual_seed(seed), output_type="pt", **extra,
        )
        return WindowResult(out.right, out.known_mask, out.latents, out.known_latent, out.latent_mask,
                            out.fixed_latent_mask, out.nfe)

    def _is_vace(self) -> bool:
        from stereo_lit.diffusion.vace import backbone_of

        return backbone_of(self.components.transformer) == "vace"

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
        with count_nfe(self.components.transformer) as nfe, count_vae_passes(self.components.vae) as vae:
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
                "nfe": nfe.count, "nfe_full": nfe.full, "vae_encodes": vae.encodes, "vae_decodes": vae.decodes,
            },
            carry={"right": tail, "next_window": first_index + len(windows)},
        )
