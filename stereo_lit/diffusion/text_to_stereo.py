"""Text-to-stereo: Wan text-to-video makes the left view, the video-to-stereo path the right.

1. plain Wan sampling (no guidance: exactly ``WanPipeline``'s loop) -> left video;
2. a depth estimator on the left video (any object with ``estimate(video) -> result``
   where ``result.values`` is ``[B, 1, T, H, W]`` and ``result.kind`` is ``"metric_m"``
   or ``"inverse_relative"``, e.g. :mod:`stereo_lit.depth`'s Video-Depth-Anything);
3. depth -> disparity with :class:`~stereo_lit.stereo.disparity.DisparityPolicy`;
4. :meth:`WanStereoGenerator.sample_window` -> right video (same model, prompt and
   settings, one window like the left). The right view starts from the noise that made
   the left, shifted onto the known latent cells (:func:`~stereo_lit.stereo.geometry.shift_noise`),
   with fresh noise (seed + 1) in the holes: starting it from the left's *unshifted* noise
   pulls it towards a copy of the left (DESIGN.md section 4).

Seeds: the left uses ``seed`` (default: the generator's), so it is exactly
``WanPipeline``'s video for that seed; the right's fresh noise uses ``seed + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from stereo_lit.diffusion.codec import decode_latents
from stereo_lit.diffusion.cycle import cycle_error
from stereo_lit.diffusion.generator import WanStereoGenerator
from stereo_lit.diffusion.sampler import denoise
from stereo_lit.stereo.disparity import DisparityPolicy
from stereo_lit.generators.base import StereoOutput
from stereo_lit.stereo.windows import is_wan_length


@dataclass
class TextToStereoResult:
    """Both eyes and the geometry between them (videos ``[B, C, T, H, W]``, [0, 1])."""

    left: torch.Tensor
    right: torch.Tensor
    depth: torch.Tensor
    depth_kind: str
    disparity_px: torch.Tensor
    stereo: StereoOutput


class TextToStereo:
    """Prompt -> (left, right, depth).

    Args:
        generator: the video-to-stereo generator; its Wan model also makes the left view.
        depth_estimator: ``estimate(video [B,3,T,H,W]) -> DepthResult(values, kind)``.
        disparity_policy: depth -> disparity (default: relative, 2 % of the width).
    """

    def __init__(self, generator: WanStereoGenerator, depth_estimator: Any, disparity_policy: DisparityPolicy | None = None) -> None:
        self.generator = generator
        self.depth_estimator = depth_estimator
        self.disparity_policy = disparity_policy or DisparityPolicy()

    @torch.no_grad()
    def generate_left(self, prompt: str, *, num_frames: int = 81, height: int = 480, width: int = 832, seed: int | None = None) -> torch.Tensor:
        """Wan text-to-video: ``[1, 3, num_frames, height, width]`` in [0, 1]."""
        return self.sample_left(prompt, num_frames=num_frames, height=height, width=width, seed=seed)[0]

    @torch.no_grad()
    def sample_left(
        self, prompt: str, *, num_frames: int = 81, height: int = 480, width: int = 832, seed: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(left video [1, 3, T, H, W], its initial noise [1, 16, 1+(T-1)//4, H/8, W/8])``."""
        if not is_wan_length(num_frames) or height % 16 or width % 16:
            raise ValueError(f"need num_frames = 4k+1 and height, width multiples of 16, got {num_frames}, {height}x{width}")
        gen = self.generator
        from stereo_lit.diffusion.vace import backbone_of

        if backbone_of(gen.components.transformer) != "t2v":
            raise ValueError(
                f"text-to-stereo makes the left view with Wan2.1 text-to-video: {gen.checkpoint} is a "
                f"{backbone_of(gen.components.transformer)!r} checkpoint; use a T2V folder (e.g. Wan2.1-T2V-1.3B-Diffusers)"
            )
        cond, uncond = gen.prompt_embeds(prompt)
        z_dim = gen.components.vae.config.z_dim
        shape = (1, z_dim, (num_frames - 1) // 4 + 1, height // 8, width // 8)
        from diffusers.utils.torch_utils import randn_tensor

        generator = torch.Generator(device="cpu").manual_seed(gen.seed if seed is None else seed)
        noise = randn_tensor(shape, generator=generator, device=gen.execution_device, dtype=torch.float32)  # = initial_noise
        latents = denoise(
            gen.components.transformer, gen.new_scheduler(), noise, cond, uncond,
            num_inference_steps=gen.sampling.num_inference_steps, guidance_scale=gen.sampling.guidance_scale,
            batch_mode=gen.sampling.batch_mode, sigmas=gen.sampling.sigmas, generator=generator,
            progress="sampling (left view)" if gen.progress else None,
        )
        return decode_latents(gen.components.vae, latents), noise

    def __call__(
        self, prompt: str, *, num_frames: int = 81, height: int = 480, width: int = 832, seed: int | None = None
    ) -> TextToStereoResult:
        seed = self.generator.seed if seed is None else seed
        left, left_noise = self.sample_left(prompt, num_frames=num_frames, height=height, width=width, seed=seed)
        depth = self.depth_estimator.estimate(left)
        values = depth.values.to(left.device)
        if values.shape[0] != left.shape[0] or values.shape[1] != 1 or values.shape[2:] != left.shape[2:]:
            raise ValueError(f"depth estimator returned values {tuple(values.shape)} for a video {tuple(left.shape)}")
        disparity_px = self.disparity_policy.from_depth(values, depth.kind, key=f"text:{prompt}:{seed}")
        window = self.generator.sample_window(left, disparity_px, prompt=prompt, seed=seed + 1, left_noise=left_noise)
        right = window.right.to(left.device)
        stereo = StereoOutput(
            right=right,
            known_mask=window.known_mask.to(left.device),
            extras={"cycle_error": cycle_error(left.float(), right, disparity_px.float()),
                    "seam_frames": torch.zeros(0, dtype=torch.long)},
        )
        return TextToStereoResult(left, right, values, depth.kind, disparity_px, stereo)
