"""`stereo-lit ui`: checkpoint paths resolved before any job starts, hub ids from the cache,
and a depth upload switching the depth source."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub_cache import hf_cache  # noqa: F401 - fixture
from stereo_lit.ui.app import App, depth_source_after_upload
from stereo_lit.ui.jobs import Settings, predict_args, vda_status, wan_status


def _value(args: list[str], key: str) -> str:
    return args[args.index(key) + 1]


def test_a_relative_depth_checkpoint_is_resolved_where_ui_was_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "video_depth_anything_vits.pth").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    app = App(tmp_path / "out", wan_checkpoint="no-wan-here/model", vda_checkpoint="ckpt/video_depth_anything_vits.pth")
    absolute = str(tmp_path / "ckpt" / "video_depth_anything_vits.pth")
    assert app.vda_checkpoint == absolute and vda_status(app.vda_checkpoint)[0]
    args = predict_args("a.mp4", app.output_dir, Settings(depth="vda"), app.wan_checkpoint, app.vda_checkpoint)
    assert _value(args, "--model.depth.init_args.checkpoint") == absolute  # the job's own folder does not matter
    ok, reason = vda_status(str(tmp_path / "ckpt" / "missing.pth"))
    assert not ok and str(tmp_path / "ckpt" / "missing.pth") in reason  # the path tried


def test_hub_ids_are_found_in_the_cache_or_named_with_the_download_command(hf_cache: Path, tmp_path: Path) -> None:
    app = App(tmp_path / "out", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "depth-anything/Video-Depth-Anything-Small")
    assert wan_status(app.wan_checkpoint)[0] and vda_status(app.vda_checkpoint)[0]
    assert Path(app.vda_checkpoint).is_file() and str(hf_cache) in app.vda_checkpoint
    ok, reason = vda_status("depth-anything/Video-Depth-Anything-Large")
    assert not ok and "stereo-lit download vda-l" in reason


def test_a_depth_upload_switches_the_depth_source() -> None:
    assert depth_source_after_upload(["/tmp/x/clip.npy"], "vda") == "file"
    assert depth_source_after_upload([], "vda") == "vda" and depth_source_after_upload(None, "vda") == "vda"
