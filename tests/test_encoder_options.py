"""Encoder settings and colour metadata of the outputs (issue 14, item 6, encoder part)."""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from stereo_lit.io.output_manifest import MANIFEST_NAME
from stereo_lit.io.video_writer import (
    COLOR_FIELDS, EncoderOptions, StreamingVideoWriter, read_color_metadata, resolve_encoder, write_video,
)
import stereo_lit.io.encoder as encoder_module

BT709 = {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 1}  # FFmpeg enum values
# a saturated colour: BT.601 and BT.709 matrices decode it differently by tens of levels
RED = np.array([200, 40, 30], np.uint8)


def _stream_info(path: Path) -> tuple[str, str, dict[str, int], int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        frames = sum(1 for _ in container.decode(stream))
        return ctx.name, ctx.pix_fmt, {k: int(getattr(ctx, k)) for k in COLOR_FIELDS}, frames


def _decoded(path: Path) -> np.ndarray:
    """Decoded RGB the way the reader does it (``to_ndarray``: the frame's own matrix)."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def write_tagged_source(path: Path, tags: dict[str, int], frames: int = 5, size: tuple[int, int] = (32, 48),
                        audio: bool = False) -> Path:
    """An mp4 written directly with PyAV: ``tags`` on the stream, the RGB -> YUV conversion
    with the tagged matrix and range, flat :data:`RED` frames (and optionally an aac track)."""
    h, w = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "10"}
        for key, value in tags.items():
            setattr(stream.codec_context, key, value)
        a_stream = container.add_stream("aac", rate=16000) if audio else None
        if a_stream is not None:
            a_stream.layout = "mono"
        rgb = np.broadcast_to(RED, (h, w, 3)).copy()
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace=tags.get("colorspace"), dst_color_range=tags.get("color_range"),
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if a_stream is not None:
            wave = (0.3 * np.sin(np.arange(16000 * frames // 10) / 16000.0 * 2 * np.pi * 440)).astype(np.float32)
            for offset in range(0, len(wave) - 1024 + 1, 1024):
                frame = av.AudioFrame.from_ndarray(wave[None, offset:offset + 1024], format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 16000, offset, Fraction(1, 16000)
                for packet in a_stream.encode(frame):
                    container.mux(packet)
            for packet in a_stream.encode():
                container.mux(packet)
    return path


@pytest.fixture
def cpu_without_avx512(monkeypatch: pytest.MonkeyPatch) -> None:
    """x264's own CPU detection (no cap), whatever this machine's CPU: the codec options as they were."""
    monkeypatch.setattr(encoder_module, "cpu_features", lambda: {})


def test_defaults_are_the_historical_encoder_with_a_20_frame_lookahead(cpu_without_avx512: None) -> None:
    options = EncoderOptions()
    assert (options.codec, options.crf, options.bit_depth, options.preset, options.hardware) == ("h264", 18, 8, "medium", False)
    assert resolve_encoder(options) == ("libx264", "yuv420p", {"crf": "18", "preset": "medium", "x264-params": "rc-lookahead=20"})
    assert resolve_encoder(EncoderOptions(lookahead=None)) == ("libx264", "yuv420p", {"crf": "18", "preset": "medium"})
    assert resolve_encoder(EncoderOptions(codec="h265", lookahead=8))[2]["x265-params"] == "log-level=error:rc-lookahead=8"
    assert StreamingVideoWriter("x.mp4", 10, crf=23).encoder == EncoderOptions(crf=23)  # the old crf argument


def test_frames_larger_than_1080p_sbs_get_a_shorter_lookahead_but_not_below_ten(cpu_without_avx512: None) -> None:
    from stereo_lit.io.encoder import lookahead_frames

    default = EncoderOptions()
    assert [lookahead_frames(default, h, w) for h, w in [(32, 48), (1080, 1920), (1080, 3840)]] == [20, 20, 20]
    assert lookahead_frames(default, 1440, 3840) == 15  # 5.5 Mpix: 15 frames hold no more than 20 of 1080p SBS
    assert [lookahead_frames(default, h, w) for h, w in [(2160, 3840), (2160, 7680)]] == [10, 10]
    assert lookahead_frames(EncoderOptions(lookahead=5), 2160, 7680) == 5  # never above the setting
    assert lookahead_frames(EncoderOptions(lookahead=None), 2160, 7680) is None
    assert resolve_encoder(default, 2160, 3840)[2]["x264-params"] == "rc-lookahead=10"


AVX512_CPU = {name: True for name in (*encoder_module.X264_AVX512_FEATURES, "AVX2", "FMA3", "SSE42")}


def test_x264_is_kept_to_avx2_on_a_cpu_where_it_would_run_its_avx512_code(monkeypatch: pytest.MonkeyPatch) -> None:
    assert encoder_module.x264_cpu_cap(AVX512_CPU) == "AVX2"
    assert encoder_module.x264_cpu_cap({**AVX512_CPU, "AVX512BW": False}) is None  # x264 would not run AVX-512 there
    assert encoder_module.x264_cpu_cap({"AVX2": True, "FMA3": True}) is None
    assert encoder_module.x264_cpu_cap({}) is None
    monkeypatch.setattr(encoder_module, "cpu_features", lambda: AVX512_CPU)
    assert resolve_encoder(EncoderOptions())[2]["x264-params"] == "rc-lookahead=20:asm=AVX2"
    assert resolve_encoder(EncoderOptions(lookahead=None))[2]["x264-params"] == "asm=AVX2"
    assert resolve_encoder(EncoderOptions(codec="h265"))[2]["x265-params"] == "log-level=error:rc-lookahead=20"  # x265 only on request


def test_this_cpus_features_come_from_numpy() -> None:
    """The probe finds NumPy's run-time detection (empty would silently leave x264 uncapped)."""
    import platform

    features = encoder_module.cpu_features()
    assert features and all(isinstance(v, bool) for v in features.values())
    if platform.machine() in ("x86_64", "AMD64"):
        assert {"AVX2", *encoder_module.X264_AVX512_FEATURES} <= set(features)  # the names the cap reads


def test_the_same_frames_make_the_same_stream_twice_in_one_process(tmp_path: Path) -> None:
    """x264's AVX-512 code writes bytes that depend on what the process's memory held before (a
    second encode of these frames differed from the first in every one of five tries on an AVX-512
    CPU): the cap keeps them equal. The memory is filled with junk before each encode."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:180, 0:320].astype(np.float32)
    frames = []
    for t in range(30):  # a moving texture with noise: the lookahead and the macroblock tree have work
        picture = 128 + 60 * np.sin((xx + 3 * t) / 9.0) * np.cos((yy - 2 * t) / 7.0) + rng.normal(0, 12, yy.shape)
        frames.append(np.stack([picture, picture[::-1], picture[:, ::-1]], -1).clip(0, 255).astype(np.uint8))

    def packets(name: str, junk: int) -> list[bytes]:
        dirty = [np.full(size, junk, np.uint8) for size in (1 << 16, 1 << 18, 1 << 20, 3 << 20) for _ in range(4)]
        del dirty
        path = write_video(tmp_path / name, np.stack(frames), 24)
        with av.open(str(path)) as container:
            return [bytes(packet) for packet in container.demux(video=0) if packet.size]

    first = packets("first.mp4", 77)
    for i, junk in enumerate((150, 200)):
        assert packets(f"again{i}.mp4", junk) == first


@pytest.mark.parametrize("lookahead,expected", [(None, b"rc_lookahead=40"), (20, b"rc_lookahead=20"), (5, b"rc_lookahead=5")])
def test_the_lookahead_reaches_x264(tmp_path: Path, lookahead: int | None, expected: bytes) -> None:
    """x264 writes its settings into the stream (an SEI message): the file says what ran."""
    frames = np.random.default_rng(0).integers(0, 255, (3, 32, 48, 3), dtype=np.uint8)
    path = write_video(tmp_path / "out.mp4", frames, 10, encoder={"lookahead": lookahead})
    assert expected + b" " in path.read_bytes()


@pytest.mark.parametrize(
    "codec,bit_depth,name,pix_fmt",
    [("h264", 8, "h264", "yuv420p"), ("h264", 10, "h264", "yuv420p10le"),
     ("h265", 8, "hevc", "yuv420p"), ("h265", 10, "hevc", "yuv420p10le")],
)
def test_each_codec_and_bit_depth_decodes_with_that_codec_and_pixel_format(
    tmp_path: Path, codec: str, bit_depth: int, name: str, pix_fmt: str,
) -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(16, 240, (1, 8, 8, 1), dtype=np.uint8).repeat(8, 1).repeat(8, 2).repeat(3, 3)
    frames = np.repeat(grey, 5, axis=0)  # grey 8x8 blocks: no chroma to subsample
    path = write_video(tmp_path / "out.mp4", frames, 10, encoder={"codec": codec, "bit_depth": bit_depth, "preset": "ultrafast"})
    got_name, got_fmt, _, count = _stream_info(path)
    assert (got_name, got_fmt, count) == (name, pix_fmt, 5)
    if codec == "h265":
        with av.open(str(path)) as container:
            assert container.streams.video[0].codec_tag == "hvc1"  # the mp4 tag Apple players take
    # flat grey blocks survive nearly unchanged at CRF 18
    assert np.abs(_decoded(path).astype(int) - frames).mean() < 3.0


def test_bad_encoder_options_are_named() -> None:
    with pytest.raises(ValueError, match="model.output.encoder.codec"):
        EncoderOptions(codec="vp9")
    with pytest.raises(ValueError, match="model.output.encoder.bit_depth"):
        EncoderOptions(bit_depth=12)
    with pytest.raises(ValueError, match="model.output.encoder.preset"):
        EncoderOptions(preset="p4")
    with pytest.raises(ValueError, match="model.output.encoder.lookahead"):
        EncoderOptions(lookahead=-1)


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_h265_refuses_frames_its_encoder_crashes_on(tmp_path: Path, bit_depth: int) -> None:
    writer = StreamingVideoWriter(tmp_path / "small.mp4", 10, encoder=EncoderOptions(codec="h265", bit_depth=bit_depth))
    with pytest.raises(ValueError, match="at least 64x64"):
        writer.write(np.zeros((1, 32, 96, 3), np.uint8))
    writer.abort()


def test_hardware_encoder_is_used_when_it_opens_and_falls_back_with_a_message(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(encoder_module, "hardware_encoder_error", lambda name, fmt: None)
    name, pix_fmt, options = resolve_encoder(EncoderOptions(codec="h265", bit_depth=10, crf=21, hardware=True))
    assert (name, pix_fmt) == ("hevc_nvenc", "p010le")
    assert options == {"rc": "vbr", "cq": "21", "b": "0", "preset": "p4"}
    monkeypatch.setattr(encoder_module, "hardware_encoder_error", lambda name, fmt: f"{name} did not open (no GPU)")
    monkeypatch.setattr(encoder_module, "_warned", set())
    with caplog.at_level(logging.WARNING):
        name, pix_fmt, _ = resolve_encoder(EncoderOptions(hardware=True))
    assert (name, pix_fmt) == ("libx264", "yuv420p")
    assert "model.output.encoder.hardware: h264_nvenc did not open" in caplog.text and "libx264" in caplog.text


def test_hardware_probe_opens_the_encoder() -> None:
    """On this machine: None if NVENC really opens (then a file must encode), else a reason."""
    error = encoder_module.hardware_encoder_error("h264_nvenc", "yuv420p")
    assert error is None or "h264_nvenc" in error


@pytest.mark.parametrize("tags", [BT709, {**BT709, "color_range": 2}], ids=["bt709-limited", "bt709-full"])
def test_colour_tags_of_a_tagged_source_survive_with_its_matrix(tmp_path: Path, tags: dict[str, int]) -> None:
    source = write_tagged_source(tmp_path / "src.mp4", tags, audio=True)
    assert read_color_metadata(source) == tags
    decoded = _decoded(source)  # what the pipeline sees
    out = write_video(tmp_path / "out.mp4", decoded, 10, audio_from=source, color=read_color_metadata(source))
    _, _, got, count = _stream_info(out)
    assert got == tags and count == 5
    with av.open(str(out)) as container:
        assert container.streams.audio  # the remux with audio keeps the tags too
    # converted with the tagged matrix/range: decoding gives back the same colour
    assert np.abs(_decoded(out).astype(int) - decoded.astype(int)).max() <= 3
    assert np.abs(decoded.astype(int) - RED).max() <= 3


def test_untagged_sources_stay_untagged(tmp_path: Path) -> None:
    source = write_tagged_source(tmp_path / "src.mp4", {})
    assert read_color_metadata(source) is None
    out = write_video(tmp_path / "out.mp4", _decoded(source), 10, color=read_color_metadata(source))
    assert _stream_info(out)[2] == {"color_primaries": 2, "color_trc": 2, "colorspace": 2, "color_range": 0}


def test_cli_outputs_use_the_encoder_option_and_keep_the_source_colour(tmp_path: Path) -> None:
    from test_predict_outputs import _args

    from stereo_lit.cli import build_cli

    video = write_tagged_source(tmp_path / "clip.mp4", BT709, frames=5, size=(64, 96))  # libx265: sides >= 64
    np.save(tmp_path / "clip.npy", np.broadcast_to(np.linspace(0.2, 1.0, 96, dtype=np.float32), (5, 64, 96)).copy())
    out = tmp_path / "out"
    build_cli(_args(video, out, "--model.output.layouts", "[right, sbs, depth]", "--model.output.encoder.codec", "h265",
                    "--model.output.encoder.crf", "20"))
    for layout in ("right", "sbs"):
        name, pix_fmt, tags, count = _stream_info(out / "clip" / f"{layout}.mp4")
        assert (name, pix_fmt, tags, count) == ("hevc", "yuv420p", BT709, 5), layout
    assert _stream_info(out / "clip" / "depth.mp4")[2]["colorspace"] == 2  # a colour map, not the source's pixels
    manifest = json.loads((out / "clip" / MANIFEST_NAME).read_text())
    assert manifest["settings"]["encoder"] == {"codec": "h265", "crf": 20, "bit_depth": 8, "preset": "medium", "hardware": False, "lookahead": 20}


def test_rgb_frame_reads_the_array_in_place_and_equals_the_copy() -> None:
    """Frames with contiguous rows are wrapped, not copied (two copies per frame before); any
    other layout is copied first; both give the same picture and the same yuv420p planes."""
    from stereo_lit.io.video_writer import rgb_frame

    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    wrapped = rgb_frame(video[0])
    assert wrapped.planes[0].buffer_ptr == video[0].ctypes.data  # the array's own memory
    cropped = video[1, :, :20]  # rows padded: still contiguous within a row
    assert rgb_frame(cropped).planes[0].buffer_ptr == cropped.ctypes.data
    for array in (video[0], cropped, video[2, :, ::2], video[2].transpose(1, 0, 2)):
        frame = rgb_frame(array)
        np.testing.assert_array_equal(frame.to_ndarray(format="rgb24"), array)
        copied = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
        np.testing.assert_array_equal(
            frame.reformat(format="yuv420p").to_ndarray(), copied.reformat(format="yuv420p").to_ndarray()
        )


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "nv12", "yuv420p10le"])
def test_row_padding_is_zeroed_and_the_picture_kept(pix_fmt: str) -> None:
    """FFmpeg leaves the bytes past each row's end uninitialised and x264 reads some of them:
    the writer zeroes them, picture bytes untouched (a 40-px frame's rows are
    20, 40 or 80 bytes of 32, 64 or 96)."""
    from stereo_lit.io.video_writer import zero_row_padding

    frame = av.VideoFrame(40, 30, pix_fmt)
    rows, used = [], {}
    for component in frame.format.components:
        used[component.plane] = used.get(component.plane, 0) + component.width * ((component.bits + 7) // 8)
    for plane in frame.planes:  # a picture of 7s and padding of 0xFF, as garbage may be
        array = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        array[:] = 0xFF
        array[:, : used[len(rows)]] = 7
        rows.append(array)
    assert any(used[i] < frame.planes[i].line_size for i in used)  # there is padding to clear
    zero_row_padding(frame)
    for index, array in enumerate(rows):
        assert (array[:, : used[index]] == 7).all() and (array[:, used[index]:] == 0).all(), index


def test_the_writer_hands_the_encoder_frames_with_zeroed_padding(tmp_path: Path, monkeypatch) -> None:
    """Every frame the encoder receives (``_frame``'s, passed straight to ``encode``) is in its pixel
    format with zeroed row padding, with and without the source's colour tags."""
    from stereo_lit.io import video_writer

    seen = []
    make = video_writer.StreamingVideoWriter._frame

    def spy(self, rgb):  # noqa: ANN001, ANN202
        frame = make(self, rgb)
        seen.append((frame.format.name, [np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:, p.width:].copy()
                                         for p in frame.planes]))
        return frame

    monkeypatch.setattr(video_writer.StreamingVideoWriter, "_frame", spy)
    for color in (None, {"colorspace": 1, "color_range": 1}):
        writer = StreamingVideoWriter(tmp_path / f"{bool(color)}.mp4", 12, color=color)
        writer.write(np.random.default_rng(0).integers(0, 256, (3, 30, 40, 3), dtype=np.uint8))
        writer.close()
    assert len(seen) == 6 and all(name == "yuv420p" for name, _ in seen)
    assert any(pad.size for _, pads in seen for pad in pads)  # 20-byte chroma rows of 32: there is padding
    assert all(not pad.any() for _, pads in seen for pad in pads)
