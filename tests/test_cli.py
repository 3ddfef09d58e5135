"""The real `stereo-lit` CLI: every YAML config, predict and test end to end on a tiny sequence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import pytest

from stereo_lit.cli import build_cli
from stereo_lit.data.synthetic import render_sequence, write_tartanair_sequence

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "stereo_lit" / "configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def tiny_sequence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """9 frames of 48x64, TartanAir v1 layout, exact ground truth."""
    root = tmp_path_factory.mktemp("seq") / "synthetic"
    write_tartanair_sequence(render_sequence(9, 48, 64, seed=3), root)
    return root


def _decode(path: Path) -> tuple[int, int, int, bool]:
    """(frames, height, width, has_audio) of an mp4, by decoding every frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(stream)]
        return len(frames), frames[0].height, frames[0].width, bool(container.streams.audio)


def test_configs_exist() -> None:
    names = {c.name for c in CONFIGS}
    assert {"demo.yaml", "predict_wild.yaml", "text_to_stereo.yaml", "eval_tartanair.yaml"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_config_builds_through_the_cli(config: Path) -> None:
    """Parsing and instantiating the model and datamodule (weights load lazily, on first use)."""
    cli = build_cli(["-c", str(config)], run=False)
    assert cli.model.generator is not None
    names = [m.name for m in cli.model.methods]
    assert len(names) == len(set(names))
    assert cli.datamodule is not None


def test_a_config_with_an_unknown_key_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "stereo_lit" / "configs" / "demo.yaml").read_text().replace("    dir:", "    dri:"))
    assert "dri:" in bad.read_text()
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["-c", str(bad)], run=False)
    assert exit_info.value.code != 0


def test_predict_writes_decodable_stereo_videos(tiny_sequence: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_cli(
        ["predict", "-c", str(REPO / "stereo_lit/configs/demo.yaml"), "--data.init_args.root", str(tiny_sequence),
         "--data.init_args.window", "5", "--data.init_args.overlap", "1", "--model.output.dir", str(out),
         "--model.output.layouts", "[right, sbs, sbs_half, tb, anaglyph]"]
    )
    folders = [p for p in out.iterdir() if p.is_dir()]
    assert len(folders) == 1
    video_dir = folders[0]
    assert _decode(video_dir / "right.mp4")[:3] == (9, 48, 64)
    assert _decode(video_dir / "sbs.mp4")[:3] == (9, 48, 128)
    assert _decode(video_dir / "sbs_half.mp4")[:3] == (9, 48, 64)
    assert _decode(video_dir / "tb.mp4")[:3] == (9, 96, 64)
    assert _decode(video_dir / "anaglyph.mp4")[:3] == (9, 48, 64)
    assert not list(video_dir.glob(".*partial*"))  # nothing half-written left behind


def test_test_writes_one_table_with_a_row_per_method(tiny_sequence: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_cli(
        ["test", "-c", str(REPO / "stereo_lit/configs/demo.yaml"), "--data.init_args.root", str(tiny_sequence),
         "--data.init_args.clip_frames", "9", "--model.output.dir", str(out)]
    )
    table = json.loads((out / "eval" / "test_metrics.json").read_text())
    rows = table["methods"]
    assert {"warp_fill", "copy_left", "warp_only", "warp_fill_telea"} <= set(rows)
    for name in ("psnr_all", "psnr_visible", "psnr_disoccluded", "ssim_all", "ssim_visible", "ssim_disoccluded"):
        assert name in rows["warp_fill"]
    # real behaviour, not just shapes: the warp beats copying the left view, and filling beats holes
    assert rows["warp_fill"]["psnr_visible"] > rows["copy_left"]["psnr_visible"] + 5
    assert rows["warp_fill"]["psnr_disoccluded"] > rows["warp_only"]["psnr_disoccluded"]
    assert "ground truth" in table["depth"]
    assert (out / "eval" / "test_metrics.md").read_text().count("| warp_fill |") == 1
    assert (out / "eval" / "test_metrics.csv").is_file()


def test_console_script_exits_zero_and_reports_a_missing_folder(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("stereo-lit")
    ok = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "predict" in ok.stdout
    missing = tmp_path / "no_such_sequence"
    bad = subprocess.run(
        [str(exe), "predict", "-c", str(REPO / "stereo_lit/configs/demo.yaml"), "--data.init_args.root", str(missing),
         "--model.output.dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )
    assert bad.returncode != 0
    assert str(missing) in bad.stderr


def test_test_logs_scalars_and_preview_gifs_to_tensorboard(tiny_sequence: Path, tmp_path: Path) -> None:
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "out"
    build_cli(
        ["test", "-c", str(REPO / "stereo_lit/configs/demo.yaml"), "--data.init_args.root", str(tiny_sequence),
         "--data.init_args.clip_frames", "9", "--model.output.dir", str(out),
         "--trainer.logger", "lightning.pytorch.loggers.TensorBoardLogger",
         "--trainer.logger.save_dir", str(tmp_path / "tb")]
    )
    events = EventAccumulator(str(next((tmp_path / "tb").rglob("events.out.tfevents.*")).parent), size_guidance={"images": 0})
    events.Reload()
    assert "test/warp_fill/psnr_visible" in events.Tags()["scalars"]
    tags = [t for t in events.Tags()["images"] if t.startswith("test_preview/warp_fill/")]
    assert tags
    gif = Image.open(__import__("io").BytesIO(events.Images(tags[0])[0].encoded_image_string))
    assert gif.n_frames == 9 and gif.size == (3 * 64, 48)  # left | produced right | true right
