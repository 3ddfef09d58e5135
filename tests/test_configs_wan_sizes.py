"""Every shipped Wan config at its own frame sizes, on the tiny checkpoints, through the real CLI.

Only paths and lengths (frames, windows, steps) are overridden, never a size: the tiny Wan
transformer must place 480x832 / 480x640 / 832-px-max frames like the real one, and a size
beyond a model's positional range fails at setup, before any depth is estimated, with a
message naming the size, the limit and the option to change.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stereo_lit.cli import build_cli
from stereo_lit.data.synthetic import render_sequence, write_tartanair_sequence
from stereo_lit.depth import DepthResult, VDAEstimator
from test_video_reader import write_test_clip

REPO = Path(__file__).resolve().parents[1]
WAN_REAL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
VACE_REAL = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
VDA_REAL = "depth-anything/Video-Depth-Anything-Small"
#: Lengths a test may shorten (frames, windows, steps); nothing else in a config is touched.
LENGTHS = {"window": 5, "overlap": 1, "num_inference_steps": 2, "clip_frames": 5, "stride": 5, "num_frames": 5,
           "max_steps": 1}
SIZE_KEYS = ("size", "height", "width", "max_side", "input_size")


def _size_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().split(":")[0] in SIZE_KEYS]


def _config(name: str, tiny: Path, tmp_path: Path) -> Path:
    """configs/NAME with the tiny checkpoints' paths and short lengths, sizes untouched (asserted)."""
    text = (REPO / "stereo_lit" / "configs" / name).read_text()
    assert WAN_REAL in text, f"configs/{name} names no Wan checkpoint"
    new = text.replace(WAN_REAL, str(tiny / "Wan2.1-T2V-tiny-Diffusers"))
    new = new.replace(VACE_REAL, str(tiny / "Wan2.1-VACE-tiny-Diffusers"))
    new = new.replace(VDA_REAL, str(tiny / "video_depth_anything_tiny.pth"))
    for key, value in LENGTHS.items():
        new = re.sub(rf"(?m)((?:^|[{{,])\s*{key}): \d+", rf"\g<1>: {value}", new)  # block or flow style
    assert _size_lines(new) == _size_lines(text)
    path = tmp_path / name
    path.write_text(new)
    return path


def _frames(path: Path) -> tuple[int, int, int]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return len(frames), frames[0].height, frames[0].width


def _sequence(root: Path, trajectory: str, height: int, width: int) -> None:
    write_tartanair_sequence(render_sequence(9, height, width, seed=1), root / trajectory)


def _run(name: str, tiny: Path, tmp_path: Path) -> tuple[Path, object]:
    """Run configs/NAME as its header comment tells a user to, with data made here."""
    config, out = _config(name, tiny, tmp_path), tmp_path / "out"
    common = ["-c", str(config), "--model.output.dir", str(out), "--trainer.logger", "false"]
    if name in ("predict_wild.yaml", "lora_mono.yaml"):
        videos = tmp_path / "videos"
        videos.mkdir()
        write_test_clip(videos / "clip.mp4", num_frames=9, height=540, width=960)  # a 960x540 source
        job = "predict" if name == "predict_wild.yaml" else "fit"
        return out, build_cli([job, *common, "--data.init_args.source", str(videos)])
    if name == "text_to_stereo.yaml":
        return out, build_cli(["predict", *common])
    root = tmp_path / "data"
    if name == "demo_wan.yaml":  # scripts/demo.sh renders 240x320
        _sequence(root, "EnvA/Easy/P000", 240, 320)
        return out, build_cli(["test", *common, "--data.init_args.root", str(root)])
    _sequence(root, "EnvA/Easy/P000", 480, 640)  # TartanAir v1: 640x480
    if name == "eval_tartanair.yaml":
        return out, build_cli(["test", *common, "--data.init_args.root", str(root)])
    assert name == "lora_tartanair.yaml"
    for trajectory in ("EnvA/Easy/P001", "EnvA/Hard/P001"):  # every train pattern of the config matches
        _sequence(root, trajectory, 480, 640)
    return out, build_cli(["fit", *common, "--data.init_args.root", str(root)])


SLOW_CONFIGS = ["predict_wild.yaml", "text_to_stereo.yaml", "eval_tartanair.yaml", "lora_tartanair.yaml",
                "lora_mono.yaml", "demo_wan.yaml"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_CONFIGS)
def test_every_shipped_wan_config_runs_at_its_own_sizes(tiny_checkpoints: Path, tmp_path: Path, name: str) -> None:
    out, cli = _run(name, tiny_checkpoints, tmp_path)
    if name == "predict_wild.yaml":
        assert _frames(out / "clip" / "sbs.mp4") == (9, 540, 1920)
    elif name == "text_to_stereo.yaml":
        folder = next(p for p in out.iterdir() if p.is_dir() and p.name.startswith("prompt_000_"))
        assert _frames(folder / "sbs.mp4") == (5, 480, 1664)
    elif name in ("eval_tartanair.yaml", "demo_wan.yaml"):
        table = json.loads((out / "eval" / "test_metrics.json").read_text())
        assert "wan_x0_blend" in table["methods"]
    else:
        assert cli.trainer.global_step == 1
        assert (out / "lora" / "final" / "pytorch_lora_weights.safetensors").is_file()


