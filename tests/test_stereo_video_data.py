"""StereoVideoDataModule on renderings of the synthetic scenes in every layout it reads."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from stereo_lit.data.stereo_frames import detect_layout, unsqueeze
from stereo_lit.data.stereo_video import StereoVideoDataModule, to_video
from stereo_lit.data.synthetic import render_sequence
from stereo_lit.stereo.projection import equirect_rays, pinhole_rays

T, H, W = 5, 44, 60  # odd sizes: padded to 48 x 64, never cropped


@pytest.fixture(scope="module")
def eyes() -> tuple[np.ndarray, np.ndarray]:
    seq = render_sequence(num_frames=T, height=H, width=W, seed=3)
    return seq.left, seq.right


def write_frames(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{k:04d}.png")
    return folder


def write_lossless(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    """FFV1 in Matroska: lossless, so decoding gives the exact frames back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def batches(source, **kwargs) -> list[dict]:
    dm = StereoVideoDataModule(source, window=kwargs.pop("window", 5), overlap=kwargs.pop("overlap", 0), **kwargs)
    return list(dm.test_dataloader())


def unpadded(batch: dict, key: str) -> torch.Tensor:
    p = batch["padding"]
    x = batch[key][0]
    return x[:, : x.shape[1] - int(p["frames"]), : x.shape[2] - int(p["bottom"]), : x.shape[3] - int(p["right"])]


def assert_exact_eyes(batch: dict, left: np.ndarray, right: np.ndarray) -> None:
    assert torch.equal(unpadded(batch, "left"), to_video(left))
    assert torch.equal(unpadded(batch, "right"), to_video(right))


@pytest.mark.parametrize("layout", ["sbs", "tb"])
@pytest.mark.parametrize("declared", [True, False])
def test_full_packed_frame_folders_give_exactly_the_rendered_eyes(tmp_path, eyes, layout, declared, caplog) -> None:
    left, right = eyes
    packed = np.concatenate([left, right], axis=2 if layout == "sbs" else 1)
    folder = write_frames(tmp_path / "clip", packed)
    with caplog.at_level(logging.INFO, logger="stereo_lit.data.stereo_video"):
        (batch,) = batches(folder, layout=layout if declared else "auto")
    if not declared:
        assert f"layout {layout} (" in caplog.text
    assert batch["left"].shape == (1, 3, 5, 48, 64)
    assert batch["padding"] == {"bottom": torch.tensor([4]), "right": torch.tensor([4]), "frames": torch.tensor([0])}
    assert_exact_eyes(batch, left, right)
    valid = batch["valid_left"][0, 0]
    assert valid[:, :H, :W].eq(1).all() and valid[:, H:].eq(0).all() and valid[:, :, W:].eq(0).all()
    assert torch.equal(batch["valid_right"], batch["valid_left"])
    assert batch["layout"] == [layout] and batch["rig"] == ["unknown"]
    for key in ("video_path", "sample_id", "caption", "fps", "num_frames", "window_start", "window_stop", "keep_start", "first_frame"):
        assert key in batch


def test_lossless_video_file_and_windows(tmp_path, eyes) -> None:
    left, right = eyes
    path = write_lossless(tmp_path / "film_LRF_Full_SBS.mkv", np.concatenate([left, right], axis=2))
    out = batches(path, window=5, overlap=1)  # 5 frames: one window
    assert len(out) == 1 and out[0]["layout"] == ["sbs"]
    assert_exact_eyes(out[0], left, right)
    long = np.concatenate([left, right[::-1]], axis=0), np.concatenate([right, left[::-1]], axis=0)  # 10 frames
    path = write_lossless(tmp_path / "long_SBS.mkv", np.concatenate(long, axis=2))
    windows = batches(path, window=5, overlap=1)
    assert [(int(b["window_start"]), int(b["window_stop"]), int(b["keep_start"])) for b in windows] == [(0, 5, 0), (4, 9, 5), (5, 10, 9)]
    for b in windows:
        s, e = int(b["window_start"]), int(b["window_stop"])
        assert_exact_eyes(b, long[0][s:e], long[1][s:e])
        assert b["num_frames"] == 10 and b["fps"] == 10.0


