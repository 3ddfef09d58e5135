"""`stereo-lit fit` (LoRA) through the real CLI with the shipped configs, on tiny checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from stereo_lit.cli import build_cli
from stereo_lit.data.synthetic import render_sequence, write_tartanair_sequence
from test_video_reader import write_test_clip

REPO = Path(__file__).resolve().parents[1]


def _tiny_config(name: str, tiny: Path, tmp_path: Path, **replace: str) -> Path:
    text = (REPO / "stereo_lit" / "configs" / name).read_text()
    text = text.replace("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", str(tiny / "Wan2.1-T2V-tiny-Diffusers"))
    text = text.replace("depth-anything/Video-Depth-Anything-Small", str(tiny / "video_depth_anything_tiny.pth"))
    for old, new in {"precision: bf16-mixed": "precision: 32-true", "max_steps: 2000": "max_steps: 3",
                     "accumulate_grad_batches: 4": "accumulate_grad_batches: 1", "window: 33": "window: 5",
                     "overlap: 9": "overlap: 1", **replace}.items():
        assert old in text, f"{old!r} not in configs/{name}"
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


def _lora_keys(folder: Path) -> dict[str, torch.Tensor]:
    weights = load_file(str(folder / "pytorch_lora_weights.safetensors"))
    assert weights and all("lora" in k for k in weights)
    return weights


def test_fit_on_tartanair_saves_a_diffusers_lora_that_predict_loads(tiny_checkpoints: Path, tmp_path: Path) -> None:
    root = tmp_path / "tartanair"
    for trajectory in ("EnvA/Easy/P000", "EnvA/Easy/P001"):
        write_tartanair_sequence(render_sequence(5, 32, 48, seed=len(trajectory)), root / trajectory)
    config = _tiny_config(
        "lora_tartanair.yaml", tiny_checkpoints, tmp_path,
        **{"clip_frames: 33": "clip_frames: 5", "stride: 16": "stride: 5", "size: [480, 640]": "size: null",
           '["*/Easy/P00[1-9]", "*/Hard/P00[1-9]"]': '["*/Easy/P001"]', "lora_every_n_steps: 500": "lora_every_n_steps: 2",
           "val_check_interval: 500": "val_check_interval: 3", "limit_val_batches: 4": "limit_val_batches: 1"},
    )
    out = tmp_path / "out"
    cli = build_cli(["fit", "-c", str(config), "--data.init_args.root", str(root), "--model.output.dir", str(out),
                     "--trainer.logger", "false", "--model.generator.init_args.lora.gradient_checkpointing", "false",
                     "--trainer.enable_checkpointing", "true", "--trainer.default_root_dir", str(tmp_path / "ckpt")])
    assert cli.trainer.global_step == 3
    # Lightning checkpoints hold the LoRA weights only, not the frozen transformer
    checkpoint = torch.load(next((tmp_path / "ckpt").rglob("*.ckpt")), weights_only=True, map_location="cpu")
    assert checkpoint["state_dict"] and all("lora" in k for k in checkpoint["state_dict"])
    assert "train/loss" in cli.trainer.callback_metrics and torch.isfinite(cli.trainer.callback_metrics["train/loss"])
    _lora_keys(out / "lora" / "step_2")
    final = _lora_keys(out / "lora" / "final")
    # only LoRA weights trained: the base transformer on disk is untouched, the adapter is not zero
    assert any(v.abs().sum() > 0 for k, v in final.items() if "lora_B" in k)

    # the saved adapter goes back through the generator's loading path
    from stereo_lit.diffusion import WanStereoGenerator

    generator = WanStereoGenerator(
        tiny_checkpoints / "Wan2.1-T2V-tiny-Diffusers", window=5, overlap=1, progress=False,
        sampling={"num_inference_steps": 2}, memory={"device": "cpu", "dtype": "float32"},
        lora={"path": str(out / "lora" / "final")},
    )
    left = torch.rand(1, 3, 5, 32, 48)
    right = generator.generate(left, torch.full((1, 1, 5, 32, 48), 2.0)).right
    assert right.shape == left.shape and torch.isfinite(right).all()


def test_fit_on_mono_video_with_estimated_depth(tiny_checkpoints: Path, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    write_test_clip(videos / "walk.mp4", num_frames=9, height=32, width=48)
    config = _tiny_config("lora_mono.yaml", tiny_checkpoints, tmp_path, **{"max_steps: 3": "max_steps: 2"})
    out = tmp_path / "out"
    cli = build_cli(["fit", "-c", str(config), "--data.init_args.source", str(videos), "--model.output.dir", str(out),
                     "--trainer.logger", "false", "--model.depth.input_size", "28",
                     "--model.generator.init_args.lora.gradient_checkpointing", "false"])
    assert cli.trainer.global_step == 2
    _lora_keys(out / "lora" / "final")
