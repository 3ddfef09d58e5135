"""count_nfe on the tiny random Wan: known NFE of CFG, CFG-free, shared batches, inversion and a block cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stereo_lit.diffusion.generator import WanStereoGenerator
from stereo_lit.diffusion.options import group_flat_options
from stereo_lit.diffusion.nfe import NFECount, count_nfe, last_block
from stereo_lit.diffusion.tiny import write_tiny_wan

H, W, T, STEPS = 16, 32, 5, 2


@pytest.fixture(scope="module")
def tiny_wan(tmp_path_factory) -> Path:
    return write_tiny_wan(tmp_path_factory.mktemp("ckpt"), seed=0)


@pytest.fixture(scope="module")
def components(tiny_wan):
    return WanStereoGenerator(tiny_wan, **group_flat_options(device="cpu", dtype="float32")).components


def _run(tiny_wan: Path, components, **kw) -> NFECount:
    opts = dict(num_inference_steps=STEPS, guidance_scale=5.0, window=T, overlap=1, device="cpu", dtype="float32",
                prompt="a red ball", progress=False)
    opts.update(kw)
    gen = WanStereoGenerator(tiny_wan, **group_flat_options(**opts)).use_components(components)
    left = torch.rand(1, 3, T, H, W, generator=torch.Generator().manual_seed(0))
    disparity = torch.full((1, 1, T, H, W), 3.0)
    with count_nfe(components.transformer) as nfe:
        gen.generate(left, disparity)
    return nfe


def test_cfg_free_halves_nfe(tiny_wan, components):
    cfg = _run(tiny_wan, components, guidance_scale=5.0)
    free = _run(tiny_wan, components, guidance_scale=1.0)
    assert (cfg.count, cfg.samples, cfg.full) == (2 * STEPS, 2 * STEPS, 2 * STEPS)
    assert (free.count, free.samples, free.full) == (STEPS, STEPS, STEPS)
    assert free.skipped == cfg.skipped == 0


def test_shared_batch_is_one_call_of_two_samples(tiny_wan, components):
    nfe = _run(tiny_wan, components, batch_mode="shared")
    assert (nfe.count, nfe.samples) == (STEPS, 2 * STEPS)


def test_inversion_adds_one_cfg_pass_per_step(tiny_wan, components):
    nfe = _run(tiny_wan, components, noise="inverted", strategy="none")
    assert nfe.count == 2 * STEPS + 2 * STEPS  # inversion (CFG, one Euler step per step) + sampling


def test_hooks_are_removed_on_exit_and_on_error(components):
    transformer = components.transformer
    before = (len(transformer._forward_pre_hooks), len(transformer._forward_hooks))
    with pytest.raises(RuntimeError, match="boom"):
        with count_nfe(transformer):
            raise RuntimeError("boom")
    with count_nfe(transformer) as nfe:
        pass
    assert (len(transformer._forward_pre_hooks), len(transformer._forward_hooks)) == before
    tail_children = list(last_block(transformer).children())
    assert tail_children and all(not child._forward_pre_hooks for child in tail_children)
    assert nfe.count == 0
    with pytest.raises(TypeError, match="torch.nn.Module"):
        with count_nfe(object()):
            pass


def test_first_block_cache_lowers_full_evaluations(tiny_wan):
    from diffusers import hooks  # a hard dependency: missing is a failure, not a skip
    if not hasattr(hooks, "FirstBlockCacheConfig"):
        pytest.skip("this diffusers has no FirstBlockCacheConfig")
    from diffusers import WanPipeline

    pipe = WanPipeline.from_pretrained(tiny_wan)
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(prompt="a red ball", height=H, width=W, num_frames=T, num_inference_steps=4, guidance_scale=1.0,
                  output_type="latent")
    with count_nfe(pipe.transformer) as plain:
        pipe(generator=torch.Generator().manual_seed(0), **kwargs)
    pipe.transformer.enable_cache(hooks.FirstBlockCacheConfig(threshold=1e9))  # every later step reuses the tail
    with count_nfe(pipe.transformer) as cached:
        pipe(generator=torch.Generator().manual_seed(0), **kwargs)
    assert (plain.count, plain.full) == (4, 4)
    assert (cached.count, cached.full, cached.skipped) == (4, 1, 3)
