"""Loading a Wan2.1 Diffusers folder: the tiny random one, written here, read like a real one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from stereo_lit.diffusion.loading import check_wan_folder, load_wan, make_scheduler, parse_dtype
from stereo_lit.diffusion.tiny import TINY_WAN_DIRNAME, write_tiny_wan


@pytest.fixture(scope="module")
def tiny_wan(tmp_path_factory) -> Path:
    return write_tiny_wan(tmp_path_factory.mktemp("ckpt"), seed=0)


def test_tiny_folder_has_the_diffusers_layout(tiny_wan):
    assert tiny_wan.name == TINY_WAN_DIRNAME
    index = json.loads((tiny_wan / "model_index.json").read_text())
    assert index["_class_name"] == "WanPipeline"
    assert index["transformer"] == ["diffusers", "WanTransformer3DModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKLWan"]
    assert index["text_encoder"] == ["transformers", "UMT5EncoderModel"]
    for sub in ("vae", "transformer", "text_encoder"):
        assert list((tiny_wan / sub).glob("*.safetensors")), sub
    assert check_wan_folder(tiny_wan) == tiny_wan


def test_write_is_idempotent_and_deterministic(tiny_wan, tmp_path):
    mtime = (tiny_wan / "model_index.json").stat().st_mtime_ns
    assert write_tiny_wan(tiny_wan.parent, seed=0) == tiny_wan
    assert (tiny_wan / "model_index.json").stat().st_mtime_ns == mtime  # complete folder: skipped
    other = write_tiny_wan(tmp_path, seed=0)
    a = load_wan(tiny_wan, dtype="float32", device="cpu").transformer.state_dict()
    b = load_wan(other, dtype="float32", device="cpu").transformer.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_load_wan_reads_every_component(tiny_wan):
    parts = load_wan(tiny_wan, dtype="bfloat16", device="cpu", vae_tiling=True, vae_slicing=True)
    assert parts.transformer.dtype == torch.bfloat16
    assert parts.vae.dtype == torch.float32  # the VAE stays float32
    assert parts.vae.use_tiling and parts.vae.use_slicing
    assert parts.scheduler_config["prediction_type"] == "flow_prediction"
    assert parts.execution_device == torch.device("cpu")
    with torch.no_grad():
        cond, uncond = parts.pipe.encode_prompt("a cat walks", "ugly", True, max_sequence_length=16, device=torch.device("cpu"))
    assert cond.shape == uncond.shape == (1, 16, parts.transformer.config.text_dim)
    assert not torch.equal(cond, uncond)


def test_missing_folder_error_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_wan_folder(tmp_path / "nope")


@pytest.mark.parametrize("remove", ["transformer/config.json", "tokenizer", "vae/diffusion_pytorch_model.safetensors"])
def test_incomplete_folder_error_names_the_missing_part(tiny_wan, tmp_path, remove):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_wan, broken)
    target = broken / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(FileNotFoundError, match=remove.split("/")[0]) as info:
        load_wan(broken, device="cpu")
    assert str(broken) in str(info.value)


def test_offload_on_cpu_is_refused(tiny_wan):
    with pytest.raises(ValueError, match="offload"):
        load_wan(tiny_wan, device="cpu", offload=True)


def test_schedulers_and_dtypes():
    assert type(make_scheduler("unipc", 3.0)).__name__ == "UniPCMultistepScheduler"
    assert make_scheduler("unipc", 5.0).config.flow_shift == 5.0
    assert type(make_scheduler("euler", 3.0)).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert make_scheduler("dpmpp", 3.0).config.prediction_type == "flow_prediction"
    # every scheduler starts near pure noise and ends at sigma 0 (a clean latent)
    for name in ("unipc", "euler", "dpmpp"):
        sched = make_scheduler(name, 3.0)
        sched.set_timesteps(4)
        assert len(sched.sigmas) == 5 and float(sched.sigmas[0]) > 0.99 and float(sched.sigmas[-1]) == 0.0
    with pytest.raises(ValueError, match="scheduler"):
        make_scheduler("ddim")
    assert parse_dtype("bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="dtype"):
        parse_dtype("int8")


def test_an_outdated_tiny_folder_is_rewritten_with_wans_positional_range(tiny_wan, tmp_path):
    from stereo_lit.diffusion.loading import positional_range

    old = tmp_path / TINY_WAN_DIRNAME
    shutil.copytree(tiny_wan, old)
    config_path = old / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config["rope_max_seq_len"] = 32  # what older versions wrote: 512 px per side
    config_path.write_text(json.dumps(config))
    assert positional_range(old).max_side_px == 512
    assert write_tiny_wan(tmp_path, seed=0) == old
    limits = positional_range(old)
    assert limits.rope_max_seq_len == 1024 and limits.max_side_px == 16384 and limits.max_frames == 4093


def test_positional_range_check_names_size_limit_and_option(tiny_wan):
    from types import SimpleNamespace

    from stereo_lit.diffusion.loading import check_positional_range, planned_frame_sizes, positional_range

    check_positional_range(tiny_wan, 1280, 1280, 81)
    check_positional_range(tiny_wan, 16384, 16370)  # pads to 16384
    with pytest.raises(ValueError, match=r"16400x64 px .* 16384 px per side .*rope_max_seq_len=1024.*data\.init_args\.size"):
        check_positional_range(tiny_wan, 16400, 64, option="data.init_args.size")
    with pytest.raises(ValueError, match="4097 frames"):
        check_positional_range(tiny_wan, 64, 64, 4097)
    loaded = load_wan(tiny_wan, dtype="float32", device="cpu")
    assert positional_range(dict(loaded.transformer.config), dict(loaded.vae.config)).max_side_px == 16384
    # what datamodules announce before decoding a frame
    wild = SimpleNamespace(videos=[SimpleNamespace(size=None, info=SimpleNamespace(height=540, width=960)),
                                   SimpleNamespace(size=(468, 832), info=None)])
    assert [s[:2] for s in planned_frame_sizes(wild)] == [(540, 960), (468, 832)]
    assert planned_frame_sizes(SimpleNamespace(size=[480, 640]))[0][:2] == (480, 640)
    assert planned_frame_sizes(SimpleNamespace(height=480, width=832))[0] == (480, 832, "data.init_args.height / data.init_args.width")
    assert planned_frame_sizes(None) == [] and planned_frame_sizes(SimpleNamespace(size=None)) == []