@pytest.mark.parametrize("name", SLOW_CONFIGS)
def test_every_shipped_wan_config_fits_the_tiny_model_at_setup(tiny_checkpoints: Path, tmp_path: Path, name: str) -> None:
    """The fast variant: each config's datamodule on data of the real sizes, checked at setup (no sampling)."""
    from stereo_lit.diffusion.loading import planned_frame_sizes

    config = _config(name, tiny_checkpoints, tmp_path)
    args = ["-c", str(config)]
    if name in ("predict_wild.yaml", "lora_mono.yaml"):
        write_test_clip(tmp_path / "clip.mp4", num_frames=5, height=540, width=960)
        args += ["--data.init_args.source", str(tmp_path / "clip.mp4")]
    cli = build_cli(args, run=False)
    if name in ("predict_wild.yaml", "lora_mono.yaml"):  # probes the videos (TartanAir: the config's `size`)
        cli.datamodule.setup("fit" if name.startswith("lora") else "predict")
    sizes = planned_frame_sizes(cli.datamodule)
    if name == "demo_wan.yaml":
        assert sizes == []  # native size: checked when the first window is generated
        return
    expected = {"predict_wild.yaml": (540, 960), "lora_mono.yaml": (468, 832), "text_to_stereo.yaml": (480, 832)}
    assert [s[:2] for s in sizes] == [expected.get(name, (480, 640))]
    cli.model._check_frame_sizes(cli.datamodule)  # the tiny model's range covers them
    cli.model.generator.fill_checkpoint(tmp_path)  # no-op: the config's checkpoint stays
    cli.model.generator.checkpoint = _old_tiny(tiny_checkpoints, tmp_path)
    with pytest.raises(ValueError, match="512 px per side"):
        cli.model._check_frame_sizes(cli.datamodule)


@pytest.mark.slow
def test_predict_wild_config_as_shipped_on_a_small_clip(tiny_checkpoints: Path, tmp_path: Path) -> None:
    """The config's own sizes (VDA's 518 px input too) on a small source: about 2 minutes on 2 busy CPU cores."""
    config, out = _config("predict_wild.yaml", tiny_checkpoints, tmp_path), tmp_path / "out"
    write_test_clip(tmp_path / "small.mp4", num_frames=5, height=48, width=64)
    build_cli(["predict", "-c", str(config), "--data.init_args.source", str(tmp_path / "small.mp4"),
               "--model.output.dir", str(out), "--model.depth.init_args.cache_dir", str(tmp_path / "cache")])
    assert _frames(out / "small" / "sbs.mp4") == (5, 48, 128)


def _old_tiny(tiny: Path, tmp_path: Path) -> Path:
    """A tiny Wan folder as older versions wrote it: rope_max_seq_len 32, i.e. 512 px per side."""
    old = tmp_path / "old" / "Wan2.1-T2V-tiny-Diffusers"
    shutil.copytree(tiny / "Wan2.1-T2V-tiny-Diffusers", old)
    config_path = old / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config["rope_max_seq_len"] = 32
    config_path.write_text(json.dumps(config))
    return old


@pytest.mark.parametrize(
    "name, size, option",
    [("predict_wild.yaml", "540x960", "data.init_args.max_side"),
     ("text_to_stereo.yaml", "480x832", "data.init_args.height / data.init_args.width")],
)
def test_a_size_beyond_the_model_range_fails_at_setup_before_depth(
    tiny_checkpoints: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, size: str, option: str
) -> None:
    def no_depth(self, video: torch.Tensor) -> DepthResult:  # the protocol's signature (the CLI checks it)
        raise AssertionError("depth was estimated before the size check")

    def no_stream(self, frames: Iterable[np.ndarray], total_frames: int | None = None) -> Iterator[np.ndarray]:
        raise AssertionError("depth was estimated before the size check")

    monkeypatch.setattr(VDAEstimator, "estimate", no_depth)
    monkeypatch.setattr(VDAEstimator, "estimate_stream", no_stream)
    config = _config(name, tiny_checkpoints, tmp_path)
    old = _old_tiny(tiny_checkpoints, tmp_path)
    args = ["predict", "-c", str(config), "--model.output.dir", str(tmp_path / "out"), "--model.wan_checkpoint", str(old)]
    if name == "predict_wild.yaml":
        write_test_clip(tmp_path / "big.mp4", num_frames=5, height=540, width=960)
        args += ["--data.init_args.source", str(tmp_path / "big.mp4")]
    with pytest.raises(ValueError) as info:
        build_cli(args)
    message = str(info.value)
    assert size in message and "512 px per side" in message and "rope_max_seq_len=32" in message
    assert option in message


def test_tiny_transformer_places_1280_px_per_side(tiny_checkpoints: Path) -> None:
    """Thin strips 1280 px tall and 1280 px wide (80 patches per side) through the tiny transformer."""
    from diffusers import WanTransformer3DModel

    transformer = WanTransformer3DModel.from_pretrained(tiny_checkpoints / "Wan2.1-T2V-tiny-Diffusers", subfolder="transformer")
    assert transformer.config.rope_max_seq_len >= 1280 // 16
    text = torch.zeros(1, 4, transformer.config.text_dim)
    for shape in ((1, 16, 2, 160, 4), (1, 16, 2, 4, 160)):
        with torch.no_grad():
            out = transformer(hidden_states=torch.randn(shape), timestep=torch.tensor([500.0]),
                              encoder_hidden_states=text, return_dict=False)[0]
        assert out.shape == shape and torch.isfinite(out).all()
