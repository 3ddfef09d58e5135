"""Few-step and cached sampling options through the real CLI (``stereo-lit predict``) on the tiny model.

The NFE numbers are the CLI's own accounting (the generator's ``extras["nfe"]`` / ``["nfe_full"]``,
summed per method by the module's ``predict_cost`` and printed in the predict summary), so each
test proves the work an option skips:

- ``guidance_scale: 1`` makes half the transformer calls of ``guidance_scale: 5`` (no unconditional pass);
- a first-block cache with a huge threshold cuts every call after the first short (``nfe_full``);
- ``memory.attention_backend: native`` is set on every attention processor and runs;
- ``stereo_lit/configs/predict_few_step.yaml`` runs with two adapters (its distillation LoRA slot and its
  optional stereo LoRA line, both tiny random adapters here) at 4 CFG-free steps: 4 NFE per window.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stereo_lit.cli import build_cli
from stereo_lit.diffusion.tiny import TINY_WAN_DIRNAME
from test_lora_adapters import write_random_adapter
from test_video_reader import write_test_clip

REPO = Path(__file__).resolve().parents[1]
VDA_REAL = "depth-anything/Video-Depth-Anything-Small"
STEPS = 3
GEN = "--model.generator.init_args."


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    video = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_test_clip(video, num_frames=5, height=32, width=32)
    return video


@pytest.fixture(scope="module")
def depth_cache(tmp_path_factory) -> Path:
    """One depth cache for every run of this module: the clip's depth is estimated once."""
    return tmp_path_factory.mktemp("depth_cache")


def _config(name: str, tiny: Path, tmp_path: Path, replace: dict[str, str]) -> Path:
    """configs/NAME with the tiny checkpoints, 5-frame windows and the given replacements (each asserted present)."""
    text = (REPO / "stereo_lit" / "configs" / name).read_text()
    replace = {VDA_REAL: str(tiny / "video_depth_anything_tiny.pth"), "window: 81": "window: 5", "overlap: 9": "overlap: 1",
               **replace}
    for old, new in replace.items():
        assert old in text, f"{old!r} not in configs/{name}"
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


def _predict(config: Path, clip: Path, depth_cache: Path, out: Path, *extra: str):
    """``stereo-lit predict -c CONFIG`` on the clip, float32 on CPU; returns the CLI and the method's cost totals."""
    cli = build_cli(["predict", "-c", str(config), "--data.init_args.source", str(clip), "--model.output.dir", str(out),
                     "--model.depth.input_size", "28", "--model.depth.cache_dir", str(depth_cache),
                     f"{GEN}memory.dtype", "float32", f"{GEN}memory.device", "cpu", f"{GEN}progress", "false", *extra])
    assert (out / clip.stem / "sbs.mp4").is_file()
    (totals,) = cli.model.predict_cost.methods.values()
    assert totals.calls >= 1 and totals.frames == 5
    return cli, totals


@pytest.fixture(scope="module")
def wild_config(tiny_checkpoints: Path, tmp_path_factory) -> Path:
    return _config("predict_wild.yaml", tiny_checkpoints, tmp_path_factory.mktemp("cfg"),
                   {"Wan-AI/Wan2.1-T2V-1.3B-Diffusers": str(tiny_checkpoints / TINY_WAN_DIRNAME)})


@pytest.fixture(scope="module")
def cfg_free(wild_config: Path, clip: Path, depth_cache: Path, tmp_path_factory):
    """predict_wild.yaml at STEPS CFG-free steps with the native attention backend (the baseline of two tests)."""
    return _predict(wild_config, clip, depth_cache, tmp_path_factory.mktemp("out"),
                    f"{GEN}sampling.num_inference_steps", str(STEPS), f"{GEN}sampling.guidance_scale", "1.0",
                    f"{GEN}memory.attention_backend", "native")


