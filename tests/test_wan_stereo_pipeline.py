"""WanStereoPipeline (a diffusers DiffusionPipeline) on the tiny random Wan2.1 folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline_loading import load_pipeline
from stereo_lit.diffusion.tiny import TINY_WAN_DIRNAME

import diffusers  # a hard dependency: missing is a failure, not a skip

from stereo_lit.diffusion.pipeline import WanStereoPipeline, WanStereoPipelineOutput  # noqa: E402

PROMPT, NEGATIVE = "a cat walks on a table", "blurry ugly"
T, H, W, STEPS = 5, 32, 48, 3


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def folder(tiny_checkpoints) -> Path:
    return tiny_checkpoints / TINY_WAN_DIRNAME


@pytest.fixture(scope="module")
def pipe(folder) -> WanStereoPipeline:
    return load_pipeline(WanStereoPipeline, folder)


def _scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random texture; a far plane (4 px) with a near box (9 px): large fully-covered regions."""
    left = torch.rand(1, 3, T, H, W, generator=torch.Generator().manual_seed(seed))
    disparity = torch.full((1, 1, T, H, W), 4.0)
    disparity[..., 8:24, 16:32] = 9.0
    return left, disparity


def _run(pipe, **kw) -> WanStereoPipelineOutput:
    left, disparity = _scene()
    opts = dict(prompt=PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=5.0,
                generator=torch.Generator().manual_seed(7), max_sequence_length=16)
    opts.update(kw)
    return pipe(left, disparity, **opts)


def test_loads_from_an_unchanged_wan_folder_with_wans_components(folder):
    before = _digest(folder)
    pipe = load_pipeline(WanStereoPipeline, folder)
    assert isinstance(pipe, diffusers.DiffusionPipeline)
    assert set(pipe.components) == {"vae", "text_encoder", "tokenizer", "transformer", "scheduler"}
    assert type(pipe.transformer).__name__ == "WanTransformer3DModel" and pipe.backbone == "t2v"
    assert type(pipe.vae).__name__ == "AutoencoderKLWan"
    assert pipe.transformer.dtype == torch.float32
    assert pipe.model_cpu_offload_seq == "text_encoder->transformer->vae"
    assert _digest(folder) == before  # the folder is read, never rewritten


def test_strategy_none_reproduces_wan_pipeline(folder, pipe):
    ours = _run(pipe, strategy="none", output_type="np")
    wan = load_pipeline(diffusers.WanPipeline, folder)
    final: dict[str, torch.Tensor] = {}

    def keep_latents(p, step, timestep, kwargs):
        final["latents"] = kwargs["latents"]
        return {}

    frames = wan(
        PROMPT, negative_prompt=NEGATIVE, height=H, width=W, num_frames=T, num_inference_steps=STEPS,
        guidance_scale=5.0, generator=torch.Generator().manual_seed(7), output_type="np", max_sequence_length=16,
        callback_on_step_end=keep_latents,
    ).frames  # [B, T, H, W, 3]
    # same noise, same transformer calls, same scheduler steps: bit-identical latents
    assert torch.equal(ours.latents, final["latents"].float())
    assert ours.right.shape == (1, T, H, W, 3)
    np.testing.assert_allclose(ours.right, np.asarray(frames), atol=1e-5, rtol=0)
    assert ours.nfe == 2 * STEPS and ours.control_latents is None


def test_x0_blend_holds_the_known_region_at_the_warped_latent(pipe):
    out = _run(pipe, strategy="x0_blend", guidance_stop=1.0)
    assert out.right.shape == (1, 3, T, H, W) and out.known_mask.shape == (1, 1, T, H, W)
    known = out.latent_mask.expand_as(out.latents) > 0.5
    assert known.float().mean() > 0.3  # the scene leaves many cells fully covered
    assert (out.latents - out.known_latent)[known].abs().max() <= 1e-5
    assert (out.latents - out.known_latent)[~known].abs().max() > 0.1  # the model fills the rest


