"""Depth is cached by default (issue 10 item 10): a documented folder, environment-aware, in every config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stereo_lit.depth import VDAEstimator, write_tiny_vda
from stereo_lit.depth.cache import default_cache_dir
from stereo_lit.depth.source import WindowDepth
from stereo_lit.data.wild import WildVideoDataModule
from test_video_reader import write_test_clip

REPO = Path(__file__).resolve().parents[1]


def test_default_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STEREO_LIT_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "mine" / "depth"
    monkeypatch.delenv("STEREO_LIT_CACHE")
    assert default_cache_dir() == tmp_path / "xdg" / "stereo-lit" / "depth"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "stereo-lit" / "depth"


def test_two_passes_over_a_video_estimate_depth_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, depth_cache_in_tmp: Path
) -> None:
    video = tmp_path / "clip.mp4"
    write_test_clip(video, num_frames=13, height=32, width=48)
    checkpoint = write_tiny_vda(tmp_path / "ckpt", seed=0)
    passes = []
    import stereo_lit.depth.estimator as estimator_module

    real = estimator_module.stream_video_depth

    def counting(*args, **kwargs):
        passes.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(estimator_module, "stream_video_depth", counting)
    data = WildVideoDataModule(str(video), window=5, overlap=1, use_depth=False)
    results = []
    for _ in range(2):  # two runs (or two epochs of shuffled clips): a fresh estimator and memo each time
        estimator = VDAEstimator(str(checkpoint), input_size=28, device="cpu", progress=False)  # no cache_dir
        depth = WindowDepth(estimator)
        results.append([depth.for_batch(batch)[0] for batch in data.predict_dataloader()])
    assert len(passes) == 1
    assert [r.tolist() for r in results[0]] == [r.tolist() for r in results[1]]
    assert len(list(depth_cache_in_tmp.glob("*.npy"))) == 1  # in the default folder (a tmp one under tests)

    VDAEstimator(str(checkpoint), input_size=28, device="cpu", progress=False, cache=False).video_depth(
        lambda: iter(data._dataset(data.predict_items()[:1]).load(0)["left"].permute(1, 2, 3, 0).numpy()), key="x"
    )
    assert len(passes) == 2 and len(list(depth_cache_in_tmp.glob("*.npy"))) == 1  # cache=False: nothing stored


@pytest.mark.parametrize("config", sorted((REPO / "stereo_lit" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_no_config_turns_the_depth_cache_off(config: Path) -> None:
    model = (yaml.safe_load(config.read_text()) or {}).get("model") or {}
    depth = model.get("depth") or {}
    args = depth.get("init_args") or {} if isinstance(depth, dict) else {}
    assert args.get("cache", True) is not False, config
    assert "cache_dir" not in args or args["cache_dir"], config
