"""The shipped Wan configs through the real CLI, on the tiny random checkpoints.

Each test rewrites only the checkpoint paths, sizes and step counts of the YAML file a
user runs, so the configs themselves are what is exercised.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from stereo_lit.cli import build_cli
from stereo_lit.diffusion.generator import WanStereoGenerator
from stereo_lit.data.synthetic import render_sequence, write_tartanair_sequence
from test_video_reader import write_test_clip

REPO = Path(__file__).resolve().parents[1]
WAN_REAL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
VACE_REAL = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
VDA_REAL = "depth-anything/Video-Depth-Anything-Small"


def _tiny_config(name: str, tiny: Path, tmp_path: Path, **replace: str) -> Path:
    text = (REPO / "stereo_lit" / "configs" / name).read_text()
    text = text.replace(WAN_REAL, str(tiny / "Wan2.1-T2V-tiny-Diffusers"))
    text = text.replace(VACE_REAL, str(tiny / "Wan2.1-VACE-tiny-Diffusers"))
    text = text.replace(VDA_REAL, str(tiny / "video_depth_anything_tiny.pth"))
    text = text.replace("num_inference_steps: 50", "num_inference_steps: 2")
    for old, new in replace.items():
        assert old in text, f"{old!r} not in configs/{name}"
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


def _decode(path: Path) -> tuple[int, int, int, bool]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return len(frames), frames[0].height, frames[0].width, bool(container.streams.audio)


def test_predict_wild_with_wan_and_vda_keeps_audio(tiny_checkpoints: Path, tmp_path: Path) -> None:
    video = tmp_path / "holiday.mp4"
    write_test_clip(video, num_frames=9, height=32, width=48, audio=True)
    config = _tiny_config("predict_wild.yaml", tiny_checkpoints, tmp_path, **{"window: 81": "window: 5"})
    out = tmp_path / "out"
    build_cli(
        ["predict", "-c", str(config), "--data.init_args.source", str(video), "--model.output.dir", str(out),
         "--model.depth.input_size", "28", "--model.depth.cache_dir", str(tmp_path / "cache"),
         "--data.init_args.overlap", "1", "--model.generator.init_args.overlap", "1"]
    )
    for layout in ("right", "sbs", "anaglyph"):
        assert _decode(out / "holiday" / f"{layout}.mp4") == (9, 32, 96 if layout == "sbs" else 48, True)
    assert list((tmp_path / "cache").rglob("*")), "whole-video depth was cached"


def _count_wan_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the folder of every ``WanStereoPipeline.from_pretrained`` call (the real loader still runs)."""
    from stereo_lit.diffusion.pipeline import WanStereoPipeline

    calls: list[str] = []
    original = WanStereoPipeline.from_pretrained

    def counting(folder, *args, **kwargs):
        calls.append(str(folder))
        return original(folder, *args, **kwargs)

    monkeypatch.setattr(WanStereoPipeline, "from_pretrained", staticmethod(counting))
    return calls


