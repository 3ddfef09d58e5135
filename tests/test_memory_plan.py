"""The memory plan (offload / VAE tiling / window from the free GPU memory) and the out-of-memory message."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from stereo_lit.diffusion import memory_plan as mp
from stereo_lit.diffusion.generator import WanStereoGenerator
from stereo_lit.diffusion.options import group_flat_options
from stereo_lit.diffusion.memory_plan import GB, WanOutOfMemoryError, estimate_peak_bytes, plan_memory
from stereo_lit.data.skips import RunFailures

F, H, W = 81, 480, 832


@pytest.mark.parametrize(
    "free_gb, offload, tiling, window",
    [
        (80, "none", False, 81),  # everything resident: 21.8 GB estimated
        (24, "none", True, 81),  # untiled decode (21.8 GB) > 0.9 x 24: tiling first (19.0 GB)
        (16, "model", False, 81),  # weights alone (14.7 GB) do not fit; the text encoder peaks alone (11.6 GB)
        (12, "sequential", False, 81),  # the 11.6 GB text encoder does not fit 10.8 GB usable
        (8, "sequential", True, 81),  # untiled sequential 7.6 GB > 7.2 GB
        (4, "sequential", True, 49),  # 81 frames (4.8 GB) > 3.6 GB: the next window, 49 (3.5 GB)
    ],
)
def test_plan_for_480p_81_frames(free_gb, offload, tiling, window):
    plan = plan_memory(free_gb * GB, F, H, W, overlap=9)
    assert (plan.offload, plan.vae_tiling, plan.window) == (offload, tiling, window)
    assert plan.reason.startswith("fits") and plan.estimate_bytes <= 0.9 * free_gb * GB


def test_estimates_known_numbers():
    # no offload: 2.8 + 11.4 + 0.5 GB weights + max(32760 tokens x 64 KB, 14 KB x 480 x 832 px) + 4 x 81x3x480x832 float32
    video = 4 * F * 3 * H * W * 4
    expected = (2.8 + 11.4 + 0.5) * GB + max(32760 * 64e3, 14e3 * H * W) + video
    assert estimate_peak_bytes(F, H, W, offload="none", vae_tiling=False) == pytest.approx(expected)
    # fp32 weights double the transformer and text encoder
    fp32 = estimate_peak_bytes(F, H, W, offload="model", vae_tiling=False, dtype_bytes=4)
    assert fp32 == pytest.approx(2 * 11.4 * GB + 0.2 * GB)
    # the 14B needs more than the 1.3B in the same setting
    big = estimate_peak_bytes(F, H, W, offload="none", vae_tiling=True, model=mp.MODEL_MEMORY["14B"])
    assert big > estimate_peak_bytes(F, H, W, offload="none", vae_tiling=True) + 25 * GB


def test_user_settings_win():
    # set values are kept even where the plan would choose otherwise
    plan = plan_memory(8 * GB, F, H, W, overlap=9, offload=False, vae_tiling=False, window=81)
    assert (plan.offload, plan.vae_tiling, plan.window) == ("none", False, 81)
    assert plan.reason.startswith("may not fit")
    plan = plan_memory(80 * GB, F, H, W, offload="sequential", vae_tiling=True, window=33)
    assert (plan.offload, plan.vae_tiling, plan.window) == ("sequential", True, 33)
    # one set, the others planned around it: no offload allowed at 24 GB -> tiling
    plan = plan_memory(24 * GB, F, H, W, offload=False)
    assert (plan.offload, plan.vae_tiling, plan.window) == ("none", True, 81)
    # tiling refused at 8 GB: sequential offload, then a smaller window (81 frames: 7.6 GB > 7.2 GB; 49: 7.0 GB)
    plan = plan_memory(8 * GB, F, H, W, overlap=9, vae_tiling=False)
    assert (plan.offload, plan.vae_tiling, plan.window) == ("sequential", False, 49)
    # ... and at 4 GB nothing fits: the least memory allowed, said so
    plan = plan_memory(4 * GB, F, H, W, overlap=9, vae_tiling=False)
    assert (plan.offload, plan.vae_tiling, plan.window) == ("sequential", False, 17)
    assert plan.reason.startswith("may not fit")
    # a planned window stays above the overlap
    plan = plan_memory(1 * GB, F, H, W, overlap=33)
    assert plan.window == 49 and plan.reason.startswith("may not fit")
    with pytest.raises(ValueError, match="offload"):
        plan_memory(8 * GB, F, H, W, offload="cpu")


def test_cpu_is_a_no_op():
    plan = plan_memory(None, F, H, W)
    assert (plan.offload, plan.vae_tiling, plan.window, plan.reason) == ("none", False, 81, "cpu")
    plan = plan_memory(None, F, H, W, offload=True, vae_tiling=True, window=33)
    assert (plan.offload, plan.vae_tiling, plan.window, plan.reason) == ("model", True, 33, "cpu")
    assert mp.free_gpu_bytes("cpu") is None


def _generator(tiny_checkpoints: Path, **kw) -> WanStereoGenerator:
    opts = dict(num_inference_steps=1, guidance_scale=1.0, overlap=1, device="cpu", dtype="float32", progress=False)
    opts.update(kw)
    return WanStereoGenerator(tiny_checkpoints / "Wan2.1-T2V-tiny-Diffusers", **group_flat_options(**opts))


def _scene(frames: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(1, 3, frames, 16, 32, generator=torch.Generator().manual_seed(0)), torch.full((1, 1, frames, 16, 32), 2.0)


def test_generator_plans_on_first_video(tiny_checkpoints, monkeypatch, caplog):
    gen = _generator(tiny_checkpoints, window=None)
    assert (gen.window, gen.offload, gen.vae_tiling, gen.memory_plan) == (81, "none", False, None)
    gen.generate(*_scene())
    assert gen.memory_plan.reason == "cpu" and gen.sampling_window == 81
    # on a (pretended) 40 GB GPU the plan picks tiling and logs it (float32: 28.9 GB of weights,
    # untiled 36.1 GB > 36 GB usable, tiled 34.7 GB); offload stays as set
    gen = _generator(tiny_checkpoints, offload=False)
    monkeypatch.setattr("stereo_lit.diffusion.wan_models.free_gpu_bytes", lambda device: int(40 * GB))
    with caplog.at_level(logging.INFO, logger="stereo_lit.diffusion.wan_models"):
        plan = gen.plan_memory(81, 480, 832)
    assert (plan.offload, plan.vae_tiling, plan.window) == ("none", True, 81)
    assert (gen.offload, gen.vae_tiling, gen.sampling_window) == ("none", True, 81)
    assert "Wan memory plan: offload=none, vae_tiling=True, window=81" in caplog.text


def test_out_of_memory_names_the_settings(tiny_checkpoints, monkeypatch):
    gen = _generator(tiny_checkpoints, window=5)

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("stereo_lit.diffusion.pipeline.denoise", oom)
    with pytest.raises(WanOutOfMemoryError) as info:
        gen.generate(*_scene())
    message = str(info.value)
    assert "5x16x32 window" in message
    assert "offload=none, vae_tiling=False, window=5, dtype=float32" in message
    for setting in ("vae_tiling: true", "offload: model", "dtype: bfloat16", "data.init_args.max_side"):
        assert setting in message
    assert isinstance(info.value.__cause__, torch.cuda.OutOfMemoryError)
    # the skip policy names the video with that message
    failures = RunFailures()
    failures.record("films/holiday.mp4", info.value)
    assert "skipped films/holiday.mp4: WanOutOfMemoryError: the GPU ran out of memory" in failures.summary()
    # a smaller window is suggested when there is one
    text = mp.oom_message(81, 480, 832, offload="model", vae_tiling=True, window=81, dtype="bfloat16")
    assert "offload: sequential" in text and "window: 49" in text and "dtype" not in text.split("Change")[1]


def test_generators_sharing_loads_share_the_first_plan(tiny_checkpoints, monkeypatch):
    from stereo_lit.diffusion.loading import SharedComponents

    shared = SharedComponents()
    first, second = (_generator(tiny_checkpoints, dtype="bfloat16").share_loads(shared) for _ in range(2))
    free = iter([24 * GB, 2 * GB])  # the second sees the first's models on the GPU
    monkeypatch.setattr("stereo_lit.diffusion.wan_models.free_gpu_bytes", lambda device: int(next(free)))
    a = first.plan_memory(81, 480, 832)
    b = second.plan_memory(81, 480, 832)
    assert (a.offload, a.vae_tiling, a.window) == ("none", True, 81) and b is a
    assert first.components_key() == second.components_key()  # hence one load


def test_tiled_estimate_counts_the_decoded_window_copies():
    """Tiled decoding keeps every tile over all frames (1.78x the frame area at 256/192 px) plus
    two concatenations and the clamp's input: 3.78 float32 copies of the window besides the
    four video copies; at 81x480x832 this outweighs the transformer's activations (2.1 GB)."""
    frame_bytes = F * 3 * H * W * 4
    tiled_vae = 14e3 * 256 * 256 + ((256 / 192) ** 2 + 3) * frame_bytes
    assert tiled_vae > 32760 * 64e3
    expected = (2.8 + 11.4 + 0.5) * GB + tiled_vae + 4 * frame_bytes
    assert estimate_peak_bytes(F, H, W, offload="none", vae_tiling=True) == pytest.approx(expected)