def test_guidance_scale_one_halves_the_nfe(wild_config, clip, depth_cache, cfg_free, tmp_path, capsys) -> None:
    _, guided = _predict(wild_config, clip, depth_cache, tmp_path / "out", f"{GEN}sampling.num_inference_steps", str(STEPS),
                         f"{GEN}sampling.guidance_scale", "5.0")
    _, free = cfg_free
    assert guided.calls == free.calls
    assert guided.nfe == STEPS * 2 * guided.calls  # conditional + unconditional pass per step
    assert free.nfe == STEPS * free.calls
    assert guided.nfe == 2 * free.nfe and guided.nfe_full == guided.nfe
    assert f"NFE {guided.per_81f(guided.nfe):.4g} per 81 frames ({2 * STEPS:g} per window)" in capsys.readouterr().out


def test_attention_backend_native_is_set_and_runs(cfg_free) -> None:
    cli, totals = cfg_free
    transformer = cli.model.generator.components.transformer
    backends = [getattr(m.processor, "_attention_backend", None) for m in transformer.modules() if hasattr(m, "processor")]
    assert len(backends) == 2 * 2, backends  # tiny Wan: 2 blocks x (self, cross) attention
    assert all(getattr(b, "value", b) == "native" for b in backends), backends  # unset: None
    assert totals.nfe == totals.nfe_full == STEPS * totals.calls


def test_first_block_cache_skips_full_evaluations(wild_config, clip, depth_cache, cfg_free, tmp_path, capsys) -> None:
    _, cached = _predict(wild_config, clip, depth_cache, tmp_path / "out", f"{GEN}sampling.num_inference_steps", str(STEPS),
                         f"{GEN}sampling.guidance_scale", "1.0", f"{GEN}sampling.cache", "{kind: first_block, threshold: 1.0e9}")
    _, plain = cfg_free
    assert cached.nfe == plain.nfe == STEPS * cached.calls  # the same calls...
    assert plain.nfe_full == plain.nfe
    assert cached.nfe_full == cached.calls < plain.nfe_full  # ...but only each window's first ran every block
    assert f"{cached.nfe_full} full of {cached.nfe}" in capsys.readouterr().out


def test_few_step_config_with_two_adapters(tiny_checkpoints, clip, depth_cache, tmp_path, caplog) -> None:
    import logging

    tiny = tiny_checkpoints / TINY_WAN_DIRNAME
    distill = write_random_adapter(tiny, tmp_path / "distill", seed=11, rank=2, alpha=2.0)
    stereo = write_random_adapter(tiny, tmp_path / "stereo", seed=12, rank=4, alpha=4.0)
    config = _config("predict_few_step.yaml", tiny_checkpoints, tmp_path, {
        "Wan-AI/Wan2.1-T2V-14B-Diffusers": str(tiny),
        "lightx2v/Wan2.1-T2V-14B-StepDistill-CfgDistill-Lightx2v/loras/Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank64.safetensors":
            str(distill / "pytorch_lora_weights.safetensors"),
        "# - {path: outputs/lora_mono_14b/lora/final, weight: 1.0, name: stereo}": f"- {{path: {stereo}, weight: 0.5, name: stereo}}",
    })
    with caplog.at_level(logging.INFO, logger="stereo_lit.diffusion.lora"):
        cli, totals = _predict(config, clip, depth_cache, tmp_path / "out")
    generator = cli.model.generator
    assert (generator.sampling.num_inference_steps, generator.sampling.guidance_scale) == (4, 1.0)
    assert totals.nfe == totals.nfe_full == 4 * totals.calls  # 4 CFG-free steps: 4 NFE per window
    pipe = generator.components.pipe
    assert sorted(pipe.get_active_adapters()) == ["distill", "stereo"]
    scaling = pipe.transformer.get_submodule("blocks.0.attn1.to_q").scaling
    assert scaling == {"distill": 1.0, "stereo": 0.5}  # weight x alpha / rank
    assert "'distill' (weight 1)" in caplog.text and "'stereo' (weight 0.5)" in caplog.text
