"""WanStereoGenerator end to end on the tiny random Wan: strategies, windows, padding, carry, text-to-stereo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from stereo_lit.diffusion.generator import WanStereoGenerator, WindowResult
from stereo_lit.diffusion.options import group_flat_options
from stereo_lit.diffusion.text_to_stereo import TextToStereo
from stereo_lit.diffusion.tiny import write_tiny_wan
from stereo_lit.stereo.disparity import DisparityPolicy
from stereo_lit.generators.base import StereoGenerator

H, W = 12, 40  # padded to 16 x 48 inside


@pytest.fixture(scope="module")
def tiny_wan(tmp_path_factory) -> Path:
    return write_tiny_wan(tmp_path_factory.mktemp("ckpt"), seed=0)


@pytest.fixture(scope="module")
def components(tiny_wan):
    return WanStereoGenerator(tiny_wan, **group_flat_options(device="cpu", dtype="float32")).components


def _generator(tiny_wan: Path, components, **kw) -> WanStereoGenerator:
    opts = dict(num_inference_steps=2, guidance_scale=5.0, window=9, overlap=5, device="cpu", dtype="float32", prompt="a red ball")
    opts.update(kw)
    return WanStereoGenerator(tiny_wan, **group_flat_options(**opts)).use_components(components)


def _scene(frames: int, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    left = torch.rand(batch, 3, frames, H, W, generator=torch.Generator().manual_seed(frames))
    disparity = torch.full((batch, 1, frames, H, W), 3.0)
    disparity[..., 2:10, 10:26] = 7.0
    return left, disparity


CONFIGS = [  # (strategy, scheduler, noise, batch_mode): every strategy with every scheduler it allows
    ("x0_blend", "unipc", "shared", "separate"),
    ("x0_blend", "euler", "inverted", "shared"),
    ("repaint", "euler", "shared", "separate"),
    ("latent_shift", "unipc", "shared", "shared"),
    ("latent_shift", "euler", "inverted", "separate"),
    ("x0_blend", "dpmpp", "shared", "separate"),
    ("repaint", "unipc", "inverted", "shared"),
]
# single window (5 frames) and two windows (13 frames = two windows of 9); the CPU budget of
# the default suite is small, so the remaining combinations are marked slow.
_FAST_SINGLE = set(CONFIGS[:5])
_FAST_MULTI = {CONFIGS[0], CONFIGS[2], CONFIGS[3]}
CASES = [pytest.param(*c, 5, 1, marks=() if c in _FAST_SINGLE else pytest.mark.slow) for c in CONFIGS] + [
    pytest.param(*c, 13, 2, marks=() if c in _FAST_MULTI else pytest.mark.slow) for c in CONFIGS
]


@pytest.mark.parametrize("strategy, scheduler, noise, batch_mode, frames, batch", CASES)
def test_strategies_return_unpadded_right_views(tiny_wan, components, strategy, scheduler, noise, batch_mode, frames, batch):
    gen = _generator(tiny_wan, components, strategy=strategy, scheduler=scheduler, noise=noise, batch_mode=batch_mode)
    left, disparity = _scene(frames, batch=batch)
    out = gen.generate(left, disparity)
    assert out.right.shape == left.shape and out.known_mask.shape == disparity.shape
    assert torch.isfinite(out.right).all() and 0 <= out.right.min() and out.right.max() <= 1
    assert set(out.known_mask.unique().tolist()) <= {0.0, 1.0} and out.known_mask.mean() > 0.5
    assert out.extras["cycle_error"].shape == (batch,) and torch.isfinite(out.extras["cycle_error"]).all()


def test_generator_is_a_stereo_generator_with_validated_options(tiny_wan):
    gen = WanStereoGenerator(tiny_wan, **group_flat_options(device="cpu"))
    assert isinstance(gen, StereoGenerator) and gen.name == "wan_x0_blend"
    for bad in (dict(strategy="blend"), dict(scheduler="ddim"), dict(noise="fresh"), dict(batch_mode="joint"),
                dict(window=10), dict(overlap=4), dict(guidance_stop=1.5)):
        with pytest.raises(ValueError):
            WanStereoGenerator(tiny_wan, **group_flat_options(**bad))


@dataclass
class _Call:
    frames: int
    fixed: int


def test_windows_produce_every_frame_once_and_padding_is_removed(tiny_wan, components, monkeypatch):
    """Replace the sampler by 'right = left' (carried frames as given): the output must be the left video."""
    gen = _generator(tiny_wan, components, window=9, overlap=5)
    calls: list[_Call] = []

    def fake_window(left, disparity_px, *, prompt=None, fixed_right=None, seed=None):
        n = 0 if fixed_right is None else fixed_right.shape[2]
        assert left.shape[-2:] == (16, 48) and (left.shape[2] - 1) % 4 == 0
        calls.append(_Call(left.shape[2], n))
        right = left.clone()
        if n:
            assert torch.equal(fixed_right, left[:, :, :n])  # carried frames are the previous window's output
        zeros = torch.zeros(1)
        return WindowResult(right, torch.ones_like(disparity_px), zeros, zeros, zeros, zeros)

    monkeypatch.setattr(gen, "sample_window", fake_window)
    left, disparity = _scene(19)  # windows start at 0, 4, 8 and 10 (aligned to the end)
    out = gen.generate(left, disparity)
    assert torch.equal(out.right, left)
    assert [c.frames for c in calls] == [9, 9, 9, 9] and [c.fixed for c in calls] == [0, 5, 5, 7]
    short = gen.generate(*_scene(3))  # 3 frames: one window padded in time to 5
    assert short.right.shape[2] == 3 and calls[-1].frames == 5


def test_carry_chains_windows_without_a_seam(tiny_wan, components):
    gen = _generator(tiny_wan, components, window=9, overlap=5)
    left, disparity = _scene(13)
    first = gen.generate(left[:, :, :9], disparity[:, :, :9])
    second = gen.generate(left[:, :, 4:], disparity[:, :, 4:], carry=first.carry, num_overlap=5)
    assert torch.equal(second.right[:, :, :5], first.right[:, :, 4:9])  # overlap kept as produced
    assert not torch.equal(second.right[:, :, 5:], second.right[:, :, 4:5].expand(-1, -1, 4, -1, -1))
    with pytest.raises(ValueError, match="num_overlap"):
        gen.generate(left[:, :, 4:], disparity[:, :, 4:], carry=first.carry, num_overlap=20)


def test_inverted_noise_is_the_cfg_inversion_shifted_with_fresh_noise_in_the_holes(tiny_wan, components, monkeypatch):
    """noise='inverted': invert with the sampler's CFG, shift to the nearest latent cell, seed noise elsewhere."""
    import stereo_lit.diffusion.pipeline as generator  # the window's sampling runs in the pipeline
    from stereo_lit.stereo.geometry import disparity_to_latent_grid, shift_noise

    gen = _generator(tiny_wan, components, strategy="none", noise="inverted", seed=3)
    seen: dict[str, object] = {}
    real_invert, real_denoise = generator.invert, generator.denoise

    def spy_invert(*args, **kwargs):
        seen["invert"] = (args, kwargs)
        seen["inverted"] = real_invert(*args, **kwargs)
        return seen["inverted"]

    def spy_denoise(transformer, scheduler, latents, *args, **kwargs):
        seen["initial"] = latents.clone()
        return real_denoise(transformer, scheduler, latents, *args, **kwargs)

    monkeypatch.setattr(generator, "invert", spy_invert)
    monkeypatch.setattr(generator, "denoise", spy_denoise)
    left = torch.rand(1, 3, 5, 16, 32, generator=torch.Generator().manual_seed(0))
    disparity = torch.full((1, 1, 5, 16, 32), 12.0)  # 1.5 latent cells
    gen.sample_window(left, disparity)
    args, kwargs = seen["invert"]
    assert kwargs["guidance_scale"] == 5.0 and args[4] is not None  # negative prompt embeddings: CFG
    fresh = gen.initial_noise(tuple(seen["initial"].shape), 3)
    expected, covered = shift_noise(seen["inverted"], disparity_to_latent_grid(disparity), fresh)
    assert torch.equal(seen["initial"], expected)
    assert 0 < covered.mean() < 1  # the right edge is a hole: fresh noise there