@pytest.mark.parametrize("layout", ["sbs_half", "tb_half"])
def test_half_layouts_are_detected_and_unsqueezed(tmp_path, layout) -> None:
    half_h, half_w = (H, W // 2) if layout == "sbs_half" else (H // 2, W)
    seq = render_sequence(num_frames=2, height=half_h, width=half_w, seed=5)
    packed = np.concatenate([seq.left, seq.right], axis=2 if layout == "sbs_half" else 1)
    assert packed.shape[1:3] == (H, W)
    assert detect_layout(packed[0])[0] == layout
    (batch,) = batches(write_frames(tmp_path / "half", packed), layout="auto")
    assert batch["layout"] == [layout]
    def stretch(frames: np.ndarray) -> torch.Tensor:  # bilinear, pixel-area aligned
        x = to_video(frames).permute(1, 0, 2, 3)
        return torch.nn.functional.interpolate(x, size=(H, W), mode="bilinear", align_corners=False).permute(1, 0, 2, 3)

    assert torch.allclose(unpadded(batch, "left")[:, :2], stretch(seq.left), atol=1e-6)
    assert torch.allclose(unpadded(batch, "right")[:, :2], stretch(seq.right), atol=1e-6)
    assert torch.equal(unsqueeze(to_video(seq.left), H, W), unpadded(batch, "left")[:, :2])
    assert int(batch["padding"]["frames"]) == 3  # 2 frames -> 5 (4k+1), last frame repeated
    assert batch["valid_left"][0, 0, 2:].eq(0).all()


def test_name_tags_decide_before_content() -> None:
    frame = np.zeros((40, 80, 3), np.uint8)
    assert detect_layout(frame, "trip_180x180_3dh_LR.mp4")[0] == "vr180_sbs"
    assert detect_layout(frame, "film_Half_SBS.mkv")[0] == "sbs_half"
    assert detect_layout(frame, "film_LRF_Full_SBS.mkv")[0] == "sbs"
    assert detect_layout(frame, "film_TB.mkv")[0] == "tb_half"  # wider than tall: half
    assert detect_layout(np.zeros((80, 40, 3), np.uint8), "film_TB.mkv")[0] == "tb"


def test_separate_eye_files_and_folders(tmp_path, eyes) -> None:
    left, right = eyes
    write_lossless(tmp_path / "pairs" / "shot_L.mkv", left)
    write_lossless(tmp_path / "pairs" / "shot_R.mkv", right)
    (batch,) = batches(tmp_path / "pairs")
    assert batch["layout"] == ["separate"] and batch["right_path"][0].endswith("shot_R.mkv")
    assert_exact_eyes(batch, left, right)
    write_frames(tmp_path / "rig" / "left", left)
    write_frames(tmp_path / "rig" / "right", right)
    (batch,) = batches(tmp_path / "rig", layout="separate")
    assert_exact_eyes(batch, left, right)
    write_lossless(tmp_path / "eyes" / "left" / "a.mkv", left)
    write_lossless(tmp_path / "eyes" / "right" / "a.mkv", right)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'eyes'}\tan actor walks\n")
    (batch,) = batches(listing)
    assert batch["caption"] == ["an actor walks"]
    assert_exact_eyes(batch, left, right)
    table = tmp_path / "clips.csv"  # a `datasets` table naming one eye file of a pair
    table.write_text(f"path,caption\n{tmp_path / 'pairs' / 'shot_R.mkv'},a shot\n")
    (batch,) = batches(table)
    assert batch["caption"] == ["a shot"] and batch["video_path"][0].endswith("shot_L.mkv")
    assert_exact_eyes(batch, left, right)


