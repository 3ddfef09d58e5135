"""Skips that skip (issue 10, items 5, 11, 12): through the real CLI (``stereo_lit.cli.main``).

Every per-video error, wherever it is raised (data, depth, generator), is caught by
``on_error: skip``, named, and counted in the summary; later videos still finish; a run
in which every video failed exits non-zero; a skipped TartanAir clip is dropped from the
table (never replaced by another clip) and the table names it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch

from stereo_lit.cli import main
from stereo_lit.data.synthetic import render_sequence, write_tartanair_sequence
from stereo_lit.generators.base import StereoOutput
from stereo_lit.generators.geometric import WarpFill
from test_video_reader import write_test_clip

REPO = Path(__file__).resolve().parents[1]


class FailOnVideo(WarpFill):
    """WarpFill that raises inside ``generate`` for frames whose grey level says "video b"."""

    def generate(self, left: torch.Tensor, disparity_px: torch.Tensor, **kwargs: Any) -> StereoOutput:
        if float(left[:, :, 0].mean()) > 0.9:  # only the all-white clip
            raise RuntimeError("generator exploded on purpose")
        return super().generate(left, disparity_px, **kwargs)


class BadShapeOnVideo(WarpFill):
    """WarpFill whose right view of the all-white clip has half the height: the writer fails."""

    def generate(self, left: torch.Tensor, disparity_px: torch.Tensor, **kwargs: Any) -> StereoOutput:
        out = super().generate(left, disparity_px, **kwargs)
        if float(left[:, :, 0].mean()) > 0.9:
            out.right = out.right[..., : out.right.shape[-2] // 2, :]
        return out


def write_faststart_clip(path: Path, num_frames: int, height: int = 32, width: int = 48, white: bool = False) -> None:
    """An mp4 with its index (moov) first, so cutting its tail keeps a header that counts every frame."""
    container = av.open(str(path), mode="w", options={"movflags": "faststart"})
    stream = container.add_stream("mpeg4", rate=10)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"qscale": "2"}
    for k in range(num_frames):
        frame = np.full((height, width, 3), 255 if white else (10 * k) % 250, np.uint8)
        frame[:, : k % width] = 128
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def _decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _predict(source: Path, out: Path, *extra: str) -> list[str]:
    return [
        "predict", "-c", str(REPO / "stereo_lit/configs/predict_wild.yaml"),
        "--model.generator", "stereo_lit.generators.geometric.WarpFill", "--model.depth", "null",
        "--model.output.dir", str(out), "--model.output.layouts", "[sbs]", "--data.init_args.source", str(source),
        "--data.init_args.window", "5", "--data.init_args.overlap", "1", "--data.init_args.on_error", "skip", *extra,
    ]


def _depth_file(video: Path, num_frames: int, value: float | None = None) -> None:
    depth = np.linspace(0.1, 1.0, 32 * 48, dtype=np.float32).reshape(32, 48)
    depth = np.repeat(depth[None], num_frames, axis=0)
    if value is not None:
        depth[:] = value
    np.save(video.with_suffix(".npy"), depth)


def test_errors_from_data_depth_and_generator_skip_only_their_video(
    tmp_path: Path, tiny_checkpoints: Path, capsys: pytest.CaptureFixture
) -> None:
    """a: fine; b: header says 40 frames, 8 decode (fails in whole-video depth); c: fine;
    d: generator error. Later videos finish, the summary names b and d, exit status 0."""
    videos = tmp_path / "videos"
    videos.mkdir()
    write_faststart_clip(videos / "a.mp4", 9)
    write_faststart_clip(videos / "b_truncated.mp4", 40)
    data = (videos / "b_truncated.mp4").read_bytes()
    (videos / "b_truncated.mp4").write_bytes(data[: len(data) // 2])
    write_faststart_clip(videos / "c.mp4", 9)
    write_faststart_clip(videos / "d_white.mp4", 9, white=True)
    out = tmp_path / "out"
    main(_predict(
        videos, out, "--model.generator", "test_errors_skip.FailOnVideo",
        "--model.depth", "stereo_lit.depth.VDAEstimator",
        "--model.depth.checkpoint", str(tiny_checkpoints / "video_depth_anything_tiny.pth"),
        "--model.depth.input_size", "28", "--model.depth.device", "cpu", "--model.depth.progress", "false",
        "--model.depth.cache_dir", str(tmp_path / "depth_cache"),
    ))
    printed = capsys.readouterr().out
    assert _decoded_frames(out / "a" / "sbs.mp4") == 9
    assert _decoded_frames(out / "c" / "sbs.mp4") == 9  # after the truncated one
    assert not (out / "b_truncated" / "sbs.mp4").exists() and not (out / "d_white" / "sbs.mp4").exists()
    assert "4 video(s): 2 finished, 2 skipped" in printed
    assert f"skipped {videos / 'b_truncated.mp4'}" in printed
    assert f"skipped {videos / 'd_white.mp4'}: RuntimeError: generator exploded on purpose" in printed


def test_a_video_without_depth_is_named_and_the_others_finish(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b_no_depth", "c"):
        write_test_clip(videos / f"{name}.mp4", num_frames=9, height=32, width=48)
    _depth_file(videos / "a.mp4", 9)
    _depth_file(videos / "c.mp4", 9)
    out = tmp_path / "out"
    main(_predict(videos, out))
    printed = capsys.readouterr().out
    assert _decoded_frames(out / "a" / "sbs.mp4") == 9 and _decoded_frames(out / "c" / "sbs.mp4") == 9
    assert "3 video(s): 2 finished, 1 skipped" in printed
    assert f"skipped {videos / 'b_no_depth.mp4'}: ValueError: {videos / 'b_no_depth.mp4'}: no depth file" in printed


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_a_lone_video_with_bad_depth_exits_non_zero_naming_the_file(
    tmp_path: Path, value: float, capsys: pytest.CaptureFixture
) -> None:
    video = tmp_path / "clip.mp4"
    write_test_clip(video, num_frames=9, height=32, width=48)
    _depth_file(video, 9, value=value)
    with pytest.raises(SystemExit) as exit_info:
        main(_predict(video, tmp_path / "out"))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "every video failed" in err and str(video.with_suffix(".npy")) in err
    assert not list((tmp_path / "out").rglob("*.mp4"))


def test_metric_depth_of_zero_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    video = tmp_path / "clip.mp4"
    write_test_clip(video, num_frames=9, height=32, width=48)
    _depth_file(video, 9)
    depth = np.load(video.with_suffix(".npy"))
    depth[3, 5, 5] = 0.0  # one pixel at 0 m: an infinite disparity
    np.save(video.with_suffix(".npy"), depth)
    with pytest.raises(SystemExit):
        main(_predict(video, tmp_path / "out", "--data.init_args.depth_kind", "metric_m"))
    assert "metric depth must be > 0 metres" in capsys.readouterr().err


def test_with_on_error_raise_the_error_names_the_file(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    write_test_clip(video, num_frames=9, height=32, width=48)
    _depth_file(video, 9, value=0.0)
    with pytest.raises(ValueError, match=r"clip\.npy \(frames 0\.\.\d+\): depth is all zero"):
        main(_predict(video, tmp_path / "out", "--data.init_args.on_error", "raise"))


# ----------------------------------------------------------------------------- test (TartanAir)
def _three_trajectories(root: Path) -> None:
    for k, name in enumerate(("P000", "P001", "P002")):
        write_tartanair_sequence(render_sequence(5, 48, 64, seed=k + 1), root / "env" / "Easy" / name)


def _test_table(root: Path, out: Path) -> dict[str, Any]:
    main([
        "test", "-c", str(REPO / "stereo_lit/configs/demo.yaml"), "--data.init_args.root", str(root),
        "--data.init_args.clip_frames", "5", "--data.init_args.on_error", "skip", "--model.output.dir", str(out),
        "--model.baselines", "[]",
    ])
    return json.loads((out / "eval" / "test_metrics.json").read_text())


def _same(a: Any, b: Any) -> bool:
    """Equal table cells (JSON: null for nan, strings for inf)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-6)
    return a == b