@pytest.mark.parametrize("scheduler", ["unipc", "euler"])
def test_carried_overlap_is_enforced_inside_sampling(tiny_wan, components, scheduler):
    """The carried frames' latent cells leave the denoising loop as encoded, before any pixel overwrite.

    Stereo guidance is off (``guidance_stop=0``), so only the carry constraint acts; the
    sampled latents (``WindowResult.latents``, taken before decoding and before the carried
    pixels are written back) must equal the encoded carried frames on their cells.
    """
    gen = _generator(tiny_wan, components, scheduler=scheduler, guidance_stop=0.0)
    g = torch.Generator().manual_seed(5)
    left, fixed = torch.rand(1, 3, 9, 16, 48, generator=g), torch.rand(1, 3, 5, 16, 48, generator=g)
    disparity = torch.full((1, 1, 9, 16, 48), 3.0)
    carried = gen.sample_window(left, disparity, fixed_right=fixed)
    # pixel frames 0-4 are latent frames 0 and 1 (causal VAE)
    assert carried.fixed_latent_mask[:, :, :2].eq(1).all() and carried.fixed_latent_mask[:, :, 2:].eq(0).all()
    torch.testing.assert_close(carried.latents[:, :, :2], carried.known_latent[:, :, :2], atol=1e-4, rtol=0)
    # without the carry the same window samples something else there
    free = gen.sample_window(left, disparity)
    assert (free.latents[:, :, :2] - carried.known_latent[:, :, :2]).abs().max() > 0.1
    assert torch.equal(carried.right[:, :, :5], fixed)


