"""The denoising loop on the tiny random Wan model: parity with diffusers and exact guidance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import WanPipeline

from stereo_lit.diffusion.generator import WanStereoGenerator
from stereo_lit.diffusion.options import group_flat_options
from stereo_lit.diffusion.loading import make_scheduler
from stereo_lit.diffusion.sampler import denoise
from stereo_lit.diffusion.tiny import write_tiny_wan

PROMPT, NEGATIVE = "a cat walks on a table", "blurry ugly"
H, W, T = 32, 48, 5


@pytest.fixture(scope="module")
def tiny_wan(tmp_path_factory) -> Path:
    return write_tiny_wan(tmp_path_factory.mktemp("ckpt"), seed=0)


_LOADED: dict[Path, object] = {}


def _generator(folder: Path, **kw) -> WanStereoGenerator:
    """A generator on the tiny model, loaded from disk once per module and shared."""
    opts = dict(num_inference_steps=4, guidance_scale=5.0, device="cpu", dtype="float32", prompt=PROMPT, negative_prompt=NEGATIVE, seed=7)
    opts.update(kw)
    gen = WanStereoGenerator(folder, **group_flat_options(**opts))
    if folder not in _LOADED:
        _LOADED[folder] = gen.components
    return gen.use_components(_LOADED[folder])


def _scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random texture; a far plane (4 px) with a near box (9 px): large fully-covered regions."""
    left = torch.rand(1, 3, T, H, W, generator=torch.Generator().manual_seed(seed))
    disparity = torch.full((1, 1, T, H, W), 4.0)
    disparity[..., 8:24, 16:32] = 9.0
    return left, disparity


@pytest.mark.parametrize("scheduler", ["unipc", "euler", pytest.param("dpmpp", marks=pytest.mark.slow)])
def test_without_guidance_the_loop_is_diffusers_wan_sampling(tiny_wan, scheduler):
    gen = _generator(tiny_wan, strategy="none", scheduler=scheduler)
    pipe = WanPipeline(**gen.components.pipe.components)  # diffusers' own pipeline on the same models
    pipe.scheduler = make_scheduler(scheduler, gen.sampling.flow_shift, gen.components.scheduler_config)
    reference = pipe(
        PROMPT, negative_prompt=NEGATIVE, height=H, width=W, num_frames=T, num_inference_steps=4,
        guidance_scale=5.0, generator=torch.Generator().manual_seed(7), output_type="latent",
    ).frames
    cond, uncond = gen.prompt_embeds()
    noise = gen.initial_noise(tuple(reference.shape), seed=7)
    ours = denoise(gen.components.transformer, gen.new_scheduler(), noise, cond, uncond, num_inference_steps=4, guidance_scale=5.0)
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=0)


def test_strategy_none_window_decodes_like_wan_pipeline(tiny_wan):
    gen = _generator(tiny_wan, strategy="none", scheduler="unipc", batch_mode="shared")
    left, disparity = _scene()
    window = gen.sample_window(left, disparity)
    pipe = WanPipeline(**gen.components.pipe.components)
    pipe.scheduler = gen.new_scheduler()
    frames = pipe(
        PROMPT, negative_prompt=NEGATIVE, height=H, width=W, num_frames=T, num_inference_steps=4,
        guidance_scale=5.0, generator=torch.Generator().manual_seed(7), output_type="np",
    ).frames  # [B, T, H, W, 3]
    expected = torch.from_numpy(np.asarray(frames)).permute(0, 4, 1, 2, 3)
    # one transformer batch for cond + uncond: equal up to float32 rounding of the batched matmuls
    torch.testing.assert_close(window.right, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "scheduler, tolerance",
    [
        ("euler", 1e-5),
        # UniPC / DPM++: the last step is first order (lower_order_final) at sigma_next = 0, and every
        # clean prediction in the solver's history agrees on the known cells, so the multistep
        # correction terms (differences of those predictions) vanish there; what is left is float32
        # rounding of the exponential-integrator coefficients on latents of magnitude ~5: ~1e-6.
        ("unipc", 1e-5),
        pytest.param("dpmpp", 1e-5, marks=pytest.mark.slow),
    ],
)
def test_x0_blend_every_step_lands_on_the_encoded_warp(tiny_wan, scheduler, tolerance):
    gen = _generator(tiny_wan, strategy="x0_blend", scheduler=scheduler, guidance_stop=1.0)
    left, disparity = _scene()
    window = gen.sample_window(left, disparity)
    known = window.latent_mask.expand_as(window.latents) > 0.5
    assert 0.3 < known.float().mean() < 1.0  # the test has known and unknown cells
    err_known = (window.latents - window.known_latent)[known].abs().max()
    err_free = (window.latents - window.known_latent)[~known].abs().max()
    assert err_known <= tolerance
    assert err_free > 0.1  # unknown cells are the model's, not the warp's


def test_guidance_stop_zero_is_plain_sampling_and_guidance_changes_only_with_it(tiny_wan):
    left, disparity = _scene()
    plain = _generator(tiny_wan, strategy="none").sample_window(left, disparity).latents
    off = _generator(tiny_wan, strategy="x0_blend", guidance_stop=0.0).sample_window(left, disparity).latents
    on = _generator(tiny_wan, strategy="x0_blend", guidance_stop=0.5).sample_window(left, disparity).latents
    assert torch.equal(off, plain)
    assert (on - plain).abs().max() > 0.1