def _scene_colour(origin: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
    """A smoothly textured plane z = 2 m in front of a sky; ``[..., 3] -> [3, ...]``."""
    dz = rays[..., 2]
    t = torch.where(dz > 0.2, (2.0 - origin[2]) / dz.clamp_min(0.2), torch.zeros_like(dz))
    p = origin + t[..., None] * rays
    plane = torch.stack([0.5 + 0.35 * torch.sin(3.0 * p[..., 0] + 1.3 * p[..., 1] + c) for c in (0.0, 2.0, 4.0)], dim=0)
    sky = torch.stack([0.6 + 0.2 * rays[..., 1], 0.7 + 0.1 * rays[..., 0], torch.full_like(dz, 0.9)], dim=0)
    return torch.where(dz > 0.2, plane, sky)


def test_vr180_clips_project_to_the_pinhole_rendering_of_each_eye(tmp_path) -> None:
    baseline = 0.1
    origins = [torch.zeros(3, dtype=torch.float64), torch.tensor([baseline, 0.0, 0.0], dtype=torch.float64)]
    eq = [_scene_colour(o, equirect_rays(256, 256)) for o in origins]
    frame = (torch.cat(eq, dim=2).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    folder = write_frames(tmp_path / "trip_180x180_3dh_LR", np.stack([frame]))
    (batch,) = batches(folder, vr180_hfov_deg=90.0, vr180_size=(40, 48))
    assert batch["layout"] == ["vr180_sbs"] and batch["rig"] == ["parallel"]
    got_l, got_r = unpadded(batch, "left")[:, 0], unpadded(batch, "right")[:, 0]
    rays = pinhole_rays(40, 48, 90.0)
    want_l, want_r = (_scene_colour(o, rays).float() for o in origins)
    assert float((got_l - want_l).abs().max()) < 0.02
    assert float((got_r - want_r).abs().max()) < 0.02
    assert float((want_l - want_r).abs().max()) > 0.1  # the eyes do differ (parallax)
    fx = batch["intrinsics"][0, 0]
    assert math.isclose(float(fx), 23.5, rel_tol=1e-6) and math.isclose(float(batch["intrinsics"][0, 2]), 23.5, rel_tol=1e-6)


def test_reference_disparity_option_adds_matched_disparity(tmp_path, eyes) -> None:
    left, right = eyes
    (batch,) = batches(write_frames(tmp_path / "clip", np.concatenate([left, right], axis=2)), layout="sbs", reference_disparity=True)
    assert batch["disparity_left_px"].shape == batch["valid_left"].shape == (1, 1, 5, 48, 64)
    assert batch["disparity_source"] == ["matched"] and int(batch["reference_failed_px"]) > 0
    assert batch["valid_left"][0, 0, :, H:].eq(0).all()
    assert 0.3 < float(batch["valid_left"][0, 0, :, :H, :W].mean()) < 1.0


# ----------------------------------------------------------------------------- errors
def test_corrupt_and_empty_inputs_name_the_file(tmp_path) -> None:
    bad = tmp_path / "broken_SBS.mp4"
    bad.write_bytes(b"\x00\x01 not a video" * 50)
    with pytest.raises(Exception, match="broken_SBS.mp4"):
        StereoVideoDataModule(bad, window=5, overlap=0).setup()
    empty = tmp_path / "empty_SBS.mp4"
    empty.write_bytes(b"")
    with pytest.raises(Exception, match="empty_SBS.mp4.*empty"):
        StereoVideoDataModule(empty, window=5, overlap=0).setup()
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="nothing"):
        StereoVideoDataModule(tmp_path / "nothing", window=5, overlap=0).setup()
    png = tmp_path / "frames"
    write_frames(png, np.zeros((2, 8, 16, 3), np.uint8))
    (png / "0001.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="0001.png"):
        batches(png, layout="sbs")


def test_mismatched_eyes_name_both_files(tmp_path, eyes) -> None:
    left, right = eyes
    write_lossless(tmp_path / "a" / "shot_L.mkv", left)
    write_lossless(tmp_path / "a" / "shot_R.mkv", right[:3])
    with pytest.raises(ValueError, match=r"different lengths.*shot_L.mkv.*shot_R.mkv"):
        StereoVideoDataModule(tmp_path / "a", window=5, overlap=0).setup()
    write_frames(tmp_path / "b" / "left", left)
    write_frames(tmp_path / "b" / "right", right[:, :-2])
    with pytest.raises(ValueError, match=r"different sizes.*left.*right"):
        StereoVideoDataModule(tmp_path / "b", window=5, overlap=0).setup()
    write_lossless(tmp_path / "f" / "shot_L.mkv", left, fps=10)
    write_lossless(tmp_path / "f" / "shot_R.mkv", right, fps=12)
    with pytest.raises(ValueError, match=r"frame rates.*shot_L.mkv.*shot_R.mkv"):
        StereoVideoDataModule(tmp_path / "f", window=5, overlap=0).setup()
    write_lossless(tmp_path / "c" / "lonely_L.mkv", left)
    with pytest.raises(ValueError, match="lonely_L.mkv.*partner"):
        StereoVideoDataModule(tmp_path / "c", window=5, overlap=0).setup()


def test_mono_footage_and_bad_options_are_clear(tmp_path, eyes) -> None:
    left, _ = eyes
    mono = left  # an ordinary (mono) frame: neither split gives two alike halves
    with pytest.raises(ValueError, match="set layout"):
        StereoVideoDataModule(write_frames(tmp_path / "mono", mono), window=5, overlap=0).setup()
    with pytest.raises(ValueError, match="layout"):
        StereoVideoDataModule(tmp_path, layout="anaglyph")
    with pytest.raises(ValueError, match="layout='separate'"):
        StereoVideoDataModule(write_frames(tmp_path / "packed", np.concatenate([left, left], 2)), layout="separate", window=5, overlap=0).setup()


def test_converged_clip_reference_has_the_known_zero_parallax_shift(tmp_path) -> None:
    import cv2

    from stereo_lit.metrics.reference_disparity import zero_parallax_shift

    noise = np.random.default_rng(4).uniform(0, 255, (48, 160, 3)).astype(np.float32)
    texture = np.clip(cv2.GaussianBlur(noise, (0, 0), 1.2) * 1.8 - 100, 0, 255).astype(np.uint8)
    x = np.arange(96)
    disparity, convergence = 2, 5  # a plane at 2 px, then the right view moved 5 px right: -3 px
    left, right = texture[:, x + 20], texture[:, x + 20 + disparity - convergence]
    folder = write_frames(tmp_path / "film_LRF_Full_SBS", np.concatenate([left, right], axis=1)[None])
    (batch,) = batches(folder, rig="converged", reference_disparity=True, reference_max_disparity_pct=10.0)
    assert batch["rig"] == ["converged"]
    d, valid = batch["disparity_left_px"][0, 0, 0], batch["valid_left"][0, 0, 0]
    assert float(valid.mean()) > 0.8
    assert zero_parallax_shift(d, valid) == pytest.approx(disparity - convergence, abs=0.25)
