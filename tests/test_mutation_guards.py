"""Lines a mutation review found unguarded by the fast suite (issue 20, item 6): each test
fails when its line is broken (the docstring says which mutation it catches)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, JpegImagePlugin

from stereo_lit.diffusion.options import SamplingOptions
from stereo_lit.io.image_writer import ImageOutputs
from stereo_lit.metrics import stereo_match
from stereo_lit.metrics.stereo_match import StereoMatchError


def test_timesteps_must_decrease_strictly() -> None:
    """``a <= b`` -> ``a < b`` in SamplingOptions lets a repeated level through."""
    SamplingOptions(scheduler="euler", num_inference_steps=3, timesteps=[1000, 500, 250])
    with pytest.raises(ValueError, match="strictly decreasing"):
        SamplingOptions(scheduler="euler", num_inference_steps=3, timesteps=[1000, 500, 500])
    with pytest.raises(ValueError, match="strictly decreasing"):
        SamplingOptions(scheduler="euler", num_inference_steps=3, timesteps=[250, 500, 1000])


def _photo_outputs(tmp_path: Path, source: Path) -> Path:
    left = np.random.default_rng(0).integers(0, 255, (1, 32, 48, 3), dtype=np.uint8)
    outputs = ImageOutputs(str(source), tmp_path / "out", ["right"])
    outputs.write(0, left, left.copy(), None, 0.0)
    outputs.close()
    return outputs.paths["right"]


def test_jpeg_outputs_are_quality_95_with_444_chroma(tmp_path: Path) -> None:
    """Changing ``quality: 95`` or ``subsampling: 0`` of written JPEGs fails here."""
    source = tmp_path / "photo.jpg"
    Image.fromarray(np.full((32, 48, 3), 128, np.uint8)).save(source, quality=80)
    written = _photo_outputs(tmp_path, source)
    reference = io.BytesIO()
    Image.new("RGB", (8, 8)).save(reference, format="JPEG", quality=95, subsampling=0)
    with Image.open(written) as image, Image.open(reference) as expected:
        assert image.format == "JPEG"
        assert JpegImagePlugin.get_sampling(image) == 0  # 4:4:4
        assert image.quantization == expected.quantization  # the tables of quality 95


def test_the_icc_profile_is_copied(tmp_path: Path) -> None:
    """Dropping ``icc_profile`` from the photo writer fails here."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for name in ("photo.png", "photo.jpg"):
        source = tmp_path / name
        Image.fromarray(np.full((32, 48, 3), 90, np.uint8)).save(source, icc_profile=profile)
        written = _photo_outputs(tmp_path / name.replace(".", "_"), source)
        with Image.open(written) as image:
            assert image.info.get("icc_profile") == profile, name


def test_kitti_d1_needs_more_than_5_percent_of_the_true_disparity(monkeypatch: pytest.MonkeyPatch) -> None:
    """D1 counts an error only when it is > 3 px *and* > 5 % of the truth: a 4 px error on a
    100 px disparity is not D1, on a 40 px disparity it is. Dropping either clause fails here."""
    truth = torch.full((1, 1, 1, 8, 16), 100.0)
    truth[..., 8:] = 40.0
    truth[..., :2, :] = 10.0  # 2 px error on 10 px: 20 % but not > 3 px
    error = torch.full_like(truth, 4.0)
    error[..., :2, :] = 2.0
    monkeypatch.setattr(stereo_match, "sgbm_disparity", lambda left, right, n, params: (truth + error)[0, 0, 0].numpy())
    metric = StereoMatchError(num_disparities=128)
    image = torch.rand(1, 3, 1, 8, 16)
    metric.update(image, image, truth)
    result = metric.compute()
    # rows 2..7: half at 100 px (4 px = 4 %: not D1), half at 40 px (4 px = 10 %: D1); rows 0..1: 2 px: not D1
    assert float(result["sgbm_d1_pct"]) == pytest.approx(100.0 * (6 * 8) / (8 * 16))


def test_the_generator_reports_the_first_new_frame_of_each_later_window_as_a_seam(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """19 frames in windows of 9 overlapping by 5 start at 0, 4, 8, 10 (the last aligned to the end):
    the seams (first frame each later window adds) are 9, 13 and 17. Reporting ``win.start`` or
    including the first window fails here."""
    from stereo_lit.diffusion.generator import WanStereoGenerator, WindowResult
    from stereo_lit.diffusion.options import group_flat_options
    from stereo_lit.diffusion.tiny import write_tiny_wan

    gen = WanStereoGenerator(write_tiny_wan(tmp_path / "ckpt", seed=0), **group_flat_options(
        num_inference_steps=1, window=9, overlap=5, device="cpu", dtype="float32", prompt="x"))

    def fake_window(left, disparity_px, *, prompt=None, fixed_right=None, seed=None):
        zeros = torch.zeros(1)
        return WindowResult(left.clone(), torch.ones_like(disparity_px), zeros, zeros, zeros, zeros)

    monkeypatch.setattr(gen, "sample_window", fake_window)
    out = gen.generate(torch.rand(1, 3, 19, 16, 48), torch.full((1, 1, 19, 16, 48), 2.0))
    assert out.extras["seam_frames"].tolist() == [9, 13, 17]


def test_shot_cuts_reach_the_disparity_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The module hands the detected cuts to ``policy.fix_video_range`` (one range per shot):
    handing it ``cuts=()`` fails here."""
    from stereo_lit.generators.geometric import WarpFill
    from stereo_lit.module import StereoLitModule
    from test_shots import CUT, _RecordingEstimator, write_two_shot_video

    path = write_two_shot_video(tmp_path / "v.mp4")
    module = StereoLitModule(generator=WarpFill(), depth=_RecordingEstimator(), disparity={"shot_aware": True})
    seen: list = []
    original = module.policy.fix_video_range

    def recording(*args, **kwargs):
        seen.append(list(kwargs.get("cuts") or ()))
        return original(*args, **kwargs)

    monkeypatch.setattr(module.policy, "fix_video_range", recording)
    batch = {
        "left": torch.zeros(1, 3, 8, 36, 48), "video_path": [str(path)], "fps": torch.tensor([10.0]),
        "window_start": torch.tensor([20]), "window_stop": torch.tensor([28]), "num_frames": torch.tensor([40]),
    }
    module.disparity_for(batch)
    assert seen == [[CUT]]