@pytest.mark.parametrize("scheduler", ["unipc", "euler"])
def test_repaint_holds_the_known_region_with_every_scheduler(tiny_wan, scheduler):
    """No first-order guard: the overwrite runs before every model call, so UniPC's corrector
    (which rewrites the last sample from its history) cannot undo it; the last one is at sigma 0."""
    gen = _generator(tiny_wan, strategy="repaint", scheduler=scheduler, guidance_stop=1.0)
    window = gen.sample_window(*_scene())
    known = window.latent_mask.expand_as(window.latents) > 0.5
    assert 0.3 < known.float().mean() < 1.0
    assert (window.latents - window.known_latent)[known].abs().max() <= 1e-6
    assert (window.latents - window.known_latent)[~known].abs().max() > 0.1  # the model fills the rest
    assert torch.isfinite(window.latents).all()


def test_repaint_model_sees_the_noised_known_cells_at_every_step_under_unipc(tiny_wan, monkeypatch):
    """What the transformer is given on known cells is the known latent noised to that step's sigma."""
    import stereo_lit.diffusion.sampler as sampler

    gen = _generator(tiny_wan, strategy="repaint", scheduler="unipc", guidance_stop=1.0)
    seen = []
    real = sampler.predict_velocity

    def spy(transformer, latents, timestep, *args, **kwargs):
        seen.append((latents.clone(), float(timestep) / 1000.0))
        return real(transformer, latents, timestep, *args, **kwargs)

    monkeypatch.setattr(sampler, "predict_velocity", spy)
    window = gen.sample_window(*_scene())
    known = window.latent_mask.expand_as(window.latents) > 0.5
    assert len(seen) == 4
    for x, sigma in seen:
        # x = (1 - s) z + s n with n ~ N(0, 1): (x - (1 - s) z) / s is unit-variance noise on known cells
        residual = ((x - (1 - sigma) * window.known_latent) / sigma)[known]
        assert abs(float(residual.std()) - 1.0) < 0.1 and abs(float(residual.mean())) < 0.1


@pytest.mark.parametrize("scheduler", ["unipc", pytest.param("euler", marks=pytest.mark.slow)])
def test_inversion_then_sampling_returns_the_left_latent(tiny_wan, scheduler):
    """Inversion with the sampler's own CFG, then sampling back (CFG 5, no stereo guidance, 12 steps)
    returns the left latent within 0.1 mean / 0.3 max abs error (latent |z| ~0.3; a seed: ~1.0).

    Inversion is first order (velocity at the lower sigma of each step), so the error shrinks with
    the number of steps (tiny model, UniPC: 0.17 at 4 steps, 0.048 at 12, 0.008 at 50)."""
    from stereo_lit.diffusion.codec import encode_video
    from stereo_lit.diffusion.flow import inversion_sigmas
    from stereo_lit.diffusion.sampler import invert

    steps = 12
    gen = _generator(tiny_wan, strategy="none", scheduler=scheduler, guidance_scale=5.0, num_inference_steps=steps)
    left, _ = _scene()
    z_left = encode_video(gen.components.vae, left)
    cond, uncond = gen.prompt_embeds()
    sched = gen.new_scheduler()
    sched.set_timesteps(steps)
    noise = invert(gen.components.transformer, z_left, inversion_sigmas(sched.sigmas), cond, uncond, guidance_scale=5.0)
    back = denoise(gen.components.transformer, gen.new_scheduler(), noise, cond, uncond, num_inference_steps=steps, guidance_scale=5.0)
    random = denoise(gen.components.transformer, gen.new_scheduler(), gen.initial_noise(tuple(z_left.shape), 0), cond, uncond,
                     num_inference_steps=steps, guidance_scale=5.0)
    assert (back - z_left).abs().mean() < 0.1 and (back - z_left).abs().max() < 0.3
    assert (random - z_left).abs().mean() > 0.5


def test_lcm_with_lightx2v_timesteps_samples_those_levels_reproducibly_and_holds_the_warp(tiny_wan):
    """scheduler lcm + timesteps [1000, 750, 500, 250] at shift 5: the transformer sees t = 1000, 937.5, 833.3, 625
    (lightx2v's distillation levels); the per-step re-noising is seeded; x0_blend lands on the encoded warp."""
    from stereo_lit.diffusion.options import SamplingOptions

    seen: list[float] = []
    sampling = dict(scheduler="lcm", flow_shift=5.0, num_inference_steps=4, guidance_stop=1.0, guidance_scale=1.0,
                    timesteps=[1000, 750, 500, 250])

    def lcm(seed: int = 7) -> WanStereoGenerator:
        loaded = _generator(tiny_wan).components  # the module's shared tiny model
        return WanStereoGenerator(tiny_wan, strategy="x0_blend", seed=seed, prompt=PROMPT, sampling=sampling,
                                  memory={"device": "cpu", "dtype": "float32"}).use_components(loaded)

    gen = lcm()
    hook = gen.components.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(float(kwargs["timestep"][0])), with_kwargs=True)
    left, disparity = _scene()
    try:
        window = gen.sample_window(left, disparity)
    finally:
        hook.remove()
    assert seen == pytest.approx([1000.0, 937.5, 833.333, 625.0], abs=1e-3)
    known = window.latent_mask.expand_as(window.latents) > 0.5
    assert known.float().mean() > 0.2
    assert (window.latents - window.known_latent)[known].abs().max() <= 1e-5  # the last jump is to the blended x0
    again = lcm().sample_window(left, disparity).latents
    assert torch.equal(window.latents, again)  # re-noising drawn from the seeded generator
    other = lcm(seed=8).sample_window(left, disparity).latents
    assert (other - window.latents)[~known].abs().max() > 0.1
    with pytest.raises(ValueError, match="sampling.timesteps needs a scheduler"):
        SamplingOptions(scheduler="unipc", num_inference_steps=4, timesteps=[1000, 750, 500, 250])
    with pytest.raises(ValueError, match="strictly decreasing"):
        SamplingOptions(scheduler="lcm", num_inference_steps=4, timesteps=[1000, 500, 750, 250])
