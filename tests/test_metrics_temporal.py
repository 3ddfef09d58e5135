"""Flow-based warping error and seam jumps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereo_lit.data.synthetic import render_sequence
from stereo_lit.metrics import WarpingError


def _video(frames_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames_u8).permute(3, 0, 1, 2)[None].float() / 255.0


@pytest.fixture(scope="module")
def moving():
    seq = render_sequence(5, 96, 128)  # moving camera and a moving box
    return _video(seq.right)


def _static(frames: int = 4) -> torch.Tensor:
    image = torch.rand(1, 3, 1, 48, 64, generator=torch.Generator().manual_seed(0))
    image = torch.nn.functional.avg_pool3d(image, (1, 3, 3), stride=1, padding=(0, 1, 1))
    return image.repeat(1, 1, frames, 1, 1)


def test_static_video_has_no_warping_error_and_flicker_has() -> None:
    static = _static()
    metric = WarpingError()
    metric.update(static, static)
    assert float(metric.compute()["warp_error"]) < 1e-8
    flicker = static.clone()
    flicker[:, :, 1::2] = (flicker[:, :, 1::2] + 0.1).clamp(0, 1)
    metric = WarpingError()
    metric.update(flicker, static)
    assert float(metric.compute()["warp_error"]) > 5e-3


def _translating(frames: int = 4, step_px: int = 3) -> torch.Tensor:
    wide = torch.rand(1, 3, 1, 48, 96 + frames * step_px, generator=torch.Generator().manual_seed(1))
    wide = torch.nn.functional.avg_pool3d(wide, (1, 5, 5), stride=1, padding=(0, 2, 2))
    return torch.cat([wide[..., t * step_px : t * step_px + 96] for t in range(frames)], dim=2)


def test_motion_is_compensated_by_the_flow(moving) -> None:
    for video, factor in ((_translating(), 0.1), (moving, 0.5)):
        metric = WarpingError()
        metric.update(video, video)
        compensated = float(metric.compute()["warp_error"])
        plain = float((video[:, :, 1:] - video[:, :, :-1]).pow(2).mean())
        assert compensated < factor * plain


def test_seam_jump_detects_an_injected_jump(moving) -> None:
    clean = WarpingError()
    clean.update(moving, moving, seam_frames=[2])
    clean_out = {k: float(v) for k, v in clean.compute().items()}
    assert 0.5 < clean_out["seam_jump_ratio"] < 2.0
    jumped = moving.clone()
    jumped[:, :, 2:] = (jumped[:, :, 2:] * 0.85 + 0.08).clamp(0, 1)  # next window: other colours
    metric = WarpingError()
    metric.update(jumped, moving, seam_frames=[2])
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["seam_jump_ratio"] > 3.0
    assert out["seam_jump"] > out["nonseam_jump"]


def test_seam_keys_absent_without_seams_and_indices_checked(moving) -> None:
    metric = WarpingError()
    metric.update(moving, moving)
    assert set(metric.compute()) == {"warp_error"}
    with pytest.raises(ValueError, match="seam_frames"):
        metric.update(moving, moving, seam_frames=[0])
