"""`stereo-lit convert`, `download` and `configs`: the converter front end builds predict's config and runs it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import yaml

from hub_cache import TINY_VDA, hf_cache, use_hf_home  # noqa: F401 - hf_cache is a fixture
from stereo_lit.cli import main
from stereo_lit.commands import convert, download, estimate
from stereo_lit.commands.configs import resolve_config_args, shipped_config, summary
from test_video_reader import write_test_clip


def _run(args: list[str]) -> tuple[int | None, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    video = tmp_path_factory.mktemp("convert_clip") / "clip.mp4"
    write_test_clip(video, num_frames=5, height=32, width=48)
    return video


def _config(args: list[str]) -> dict:
    code, out, _ = _run(["convert", *args, "--print_config"])
    assert code in (0, None), out
    return yaml.safe_load(out)


def test_print_config_is_predict_wild_with_the_flags_applied(clip: Path, tmp_path: Path) -> None:
    config = _config([str(clip), "-o", str(tmp_path / "o"), "--method", "fast", "--strength", "3", "--convergence", "0.25",
                      "--layout", "sbs,anaglyph", "--start", "1", "--end", "4.5", "--max-fps", "12"])
    model, data = config["model"], config["data"]
    assert model["generator"]["class_path"] == "stereo_lit.generators.geometric.WarpFill"
    disparity, output = model["disparity"], model["output"]
    assert (disparity["max_disparity_pct"], disparity["convergence"], output["layouts"]) == (3.0, 0.25, ["sbs", "anaglyph"])
    assert output["dir"] == str(tmp_path / "o")
    assert model["depth"]["init_args"]["checkpoint"] == "depth-anything/Video-Depth-Anything-Small"  # vda-s by hub id
    assert data["class_path"] == "stereo_lit.data.wild.WildVideoDataModule"
    assert (data["init_args"]["source"], data["init_args"]["start_time"], data["init_args"]["end_time"],
            data["init_args"]["max_fps"]) == (str(clip), 1.0, 4.5, 12.0)
    assert data["init_args"]["on_error"] == "skip"  # the rest of predict_wild is kept


def test_methods_map_to_the_shipped_presets(clip: Path) -> None:
    wan = _config([str(clip), "--method", "wan", "--depth", "vda-l"])
    assert wan["model"]["generator"]["class_path"] == "stereo_lit.diffusion.WanStereoGenerator"
    assert wan["model"]["wan_checkpoint"] == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    assert wan["model"]["depth"]["init_args"]["checkpoint"] == "depth-anything/Video-Depth-Anything-Large"
    fast_wan = _config([str(clip), "--method", "wan-fast"])
    assert fast_wan["model"]["generator"]["init_args"]["sampling"]["num_inference_steps"] == 4
    assert fast_wan["model"]["wan_checkpoint"] == "Wan-AI/Wan2.1-T2V-14B-Diffusers"
    vace = _config([str(clip), "--method", "vace"])
    assert vace["model"]["generator"]["init_args"]["backbone"] == "vace" and vace["model"]["vace_checkpoint"] == "wan-vace-1.3b"


def test_inputs_files_folders_and_globs(clip: Path, tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(clip.read_bytes())
    (tmp_path / "b.mp4").write_bytes(clip.read_bytes())
    assert convert.expand_inputs([str(tmp_path / "*.mp4")]) == [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]
    assert convert.expand_inputs([str(tmp_path), str(clip)]) == [str(tmp_path), str(clip)]
    with pytest.raises(SystemExit, match="missing.mp4"):
        convert.expand_inputs([str(tmp_path / "missing.mp4")])
    with pytest.raises(SystemExit, match="matches no file"):
        convert.expand_inputs([str(tmp_path / "*.mkv")])
    config = _config([str(tmp_path / "*.mp4"), "--method", "fast"])
    assert config["data"]["init_args"]["source"] == [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]


def test_auto_method_says_which_and_why(hf_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert convert.choose_method("auto", cuda=False)[0] == "fast"
    method, why = convert.choose_method("auto", cuda=True)  # the tiny Wan is in the (offline) cache
    assert method == "wan" and "cache" in why
    use_hf_home(monkeypatch, tmp_path / "empty_home", offline=True)
    method, why = convert.choose_method("auto", cuda=True)
    assert method == "fast" and "HF_HUB_OFFLINE" in why and "stereo-lit download wan-1.3b" in why
    use_hf_home(monkeypatch, tmp_path / "empty_home", offline=False)  # online: downloadable (nothing is fetched here)
    method, why = convert.choose_method("auto", cuda=True)
    assert method == "wan" and "downloaded" in why
    assert convert.choose_method("vace", cuda=False) == ("vace", "asked for")


def test_convert_writes_stereo_videos_on_predicts_code_path(clip: Path, tmp_path: Path, tiny_checkpoints: Path) -> None:
    import av

    out = tmp_path / "out"
    code, _, err = _run(["convert", str(clip), "-o", str(out), "--method", "auto", "--depth", str(tiny_checkpoints / TINY_VDA),
                         "--layout", "right,sbs", "--", "--model.depth.init_args.input_size", "28"])
    assert code in (0, None), err
    assert "method fast (no CUDA GPU" in err or "method wan" in err
    assert "1 video(s), 5 frames (largest 48x32)" in err
    with av.open(str(out / "clip" / "sbs.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (32, 96, 3)
    assert (out / "clip" / "right.mp4").is_file() and not (out / "clip" / "anaglyph.mp4").exists()


def test_estimate_from_measured_costs_or_names_the_missing_one() -> None:
    work = estimate.Work(videos=2, frames=100, megapixel_frames=50.0, largest=(1000, 500))
    costs = {"devices": {"cpu": {"depth:vda-s": 0.5, "fill:fast": 0.2}}}
    seconds, parts = estimate.estimate(work, "fast", "vda-s", "cpu", costs)
    assert seconds == pytest.approx(100 * 0.5 + 50 * 0.2)
    assert parts == ["depth vda-s ~50 s", "fill fast ~10 s"]
    seconds, parts = estimate.estimate(work, "wan", "vda-s", "cpu", costs)
    assert seconds is None and "fill wan: not measured on cpu" in parts
    assert estimate.depth_name("depth-anything/Video-Depth-Anything-Large") == "vda-l"
    assert estimate.depth_name("/w/video_depth_anything_vits.pth") == "vda-s"
    shipped = estimate.load_costs()
    assert shipped["devices"]["cpu"]["fill:fast"] > 0 and "machine" in shipped


def test_download_prints_the_licence_and_answers_offline_in_a_few_lines(hf_cache: Path) -> None:
    code, out, err = _run(["download", "vda-s"])
    assert code in (0, None) and "licence Apache-2.0" in out and "video_depth_anything_vits.pth" in out
    code, out, err = _run(["download", "vda-b", "vda-l"])
    assert code == 1 and "licence CC-BY-NC-4.0" in out
    assert "depth-anything/Video-Depth-Anything-Large" in err and "stereo-lit download vda-l" in err
    code, out, _ = _run(["download", "--list"])
    assert code in (0, None) and all(name in out for name in ("vda-s", "vda-b", "vda-l", "wan-1.3b", "wan-vace-1.3b", "wan-14b", "lightx2v"))


def test_configs_by_name_from_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # outside the repository
    wild = shipped_config("predict_wild")
    assert wild is not None and wild == shipped_config("predict_wild.yaml") and wild.parent.name == "configs"
    assert resolve_config_args(["predict", "-c", "predict_wild", "--config=eval_tartanair"]) == [
        "predict", "-c", str(wild), f"--config={shipped_config('eval_tartanair')}"]
    (tmp_path / "predict_wild").write_text("seed_everything: 1\n")  # a file of that name here wins
    assert resolve_config_args(["-c", "predict_wild"]) == ["-c", "predict_wild"]
    code, out, _ = _run(["configs"])
    assert code in (0, None)
    assert "predict_wild" in out and "Convert your own videos: Video-Depth-Anything depth -> disparity -> warp -> Wan2.1 fill." in out
    assert summary("# One: a sentence that\n# goes on. Then more.\n#   stereo-lit x\n") == "One: a sentence that goes on."
