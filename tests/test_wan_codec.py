"""``encode_video`` / ``decode_latents`` against diffusers' own Wan pipelines on the tiny VAE.

The tiny VAE keeps Wan2.1's real ``latents_mean`` / ``latents_std``, so a normalisation
error (wrong sign, std multiplied instead of divided, [0, 1] pixels fed as [-1, 1]) moves
the latents; comparing with ``WanVideoToVideoPipeline.prepare_latents`` (its own encoding
of a video) catches what an encode -> decode round trip would cancel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stereo_lit.diffusion.codec import decode_latents, encode_video
from stereo_lit.diffusion.loading import load_wan
from stereo_lit.diffusion.tiny import write_tiny_wan

T, H, W = 5, 32, 48


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return load_wan(write_tiny_wan(tmp_path_factory.mktemp("ckpt"), seed=0), dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def video() -> torch.Tensor:
    """``[1, 3, T, H, W]`` in [0, 1]: smooth ramps and a bright box, so the latents are far from 0."""
    t, y, x = torch.meshgrid(torch.linspace(0, 1, T), torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    rgb = torch.stack([x, y, 0.5 * (x + t)])
    rgb[:, :, 8:20, 12:30] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1, 1)
    return rgb[None].clamp(0, 1)


def _diffusers_latents(parts, video: torch.Tensor) -> torch.Tensor:
    """What ``WanVideoToVideoPipeline`` encodes for ``video`` (its preprocessing, its prepare_latents), noise removed."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanVideoToVideoPipeline
    from diffusers.utils.torch_utils import randn_tensor

    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    pipe = WanVideoToVideoPipeline(tokenizer=parts.pipe.tokenizer, text_encoder=parts.pipe.text_encoder,
                                   transformer=parts.transformer, vae=parts.vae, scheduler=scheduler)
    frames = video[0].permute(1, 2, 3, 0).numpy()  # [T, H, W, 3] in [0, 1], as a user's numpy video
    pixels = pipe.video_processor.preprocess_video(frames, height=H, width=W)
    assert pixels.shape == (1, 3, T, H, W) and pixels.min() < -0.5  # [-1, 1]
    scheduler.set_timesteps(10)
    timestep = scheduler.timesteps[5:6]
    sigma = float(scheduler.sigmas[5])
    latents = pipe.prepare_latents(pixels, 1, 16, H, W, torch.float32, torch.device("cpu"),
                                   torch.Generator().manual_seed(0), timestep=timestep)
    noise = randn_tensor(latents.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    return (latents - sigma * noise) / (1.0 - sigma)


def test_encode_video_matches_wan_video_to_video_prepare_latents(parts, video):
    ours = encode_video(parts.vae, video)
    theirs = _diffusers_latents(parts, video)
    assert ours.shape == theirs.shape == (1, 16, 2, H // 8, W // 8)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    # the normalisation is not a no-op on this VAE: raw posterior modes differ from the latents
    raw = parts.vae.encode(video * 2 - 1).latent_dist.mode()
    assert (raw - ours).abs().max() > 0.1


def test_decode_latents_inverts_the_normalisation(parts, video):
    latents = encode_video(parts.vae, video)
    raw = parts.vae.encode(video * 2 - 1).latent_dist.mode()
    expected = ((parts.vae.decode(raw, return_dict=False)[0] + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(decode_latents(parts.vae, latents), expected, atol=1e-5, rtol=1e-5)