def test_callback_runs_every_step_reads_and_replaces_latents(pipe):
    seen: list[tuple[int, float, tuple]] = []

    def callback(p, step, timestep, kwargs):
        assert p is pipe and set(kwargs) == {"latents", "prompt_embeds"}
        seen.append((step, float(timestep), tuple(kwargs["latents"].shape)))
        return {"latents": kwargs["latents"] * 0.0} if step == STEPS - 1 else {}

    out = _run(pipe, strategy="x0_blend", output_type="latent",
               callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"])
    assert [s for s, _, _ in seen] == list(range(STEPS))
    assert [t for _, t, _ in seen] == [float(t) for t in pipe.scheduler.timesteps]
    assert all(shape == tuple(out.latents.shape) for _, _, shape in seen)
    assert out.right is None and out.latents.abs().max() == 0  # the last step's returned latents are the output
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        _run(pipe, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["noise"])


@pytest.mark.parametrize("guidance_scale, batch_mode, nfe", [(5.0, "separate", 2 * STEPS), (5.0, "shared", STEPS), (1.0, "separate", STEPS)])
def test_nfe_counts_transformer_calls(pipe, guidance_scale, batch_mode, nfe):
    out = _run(pipe, guidance_scale=guidance_scale, batch_mode=batch_mode, output_type="latent")
    assert out.nfe == nfe


def test_progress_bar_config_is_respected(pipe, capfd):
    capfd.readouterr()
    pipe.set_progress_bar_config(disable=False, desc="stereo window")
    try:
        _run(pipe, output_type="latent", guidance_scale=1.0)
    finally:
        pipe.set_progress_bar_config(disable=True)
    err = capfd.readouterr().err
    assert "stereo window" in err and f"{STEPS}/{STEPS}" in err


def test_model_cpu_offload_gives_the_same_window(folder, pipe):
    plain = _run(pipe, strategy="x0_blend", output_type="latent")
    offloaded = load_pipeline(WanStereoPipeline, folder)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # CPU: the hook chain runs on the CPU itself
    offloaded.enable_model_cpu_offload(device=device)
    hooks = offloaded._all_hooks  # one chain, in model_cpu_offload_seq order: each model offloads the one before
    assert [h.model for h in hooks] == [offloaded.text_encoder, offloaded.transformer, offloaded.vae]
    assert [h.hook.prev_module_hook for h in hooks] == [None, hooks[0], hooks[1]]
    out = _run(offloaded, strategy="x0_blend", output_type="latent")
    torch.testing.assert_close(out.latents.cpu(), plain.latents, atol=1e-5, rtol=0)  # hooks: float rounding only


def test_inputs_are_checked(pipe):
    left, disparity = _scene()
    with pytest.raises(ValueError, match="4k\\+1 frames"):
        pipe(left[:, :, :4], disparity[:, :, :4], prompt=PROMPT)
    with pytest.raises(ValueError, match="WanStereoPipeline: disparity_px"):
        pipe(left, disparity[:, :, :1], prompt=PROMPT)
    with pytest.raises(ValueError, match="strategy"):
        pipe(left, disparity, prompt=PROMPT, strategy="magic")
    with pytest.raises(ValueError, match="conditioning_scale scales VACE's control"):  # a T2V transformer has none
        pipe(left, disparity, prompt=PROMPT, conditioning_scale=0.5)


@pytest.mark.parametrize("batch_mode", ["separate", "shared"])
def test_first_block_cache_skips_full_evaluations(folder, pipe, batch_mode):
    from stereo_lit.diffusion.nfe import count_nfe
    from stereo_lit.diffusion.pipeline import apply_cache

    plain = _run(pipe, batch_mode=batch_mode, output_type="latent")
    cached = load_pipeline(WanStereoPipeline, folder)
    apply_cache(cached.transformer, {"kind": "first_block", "threshold": 0.0})  # never skips
    with count_nfe(cached.transformer) as calls:
        exact = _run(cached, batch_mode=batch_mode, output_type="latent")
    assert calls.count == calls.full == plain.nfe
    torch.testing.assert_close(exact.latents, plain.latents, atol=1e-5, rtol=0)
    cached.transformer.disable_cache()
    apply_cache(cached.transformer, {"kind": "first_block", "threshold": 1e9})  # skips whenever it may
    with count_nfe(cached.transformer) as calls:
        skipping = _run(cached, batch_mode=batch_mode, output_type="latent")
    calls_per_step = plain.nfe // STEPS
    # the first step of each named call (cond / uncond / shared batch) runs in full, the rest reuse it
    assert skipping.nfe == calls.count == plain.nfe and calls.full == calls_per_step
    with count_nfe(cached.transformer) as again:  # a second window also starts with a full evaluation
        _run(cached, batch_mode=batch_mode, output_type="latent")
    assert again.full == calls_per_step


def test_cache_and_attention_backend_options_are_checked_and_applied(folder, pipe):
    from stereo_lit.diffusion.pipeline import apply_attention_backend, cache_config

    assert type(cache_config({"kind": "taylorseer", "cache_interval": 2})).__name__ == "TaylorSeerCacheConfig"
    assert cache_config({"kind": "mag", "threshold": 0.1, "calibrate": True}).threshold == 0.1
    with pytest.raises(ValueError, match="cache.kind"):
        cache_config({"kind": "teacache"})
    with pytest.raises(ValueError, match="FirstBlockCacheConfig"):
        cache_config({"kind": "first_block", "thresh": 0.1})
    plain = _run(pipe, output_type="latent", guidance_scale=1.0)
    other = load_pipeline(WanStereoPipeline, folder)
    apply_attention_backend(other.transformer, "_native_math")
    assert {p.processor._attention_backend for p in [other.transformer.blocks[0].attn1]} == {"_native_math"}
    out = _run(other, output_type="latent", guidance_scale=1.0)
    torch.testing.assert_close(out.latents, plain.latents, atol=1e-4, rtol=0)


def test_generator_cache_option_is_applied_at_load_and_keys_the_shared_load(folder):
    from stereo_lit.diffusion.generator import WanStereoGenerator
    from stereo_lit.diffusion.nfe import count_nfe

    def generator(cache=None) -> WanStereoGenerator:
        return WanStereoGenerator(
            folder, sampling={"num_inference_steps": STEPS, "guidance_scale": 5.0, "cache": cache},
            memory={"device": "cpu", "dtype": "float32"}, window=5, overlap=1, prompt=PROMPT,
            negative_prompt=NEGATIVE, max_sequence_length=16, progress=False,
        )

    gen = generator({"kind": "first_block", "threshold": 1e9})
    assert gen.components_key() != generator().components_key()
    left, disparity = _scene()
    with count_nfe(gen.components.transformer) as calls:
        gen.sample_window(left, disparity)
    assert calls.count == 2 * STEPS and calls.full == 2  # cond and uncond run in full once, then the cache
    with pytest.raises(ValueError, match="cache.kind"):
        generator({"kind": "teacache"}).components
