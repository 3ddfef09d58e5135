"""`stereo-lit convert --method fast` without Lightning (stereo_lit.predict.direct): the same files
as `stereo-lit predict` with the same config, and a process that never imports Lightning."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from stereo_lit.cli import main
from stereo_lit.commands import convert
from stereo_lit.data import wild_videos
from stereo_lit.predict import direct

REPO = Path(__file__).resolve().parents[1]
LAYOUTS = "right,sbs,anaglyph,tb_half"


def _run(args: list[str], env: dict[str, str] | None = None) -> tuple[int | None, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code: int | None = 0
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
            except SystemExit as exc:
                code = exc.code
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return code, out.getvalue(), err.getvalue()


def _textured_clip(path: Path, num_frames: int = 12, height: int = 30, width: int = 48) -> Path:
    """A moving random texture (so a warp shows) with an inverse-depth ``.npy`` beside it: a ramp
    and a near box (so the warp opens holes the fill must close)."""
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 256, (height, width + num_frames, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "10", "preset": "ultrafast"}
        for t in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[:, t : t + width]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    depth = np.tile(np.linspace(0.2, 1.0, width, dtype=np.float32), (num_frames, height, 1))
    depth[:, 8:20, 10 : 22] = 3.0
    np.save(path.with_suffix(".npy"), depth)
    return path


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture()
def clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(wild_videos, "CHUNK_PIXELS", 5 * 30 * 48)  # 3 chunks of a 12-frame video
    return _textured_clip(tmp_path / "clip.mp4")


def test_direct_run_writes_predicts_files(clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Frame for frame, manifest for manifest: the direct run against the Lightning job of the same
    config. Compared bit for bit: the frames handed to each encoder, and the pictures the files
    decode to. (The files of identical runs used to differ now and then: x264 read the row padding
    FFmpeg leaves uninitialised, which the writer now zeroes, and x264's AVX-512 code depends on
    what the process's memory held before, which :func:`stereo_lit.io.encoder.x264_cpu_cap` keeps
    it from running.)"""
    from stereo_lit.io import video_writer

    handed: dict[str, list[np.ndarray]] = {}  # the frames each encoder is handed, in its pixel format
    encode_frames = video_writer.StreamingVideoWriter.encode_frames

    def record(self, frames) -> None:  # noqa: ANN001
        frames = list(frames)
        handed.setdefault(str(self.path), []).extend(frame.to_ndarray() for frame in frames)
        encode_frames(self, frames)

    monkeypatch.setattr(video_writer.StreamingVideoWriter, "encode_frames", record)
    flags = [str(clip), "--method", "fast", "--depth", str(clip.with_suffix(".npy")), "--layout", LAYOUTS,
             "--strength", "6", "--convergence", "0.3"]
    code, out_direct, err = _run(["convert", *flags, "-o", str(tmp_path / "direct")])
    assert code in (0, None), err
    code, out_lightning, err = _run(["convert", *flags, "-o", str(tmp_path / "lightning")], env={"STEREO_LIT_DIRECT": "0"})
    assert code in (0, None), err
    for name in LAYOUTS.split(","):
        direct_frames = handed[str(tmp_path / "direct" / "clip" / f"{name}.mp4")]
        lightning_frames = handed[str(tmp_path / "lightning" / "clip" / f"{name}.mp4")]
        assert len(direct_frames) == len(lightning_frames) == 12, name
        assert all(np.array_equal(a, b) for a, b in zip(direct_frames, lightning_frames)), name
        direct_file, lightning_file = (_frames(tmp_path / run / "clip" / f"{name}.mp4") for run in ("direct", "lightning"))
        assert len(direct_file) == len(lightning_file) == 12, name
        assert all(np.array_equal(a, b) for a, b in zip(direct_file, lightning_file)), name
    assert not np.array_equal(_frames(tmp_path / "direct" / "clip" / "right.mp4")[5], _frames(clip)[5])  # not the left eye
    manifests = [json.loads((tmp_path / run / "clip" / "stereo-lit.json").read_text()) for run in ("direct", "lightning")]
    for key in ("settings", "frames", "source", "depth_file"):
        assert manifests[0][key] == manifests[1][key], key
    assert {k: v["frames"] for k, v in manifests[0]["layouts"].items()} == {k: v["frames"] for k, v in manifests[1]["layouts"].items()}
    for out in (out_direct, out_lightning):
        assert "stereo outputs:" in out and "predict summary: 1 video(s): 1 finished, 0 skipped" in out
        assert "12 frames in" in out