def test_a_skipped_clip_is_dropped_not_replaced_and_the_table_names_it(tmp_path: Path) -> None:
    root = tmp_path / "tartanair"
    _three_trajectories(root)
    png = sorted((root / "env" / "Easy" / "P001" / "image_left").glob("*.png"))[2]
    png.write_bytes(b"not a png")
    table = _test_table(root, tmp_path / "out")
    assert len(table["skipped"]) == 1 and "P001 (clip at frame 0)" in table["skipped"][0]["clip"]
    assert "unreadable image" in table["skipped"][0]["reason"]
    assert "skipped: 1 clip(s) not scored" in (tmp_path / "out" / "eval" / "test_metrics.md").read_text()

    clean = tmp_path / "clean"  # the same table from the two good trajectories alone
    _three_trajectories(clean)
    shutil.rmtree(clean / "env" / "Easy" / "P001")
    expected = _test_table(clean, tmp_path / "out_clean")
    assert expected["skipped"] == []
    differ = {
        (method, key): (value, expected["methods"][method][key])
        for method, row in table["methods"].items() for key, value in row.items()
        if not key.startswith(("sec_", "peak_")) and not _same(value, expected["methods"][method][key])  # time, memory
    }
    assert not differ


def test_a_trajectory_without_a_right_view_is_named(tmp_path: Path) -> None:
    root = tmp_path / "tartanair"
    write_tartanair_sequence(render_sequence(5, 48, 64, seed=1), root / "env" / "Easy" / "P000")
    shutil.rmtree(root / "env" / "Easy" / "P000" / "image_right")
    with pytest.raises(ValueError, match=r"P000: no right view \(image_right/\)"):
        main([
            "test", "-c", str(REPO / "stereo_lit/configs/demo.yaml"), "--data.init_args.root", str(root),
            "--data.init_args.clip_frames", "5", "--model.output.dir", str(tmp_path / "out"),
        ])


def test_a_writer_error_skips_only_its_video(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name, white in (("a_white", True), ("b", False)):
        write_faststart_clip(videos / f"{name}.mp4", 9, white=white)
        _depth_file(videos / f"{name}.mp4", 9)
    out = tmp_path / "out"
    main(_predict(videos, out, "--model.generator", "test_errors_skip.BadShapeOnVideo"))
    printed = capsys.readouterr().out
    assert _decoded_frames(out / "b" / "sbs.mp4") == 9
    assert not (out / "a_white" / "sbs.mp4").exists()
    assert "2 video(s): 1 finished, 1 skipped" in printed and f"skipped {videos / 'a_white.mp4'}" in printed
