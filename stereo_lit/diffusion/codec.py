"""Video <-> normalised Wan latents through ``AutoencoderKLWan``, as ``pipeline_wan*.py`` do.

Encoding (``WanVideoToVideoPipeline.prepare_latents``): pixels [0,1] -> [-1,1], the
posterior's mode, then ``(z - latents_mean) / latents_std`` with the per-channel
statistics in ``vae.config``. Decoding (``WanPipeline.__call__``) inverts that:
``z * latents_std + latents_mean`` then ``vae.decode``.
"""

from __future__ import annotations

import logging
import time

import torch

log = logging.getLogger(__name__)


def _latent_stats(vae, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z_dim = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean, device=like.device, dtype=like.dtype).view(1, z_dim, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=like.device, dtype=like.dtype).view(1, z_dim, 1, 1, 1)
    return mean, std


def _vae_device(vae) -> torch.device:
    from diffusers.utils.torch_utils import get_module_execution_device

    return get_module_execution_device(vae)


@torch.no_grad()
def encode_video(vae, video: torch.Tensor) -> torch.Tensor:
    """``video [B, 3, T, H, W]`` in [0, 1] (T = 4k+1, H, W multiples of 8) -> latents ``[B, 16, 1+k, H/8, W/8]`` float32."""
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"expected a video [B, 3, T, H, W], got shape {tuple(video.shape)}")
    b, _, t, h, w = video.shape
    log.info("VAE encode: %d x %d frames of %dx%d px", b, t, h, w)
    start = time.perf_counter()
    x = (video.to(device=_vae_device(vae), dtype=vae.dtype) * 2.0 - 1.0).clamp(-1.0, 1.0)
    z = vae.encode(x).latent_dist.mode().float()
    log.debug("VAE encode took %.1f s", time.perf_counter() - start)
    mean, std = _latent_stats(vae, z)
    return (z - mean) / std


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor) -> torch.Tensor:
    """Normalised latents ``[B, 16, f, h, w]`` -> video ``[B, 3, 4(f-1)+1, 8h, 8w]`` in [0, 1], float32."""
    b, _, f, h, w = latents.shape
    log.info("VAE decode: %d x %d frames of %dx%d px", b, 4 * (f - 1) + 1, 8 * h, 8 * w)
    start = time.perf_counter()
    z = latents.to(device=_vae_device(vae), dtype=vae.dtype)
    mean, std = _latent_stats(vae, z)
    video = vae.decode(z * std + mean, return_dict=False)[0]
    log.debug("VAE decode took %.1f s", time.perf_counter() - start)
    return ((video.float() + 1.0) / 2.0).clamp(0.0, 1.0)