def test_direct_run_resumes_what_the_lightning_job_finished(
    clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flags = [str(clip), "--method", "fast", "--depth", str(clip.with_suffix(".npy")), "-o", str(tmp_path / "out")]
    code, _, err = _run(["convert", *flags], env={"STEREO_LIT_DIRECT": "0"})
    assert code in (0, None), err
    sbs = tmp_path / "out" / "clip" / "sbs.mp4"
    written = sbs.stat().st_mtime_ns
    caplog.clear()
    code, out, err = _run(["convert", *flags])
    assert code in (0, None), err
    assert "finished (" in caplog.text and sbs.stat().st_mtime_ns == written  # same settings: nothing redone
    code, out, err = _run(["convert", *flags, "--strength", "3"])
    assert code in (0, None), err
    assert "redoing" in caplog.text and sbs.stat().st_mtime_ns != written


def test_direct_run_skips_an_unreadable_video_and_names_it(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Under the shipped ``on_error: skip`` one broken input is named and the other finishes; with
    depth from the files next to the videos (no depth model: ``model.depth: null``)."""
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    config = direct.apply_overrides(direct.load_config(convert.base_config("fast")), [
        ("--model.generator", convert.WARP_FILL), ("--model.depth", None), ("--model.output.dir", str(tmp_path / "out")),
        ("--data.init_args.source", [str(clip), str(broken)]), ("--model.output.layouts", ["sbs"]),
    ])
    assert direct.run_config(config) == 0
    out = capsys.readouterr().out
    assert "1 finished, 1 skipped" in out and "broken.mp4" in out
    assert len(_frames(tmp_path / "out" / "clip" / "sbs.mp4")) == 12


def test_a_direct_convert_never_imports_lightning(clip: Path, tmp_path: Path) -> None:
    """The point of the direct run: Lightning, torchmetrics and transformers stay out of the process,
    and so does jsonargparse (the short-error patch waits for the job code to import it)."""
    script = (
        "import sys\nfrom stereo_lit.cli import main\n"  # as the console script runs it (short errors included)
        f"sys.argv = ['stereo-lit', 'convert', {str(clip)!r}, '--method', 'fast', '--depth', {str(clip.with_suffix('.npy'))!r}, "
        f"'-o', {str(tmp_path / 'out')!r}]\nmain()\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'pytorch_lightning', 'torchmetrics', 'transformers', 'jsonargparse'})\n"
        "print('HEAVY', heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "STEREO_LIT_PROGRESS": "plain"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "HEAVY []" in result.stdout
    assert len(_frames(tmp_path / "out" / "clip" / "right.mp4")) == 12


def test_which_conversions_run_direct() -> None:
    assert convert.runs_direct("fast", [], False)
    assert not convert.runs_direct("wan", [], False)  # Wan jobs keep Lightning's trainer (precision, devices)
    assert not convert.runs_direct("fast", ["--trainer.devices", "2"], False)  # predict options: Lightning parses them
    assert not convert.runs_direct("fast", [], True)  # --print_config is LightningCLI's


def test_overrides_and_class_specs() -> None:
    config = {"model": {"depth": {"class_path": "a.B", "init_args": {"checkpoint": "x"}}}, "data": {"init_args": {}}}
    direct.apply_overrides(config, [("--model.depth.init_args.checkpoint", "y"), ("--model.output.dir", "out"),
                                    ("--data.init_args.source", ["a.mp4", "b.mp4"])])
    assert config["model"]["depth"] == {"class_path": "a.B", "init_args": {"checkpoint": "y"}}
    assert config["model"]["output"] == {"dir": "out"} and config["data"]["init_args"]["source"] == ["a.mp4", "b.mp4"]
    fill = direct.instantiate({"class_path": "stereo_lit.generators.geometric.WarpFill", "init_args": {"fill": "telea"}})
    assert type(fill).__name__ == "WarpFill" and fill.fill == "telea"
    with pytest.raises(ValueError, match="direct run reads"):
        direct.build({"model": {}, "data": {"class_path": "stereo_lit.data.StereoVideoDataModule"}})
    with pytest.raises(ValueError, match="evaluation"):
        direct.build({"model": {"evaluation": {}}, "data": {}})


@pytest.mark.parametrize("given", [None, "0"])
def test_the_cli_sets_thread_and_allocator_defaults_a_user_can_override(given: str | None) -> None:
    """OpenMP threads that sleep between regions, torch tensors on huge pages: set by ``stereo_lit.cli``
    before torch is imported (importing the CLI imports no torch); a value the user set is kept."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "THP_MEM_ALLOC_ENABLE")}
    if given is not None:
        env["THP_MEM_ALLOC_ENABLE"] = env["OMP_WAIT_POLICY"] = given
    script = ("import os, sys, stereo_lit.cli\n"
              "print('torch' in sys.modules, os.environ['OMP_WAIT_POLICY'], os.environ['THP_MEM_ALLOC_ENABLE'])")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**env, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == (["False", "PASSIVE", "1"] if given is None else ["False", "0", "0"])


def test_convert_with_a_depth_file_follows_each_chunks_frames(clip: Path, tmp_path: Path) -> None:
    """``--depth FILE`` (``PrecomputedDepth``) on streamed chunks: a box that comes nearer in every
    frame of the file has a larger disparity in every frame, across the three chunks. Before, each
    chunk took the file's first frames (the box's disparity fell back at every chunk), and uint8
    chunks rounded the depth to integers (plateaus)."""
    import torch

    depth = np.load(clip.with_suffix(".npy"))
    depth[:, 8:20, 10:22] = np.linspace(0.4, 0.9, depth.shape[0], dtype=np.float32)[:, None, None]  # inside the range
    np.save(clip.with_suffix(".npy"), depth)
    spec = {"class_path": "stereo_lit.depth.PrecomputedDepth", "init_args": {"path": str(clip.with_suffix(".npy"))}}
    config = direct.apply_overrides(direct.load_config(convert.base_config("fast")), [
        ("--model.generator", convert.WARP_FILL), ("--model.depth", spec), ("--model.output.dir", str(tmp_path / "out")),
        ("--data.init_args.source", str(clip)),
    ])
    model, data = direct.build(config)
    model._trainer = data.trainer = direct.RunState(datamodule=data, lightning_module=model)
    data.setup("predict")
    box = []
    for batch in data.predict_dataloader():
        assert batch["left"].dtype == torch.uint8  # a streamed chunk
        disparity, _ = model.disparity_for(batch)
        box += disparity[0, 0, :, 14, 16].tolist()
    assert len(box) == 12 and data.predict_items().__len__() == 3
    assert all(b > a + 1e-3 for a, b in zip(box, box[1:])), box


@pytest.mark.parametrize("estimator", [True, False])
def test_a_depth_file_beside_the_video_is_read_only_when_the_model_has_no_depth_of_its_own(
    clip: Path, tmp_path: Path, estimator: bool
) -> None:
    """With ``model.depth`` set (here ``--depth FILE``, as ``convert`` makes it) the model's depth wins,
    so the datamodule does not read, check and resize the ``NAME.npy`` beside the video for every
    chunk (about 1.6 s of a 70-frame 1080p conversion went to that); without one, it does."""
    spec = {"class_path": "stereo_lit.depth.PrecomputedDepth", "init_args": {"path": str(clip.with_suffix(".npy"))}}
    config = direct.apply_overrides(direct.load_config(convert.base_config("fast")), [
        ("--model.generator", convert.WARP_FILL), ("--model.depth", spec if estimator else None),
        ("--model.output.dir", str(tmp_path / "out")), ("--data.init_args.source", str(clip)),
    ])
    model, data = direct.build(config)
    model._trainer = data.trainer = direct.RunState(datamodule=data, lightning_module=model)
    data.setup("predict")
    batches = list(data.predict_dataloader())
    assert len(batches) == 3
    assert all(("depth" in batch) is (not estimator) for batch in batches)
    assert data.reads_depth_files() is (not estimator)
    disparity, _ = model.disparity_for(batches[1])  # the right depth either way: the box is nearer
    assert disparity[0, 0, 0, 14, 16] > disparity[0, 0, 0, 14, 40]


def test_window_depth_keeps_float_depth_for_uint8_chunks(tmp_path: Path) -> None:
    import torch

    from stereo_lit.depth.estimator import PrecomputedDepth
    from stereo_lit.depth.source import WindowDepth

    video = _textured_clip(tmp_path / "v.mp4")
    values = (np.arange(12, dtype=np.float32)[:, None, None] * 0.1 + 0.05) * np.ones((12, 30, 48), np.float32)
    np.save(tmp_path / "d.npy", values)
    batch = {
        "left": torch.zeros(1, 3, 4, 30, 48, dtype=torch.uint8), "video_path": [str(video)], "fps": [12.0],
        "num_frames": [12], "window_start": [6], "window_stop": [10], "padding": {"bottom": 0, "right": 0, "frames": 0},
    }
    depth, kind, wholes = WindowDepth(PrecomputedDepth(str(tmp_path / "d.npy"))).for_batch(batch)
    assert depth.dtype == torch.float32 and kind == "inverse_relative"
    np.testing.assert_allclose(depth[0, 0].numpy(), values[6:10], rtol=0, atol=1e-6)


def test_a_depth_file_follows_a_cut_and_a_lower_frame_rate_and_names_itself_when_short(tmp_path: Path) -> None:
    """``PrecomputedDepth.video_depth`` on the datamodule's timeline: a ``start_time`` cut and half the
    frame rate pick source frames 2, 4, 6, ...; a file with fewer frames than the video is refused by name."""
    from stereo_lit.depth.estimator import PrecomputedDepth
    from stereo_lit.depth.source import source_frame_indices

    video = _textured_clip(tmp_path / "v.mp4")  # 12 frames at 12 fps
    values = np.arange(12, dtype=np.float32)[:, None, None] * np.ones((12, 30, 48), np.float32)
    np.save(tmp_path / "d.npy", values)
    indices = source_frame_indices(str(video), fps=6.0, num_frames=5, source_range=(2, 12))
    assert indices == [2, 4, 6, 8, 10]
    depth = PrecomputedDepth(str(tmp_path / "d.npy")).video_depth(total_frames=5, size=(15, 24), frame_indices=indices)
    assert depth.shape == (5, 15, 24) and depth[1:3].shape == (2, 15, 24)
    np.testing.assert_allclose(depth[:][:, 7, 12], [2, 4, 6, 8, 10])
    assert float(depth[4][0, 0]) == 10.0
    np.save(tmp_path / "short.npy", values[:8])
    with pytest.raises(ValueError, match=r"short\.npy has 8 depth frames; the video needs 11"):
        PrecomputedDepth(str(tmp_path / "short.npy")).video_depth(total_frames=5, frame_indices=indices)
