"""VAE tiling / slicing reach diffusers' ``AutoencoderKLWan`` on the real generator path, and the
tiled codec gives the untiled answer to within stated tolerances (issue 21, item 3).

The tiny Wan's frames here are 264 px high (padded to 272): above diffusers' 256 px tile, so a
tiled VAE takes its ``tiled_encode`` / ``tiled_decode`` path, but 32 px wide so it stays cheap.
"""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan

from stereo_lit.diffusion.codec import decode_latents, encode_video
from stereo_lit.diffusion.generator import WanStereoGenerator
from stereo_lit.diffusion.memory_plan import GB
from stereo_lit.diffusion.tiny import tiny_wan_components

FRAMES, H, W = 5, 264, 32


def _generator(tiny_checkpoints, memory: dict) -> WanStereoGenerator:
    """As a config builds it: grouped ``memory`` options (``model.generator.init_args.memory``)."""
    return WanStereoGenerator(
        tiny_checkpoints / "Wan2.1-T2V-tiny-Diffusers", window=FRAMES, overlap=1, progress=False,
        sampling={"num_inference_steps": 1, "guidance_scale": 1.0},
        memory={"device": "cpu", "dtype": "float32", **memory},
    )


@pytest.fixture
def tiled_calls(monkeypatch) -> dict[str, int]:
    """Counts of diffusers' ``AutoencoderKLWan.tiled_encode`` / ``tiled_decode`` calls (the originals still run)."""
    calls = {"tiled_encode": 0, "tiled_decode": 0}
    for name in calls:
        original = getattr(AutoencoderKLWan, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(AutoencoderKLWan, name, spy)
    return calls


@pytest.mark.parametrize(
    "memory, free_gb, tiled",
    [
        ({"vae_tiling": True, "vae_slicing": True}, None, True),  # set by the user
        ({"vae_tiling": False, "offload": False}, 1, False),  # set off: kept off where the plan would tile
        ({"offload": False}, 1, True),  # unset, chosen by the memory plan on a (pretended) 1 GB GPU
        ({}, None, False),  # unset on CPU: the plan is a no-op
    ],
    ids=["set", "set-off", "planned", "cpu-unset"],
)
def test_vae_tiling_reaches_diffusers_in_generate(tiny_checkpoints, monkeypatch, tiled_calls, caplog, memory, free_gb, tiled):
    if free_gb is not None:
        monkeypatch.setattr("stereo_lit.diffusion.wan_models.free_gpu_bytes", lambda device: int(free_gb * GB))
    gen = _generator(tiny_checkpoints, memory)
    left = torch.rand(1, 3, FRAMES, H, W, generator=torch.Generator().manual_seed(0))
    with caplog.at_level(logging.INFO, logger="stereo_lit.diffusion.wan_models"):
        out = gen.generate(left, torch.full((1, 1, FRAMES, H, W), 3.0))
    assert out.right.shape == left.shape
    vae = gen.components.vae  # loaded inside generate, after the plan
    assert gen.vae_tiling is tiled and vae.use_tiling is tiled
    assert vae.use_slicing is bool(memory.get("vae_slicing"))
    # the tiled code ran: one encode of the warped estimate, one decode of the result (x0_blend)
    expected = 1 if tiled else 0
    assert tiled_calls == {"tiled_encode": expected, "tiled_decode": expected}
    assert (out.extras["vae_encodes"], out.extras["vae_decodes"]) == (1, 1)
    if memory == {"offload": False}:
        assert "Wan memory plan: offload=none, vae_tiling=True, window=5 (may not fit" in caplog.text


def test_use_components_applies_the_generators_vae_savers(tiny_checkpoints):
    components = _generator(tiny_checkpoints, {}).components
    assert not components.vae.use_tiling and not components.vae.use_slicing
    _generator(tiny_checkpoints, {"vae_tiling": None}).use_components(components)
    assert not components.vae.use_tiling  # unset: left as it is
    _generator(tiny_checkpoints, {"vae_tiling": True, "vae_slicing": True}).use_components(components)
    assert components.vae.use_tiling and components.vae.use_slicing
    _generator(tiny_checkpoints, {"vae_tiling": False}).use_components(components)
    assert components.vae.use_tiling  # never switched off for the other users of the shared VAE


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|a - b|`` relative to ``b``'s spread about its mean (L2 norms)."""
    return float((a - b).norm() / (b - b.mean()).norm())


def test_tiled_codec_matches_untiled():
    """Tiled and untiled agree, but not exactly, and cannot: diffusers' Wan VAE tiles are 256 px
    with a 192 px stride, each zero-padded at its edges, the mid-block attention sees one tile
    instead of the frame, and neighbouring tiles are blended linearly over the 64 px overlap.
    Measured on this frame (tiny random VAE, float32): latents 0.14 %, decoded frame 1.7 %
    of their spread; the response to a local latent change 7.9 % in the tile's interior."""
    vae = tiny_wan_components()["vae"]
    coarse = torch.rand(1, 3, 9, 3, generator=torch.Generator().manual_seed(0))
    frame = F.interpolate(coarse, size=(H, 64), mode="bicubic", align_corners=False).clamp(0, 1).unsqueeze(2)
    rows = slice(10, 12)  # latent rows 10-11 = pixel rows 80-95, inside the first tile
    out = {}
    for tiled in (False, True):
        vae.enable_tiling() if tiled else vae.disable_tiling()
        z = encode_video(vae, frame)
        bumped = z.clone()
        bumped[..., rows, 3:5] += 5.0
        y = decode_latents(vae, z)
        out[tiled] = (z, y, (decode_latents(vae, bumped) - y)[0].abs().sum(dim=(0, 1)))
    (z0, y0, r0), (z1, y1, r1) = out[False], out[True]
    assert z1.shape == z0.shape == (1, 16, 1, H // 8, 8) and y1.shape == y0.shape == frame.shape
    assert _rel(z1, z0) < 0.01 and _rel(y1, y0) < 0.05
    # a local change decodes to the same place: the response peaks on the bumped rows in both
    for response in (r0, r1):
        assert 72 <= int(response.sum(dim=1)[:192].argmax()) <= 103
    interior = slice(40, 150)
    assert float((r1 - r0)[interior].norm() / r0[interior].norm()) < 0.15
