"""Text-to-stereo noise: the right view starts from the left's own noise, shifted; the seed reaches both eyes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import stereo_lit.diffusion.pipeline as generator_module  # the right window samples in the pipeline
import stereo_lit.diffusion.text_to_stereo as t2s_module
from stereo_lit.diffusion.generator import WanStereoGenerator
from stereo_lit.diffusion.sampler import denoise as real_denoise
from stereo_lit.diffusion.text_to_stereo import TextToStereo
from stereo_lit.stereo.disparity import DisparityPolicy
from stereo_lit.stereo.geometry import disparity_to_latent_grid, shift_noise

PROMPT, T, H, W = "a red ball", 5, 16, 96


@dataclass
class _Depth:
    values: torch.Tensor
    kind: str


class _RampDepth:
    """Inverse relative depth growing to the right: disparity 0 .. 20 % of the width (0 .. 2.4 latent cells)."""

    def estimate(self, video: torch.Tensor) -> _Depth:
        b, _, t, h, w = video.shape
        return _Depth(torch.linspace(0.0, 1.0, w).view(1, 1, 1, 1, w).expand(b, 1, t, h, w).clone(), "inverse_relative")


@pytest.fixture(scope="module")
def generator(tiny_checkpoints: Path) -> WanStereoGenerator:
    return WanStereoGenerator(
        tiny_checkpoints / "Wan2.1-T2V-tiny-Diffusers", prompt=PROMPT, seed=7, progress=False,
        sampling={"num_inference_steps": 2, "guidance_scale": 5.0}, memory={"device": "cpu", "dtype": "float32"},
    )


def _run(gen: WanStereoGenerator, seed: int | None) -> tuple[object, dict]:
    """Text-to-stereo, recording the initial latents of the left (first) and right (second) sampling."""
    seen: dict[str, torch.Tensor] = {}

    def spy(name: str):
        def call(transformer, scheduler, latents, *args, **kwargs):
            seen[name] = latents.clone()
            return real_denoise(transformer, scheduler, latents, *args, **kwargs)
        return call

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(t2s_module, "denoise", spy("left"))
        patch.setattr(generator_module, "denoise", spy("right"))
        policy = DisparityPolicy(max_disparity_pct=20.0, low_percentile=0.0, high_percentile=100.0)
        result = TextToStereo(gen, _RampDepth(), policy)(PROMPT, num_frames=T, height=H, width=W, seed=seed)
    return result, seen


@pytest.fixture(scope="module")
def runs(generator) -> dict:
    """Text-to-stereo with the default seed (the generator's: 7), seed 7 given, and seed 8."""
    return {seed: _run(generator, seed) for seed in (None, 7, 8)}


def test_right_view_starts_from_the_left_noise_shifted_onto_the_known_cells(generator, runs):
    result, seen = runs[None]
    left_noise, right_noise = seen["left"], seen["right"]
    assert torch.equal(left_noise, generator.initial_noise(tuple(left_noise.shape), 7))  # WanPipeline's noise for seed 7
    disparity = disparity_to_latent_grid(result.disparity_px)
    fresh = generator.initial_noise(tuple(left_noise.shape), 8)
    shifted, covered = shift_noise(left_noise, disparity)
    known = covered.expand_as(left_noise) > 0.5
    moved = known & (disparity.expand_as(left_noise) >= 0.5)  # cells whose source is another column
    assert 0.2 < moved.float().mean() and known.float().mean() < 1.0
    assert torch.equal(right_noise[known], shifted[known])
    assert torch.equal(right_noise[~known], fresh[~known])  # holes: fresh noise, not the left's
    assert not torch.isclose(right_noise[moved], left_noise[moved]).any()  # not the unshifted left noise
    assert not torch.isclose(right_noise[~known], left_noise[~known]).any()


def test_same_seed_same_stereo_and_a_new_seed_changes_both_eyes(runs):
    (a, noise_a), (b, _), (c, noise_c) = runs[None], runs[7], runs[8]
    assert torch.equal(a.left, b.left) and torch.equal(a.right, b.right)
    assert (a.left - c.left).abs().max() > 1e-3 and (a.right - c.right).abs().max() > 1e-3
    # the new seed reaches the right view's own noise, not only through the left video
    assert not torch.isclose(noise_a["right"], noise_c["right"]).any()


def test_lightning_predict_passes_the_generator_seed(generator, monkeypatch):
    from stereo_lit.module import StereoLitModule

    seeds: list[int | None] = []

    def fake_call(self, prompt, *, num_frames, height, width, seed=None):
        seeds.append(seed)
        raise RuntimeError("stop")

    monkeypatch.setattr(TextToStereo, "__call__", fake_call)
    module = StereoLitModule(generator=generator, depth=_RampDepth())
    batch = {"prompt": [PROMPT], "num_frames": [T], "height": [H], "width": [W], "video_path": ["p"], "fps": [8.0]}
    with pytest.raises(RuntimeError, match="stop"):
        module.predict_step(batch, 0)
    assert seeds == [7]