def test_same_seed_same_output_and_seed_matters(tiny_wan, components):
    left, disparity = _scene(5)
    a = _generator(tiny_wan, components, seed=1).generate(left, disparity).right
    b = _generator(tiny_wan, components, seed=1).generate(left, disparity).right
    c = _generator(tiny_wan, components, seed=2).generate(left, disparity).right
    assert torch.equal(a, b) and not torch.equal(a, c)


@dataclass
class _Depth:
    values: torch.Tensor
    kind: str


class _StubDepth:
    """Inverse relative depth growing from left to right: nearer towards the right edge."""

    def __init__(self) -> None:
        self.seen: torch.Tensor | None = None

    def estimate(self, video: torch.Tensor) -> _Depth:
        self.seen = video
        b, _, t, h, w = video.shape
        ramp = torch.linspace(0.1, 1.0, w).view(1, 1, 1, 1, w).expand(b, 1, t, h, w)
        return _Depth(ramp.clone(), "inverse_relative")


def test_text_to_stereo_returns_both_eyes_and_depth(tiny_wan, components):
    gen = _generator(tiny_wan, components)
    depth = _StubDepth()
    result = TextToStereo(gen, depth, DisparityPolicy(max_disparity_pct=10.0))("a red ball", num_frames=5, height=32, width=48)
    assert result.left.shape == result.right.shape == (1, 3, 5, 32, 48)
    assert result.depth.shape == result.disparity_px.shape == (1, 1, 5, 32, 48) and result.depth_kind == "inverse_relative"
    assert torch.equal(depth.seen, result.left)  # depth was estimated on the generated left view
    assert result.disparity_px.max() == pytest.approx(4.8, abs=1e-4)  # 10 % of 48 px
    assert "cycle_error" in result.stereo.extras
    # the left view is plain Wan text-to-video for that seed
    again = TextToStereo(gen, depth).generate_left("a red ball", num_frames=5, height=32, width=48)
    assert torch.equal(again, result.left)


def test_row_names_say_the_backbone_and_the_strategy(tiny_checkpoints):
    t2v, vace = tiny_checkpoints / "Wan2.1-T2V-tiny-Diffusers", tiny_checkpoints / "Wan2.1-VACE-tiny-Diffusers"
    assert WanStereoGenerator(t2v).name == "wan_x0_blend"
    assert WanStereoGenerator(vace, strategy="none").name == "wan_vace"  # backbone auto: read from the folder
    assert WanStereoGenerator(vace, backbone="vace", strategy="x0_blend").name == "wan_vace_x0_blend"
    with pytest.raises(ValueError, match="backbone='t2v' but .* is a 'vace' model"):
        WanStereoGenerator(vace, backbone="t2v").check_paths()


def test_a_one_window_video_is_exactly_the_pipeline_call_a_python_user_makes(tiny_wan, components):
    """The generator adds windows and padding around WanStereoPipeline, no sampling math of its own."""
    from stereo_lit.diffusion.pipeline import WanStereoPipeline

    gen = _generator(tiny_wan, components, strategy="x0_blend", seed=4)
    left = torch.rand(1, 3, 9, 16, 32, generator=torch.Generator().manual_seed(1))  # one window, nothing to pad
    disparity = torch.full((1, 1, 9, 16, 32), 3.0)
    disparity[..., 4:12, 8:20] = 9.0
    out = gen.generate(left, disparity)
    pipe = WanStereoPipeline(**gen.pipeline.components)  # what a diffusers user builds from the same models
    pipe.scheduler = gen.new_scheduler()
    direct = pipe(left, disparity, prompt="a red ball", negative_prompt=gen.negative_prompt, num_inference_steps=2,
                  guidance_scale=5.0, generator=torch.Generator().manual_seed(4))
    assert torch.equal(out.right, direct.right) and torch.equal(out.known_mask, direct.known_mask)
    assert out.extras["nfe"] == direct.nfe == 4  # 2 steps x CFG