def _count_text_encoder_work(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """Record every UMT5 ``from_pretrained`` (its folder) and every ``encode_prompt`` (its prompt); both still run.
    The process-wide text encoders and embeddings start empty (an earlier test's may still be alive)."""
    import weakref

    from transformers import UMT5EncoderModel

    from stereo_lit.diffusion import wan_models
    from stereo_lit.diffusion.pipeline import WanStereoPipeline

    monkeypatch.setattr(wan_models, "_TEXT_ENCODERS", weakref.WeakValueDictionary())
    monkeypatch.setattr(wan_models, "_SHARED_EMBEDS", weakref.WeakKeyDictionary())

    loads: list[str] = []
    encodes: list[str] = []
    load, encode = UMT5EncoderModel.from_pretrained.__func__, WanStereoPipeline.encode_prompt
    monkeypatch.setattr(UMT5EncoderModel, "from_pretrained",
                        classmethod(lambda cls, *a, **k: loads.append(str(a[0])) or load(cls, *a, **k)))
    monkeypatch.setattr(WanStereoPipeline, "encode_prompt", lambda self, *a, **k: encodes.append(a[0]) or encode(self, *a, **k))
    return loads, encodes


def test_eval_config_names_the_wan_checkpoint_once_and_the_override_reaches_every_row(tmp_path: Path) -> None:
    config = REPO / "stereo_lit" / "configs" / "eval_tartanair.yaml"
    text = config.read_text()
    assert text.count(WAN_REAL) == 1 and "wan_checkpoint: " + WAN_REAL in text
    other = str(tmp_path / "my-wan")
    cli = build_cli(["-c", str(config), "--model.wan_checkpoint", other], run=False)
    wan = [m for m in cli.model.methods if isinstance(m, WanStereoGenerator) and m.backbone != "vace"]
    assert [m.name for m in wan] == ["wan_x0_blend", "wan_latent_shift", "wan_repaint"]
    assert all(m.checkpoint == Path(other) for m in wan)
    # the VACE row takes model.vace_checkpoint (a VACE model, not the T2V one)
    (vace,) = [m for m in cli.model.methods if isinstance(m, WanStereoGenerator) and m.backbone == "vace"]
    assert vace.checkpoint == Path(VACE_REAL)
    # a row that names its own checkpoint keeps it
    own = str(tmp_path / "wan-14b")
    cli = build_cli(["-c", str(config), "--model.wan_checkpoint", other, "--model.generator.init_args.checkpoint", own],
                    run=False)
    assert cli.model.generator.checkpoint == Path(own)
    assert all(m.checkpoint == Path(other) for m in cli.model.baselines
               if isinstance(m, WanStereoGenerator) and m.backbone != "vace")


def test_eval_config_runs_every_method_including_each_wan_strategy(
    tiny_checkpoints: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "tartanair"
    write_tartanair_sequence(render_sequence(9, 32, 48, seed=1), root / "EnvA" / "Easy" / "P000")
    config = _tiny_config(
        "eval_tartanair.yaml", tiny_checkpoints, tmp_path,
        **{"window: 33": "window: 5", "overlap: 9": "overlap: 1", "clip_frames: 65": "clip_frames: 9", "stride: 65": "stride: 9",
           "size: [480, 640]": "size: null"},
    )
    out = tmp_path / "out"
    loads = _count_wan_loads(monkeypatch)
    umt5_loads, encodes = _count_text_encoder_work(monkeypatch)
    cli = build_cli(
        ["test", "-c", str(config), "--data.init_args.root", str(root), "--model.output.dir", str(out),
         "--trainer.logger", "false"]
    )
    # three T2V rows naming one checkpoint: one text encoder / transformer / VAE, loaded once; the VACE row its own
    wan = [m for m in cli.model.methods if isinstance(m, WanStereoGenerator) and m.backbone != "vace"]
    (vace,) = [m for m in cli.model.methods if isinstance(m, WanStereoGenerator) and m.backbone == "vace"]
    assert len(wan) == 3 and loads == [str(tiny_checkpoints / "Wan2.1-T2V-tiny-Diffusers"),
                                       str(tiny_checkpoints / "Wan2.1-VACE-tiny-Diffusers")]
    assert all(m.components is wan[0].components for m in wan) and vace.components is not wan[0].components
    # the T2V and VACE folders hold identical UMT5 weights: one text encoder for the four Wan rows,
    # and the clip's one prompt (no caption: the generators' "") encoded once for all of them
    assert vace.pipeline.text_encoder is wan[0].pipeline.text_encoder and len(umt5_loads) == 1
    assert encodes == [""]
    table = json.loads((out / "eval" / "test_metrics.json").read_text())
    assert {"wan_x0_blend", "wan_latent_shift", "wan_repaint", vace.name, "copy_left", "warp_only", "warp_fill",
            "warp_fill_telea"} <= set(table["methods"])
    for row in table["methods"].values():
        assert row["psnr_all"] is None or row["psnr_all"] == "inf" or row["psnr_all"] > 0
    # 9-frame clips in 5-frame windows: the sampler reports its seams, the table measures them
    assert "seam_jump_ratio" in table["methods"]["wan_x0_blend"]
    assert "seam_jump_ratio" not in table["methods"]["warp_fill"]


def test_text_to_stereo_config_writes_both_eyes_and_depth(tiny_checkpoints: Path, tmp_path: Path) -> None:
    config = _tiny_config(
        "text_to_stereo.yaml", tiny_checkpoints, tmp_path,
        **{"num_frames: 81": "num_frames: 5", "height: 480": "height: 32", "width: 832": "width: 48",
           "window: 81": "window: 5"},
    )
    out = tmp_path / "out"
    build_cli(
        ["predict", "-c", str(config), "--model.output.dir", str(out), "--model.depth.input_size", "28",
         "--model.generator.init_args.overlap", "1"]
    )
    folders = [p for p in out.iterdir() if p.is_dir() and p.name.startswith("prompt_000_")]
    assert len(folders) == 1
    assert _decode(folders[0] / "sbs.mp4")[:3] == (5, 32, 96)
    assert _decode(folders[0] / "depth.mp4")[:3] == (5, 32, 48)
