"""Weights by hub id: short names and repository ids resolve from an offline huggingface_hub cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub_cache import REVISION, TINY_VDA, hf_cache  # noqa: F401 - hf_cache is a fixture
from stereo_lit.io import hub



def test_hub_ids_and_short_names_resolve_to_the_cached_snapshot(hf_cache: Path) -> None:
    snap = hf_cache / "hub" / "models--depth-anything--Video-Depth-Anything-Small" / "snapshots" / REVISION
    for value in ("vda-s", "depth-anything/Video-Depth-Anything-Small",
                  "depth-anything/Video-Depth-Anything-Small/video_depth_anything_vits.pth"):
        assert hub.resolve(value) == snap / "video_depth_anything_vits.pth"
    wan = hub.resolve("Wan-AI/Wan2.1-T2V-1.3B-Diffusers")
    assert wan == hf_cache / "hub" / "models--Wan-AI--Wan2.1-T2V-1.3B-Diffusers" / "snapshots" / REVISION
    assert (wan / "model_index.json").is_file() and hub.resolve("wan-1.3b") == wan


def test_local_paths_are_used_as_given(tiny_checkpoints: Path, tmp_path: Path) -> None:
    assert hub.resolve(tiny_checkpoints / TINY_VDA) == tiny_checkpoints / TINY_VDA
    assert hub.parse_id("checkpoints/video_depth_anything_vits.pth") is None  # a weights file name: local
    assert hub.parse_id("./Wan-AI/Wan2.1-T2V-1.3B-Diffusers") is None
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nothing.pth")):
        hub.resolve(tmp_path / "nothing.pth", option="model.depth.init_args.checkpoint")


def test_offline_and_not_cached_gives_a_short_answer_naming_the_repo_and_the_download_command(hf_cache: Path) -> None:
    with pytest.raises(hub.HubUnavailableError) as info:
        hub.resolve("depth-anything/Video-Depth-Anything-Large", option="model.depth.init_args.checkpoint")
    message = str(info.value)
    assert "depth-anything/Video-Depth-Anything-Large" in message
    assert "stereo-lit download vda-l" in message and "CC-BY-NC-4.0" in message and "HF_HUB_OFFLINE" in message
    assert len(message.splitlines()) <= 8
    with pytest.raises(hub.HubUnavailableError, match="stereo-lit download someone/unknown-model"):
        hub.resolve("someone/unknown-model")


def test_registry_names_the_brief_models_and_licences() -> None:
    licences = {name: model.licence for name, model in hub.MODELS.items()}
    assert licences["vda-s"] == "Apache-2.0" and licences["vda-b"] == licences["vda-l"] == "CC-BY-NC-4.0"
    assert {"wan-1.3b", "wan-vace-1.3b", "wan-14b", "lightx2v"} <= set(hub.MODELS)
    from stereo_lit.depth.checkpoint import parse_checkpoint_name

    for name in ("vda-s", "vda-b", "vda-l", "vda-metric-s", "vda-metric-b", "vda-metric-l"):
        encoder, metric = parse_checkpoint_name(hub.MODELS[name].file)
        assert encoder is not None and metric == ("metric" in name)


def test_vda_estimator_and_wan_folder_load_through_the_cache(hf_cache: Path) -> None:
    from stereo_lit.depth import VDAEstimator
    from stereo_lit.diffusion.loading import check_wan_folder, positional_range

    estimator = VDAEstimator("depth-anything/Video-Depth-Anything-Small", encoder="tiny", cache=False, device="cpu")
    estimator.check_paths()
    assert estimator.load().encoder == "tiny"
    assert check_wan_folder("wan-vace-1.3b").name == REVISION
    assert positional_range("Wan-AI/Wan2.1-T2V-1.3B-Diffusers").max_frames > 0
    missing = VDAEstimator("vda-b", cache=False, device="cpu")
    assert missing.encoder == "vitb"  # the registry's file name says the encoder, before any download
    with pytest.raises(hub.HubUnavailableError, match="stereo-lit download vda-b"):
        missing.check_paths()


def test_predict_resolves_hub_ids_to_the_tiny_files(hf_cache: Path, tmp_path: Path) -> None:
    """A real `stereo-lit predict` whose every checkpoint is a hub id (tiny files in the offline cache)."""
    from stereo_lit.cli import build_cli
    from test_video_reader import write_test_clip

    video = tmp_path / "clip.mp4"
    write_test_clip(video, num_frames=5, height=32, width=32)
    out = tmp_path / "out"
    gen = "--model.generator.init_args."
    cli = build_cli([
        "predict", "-c", "predict_wild",
        "--model.wan_checkpoint", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
        "--model.depth.init_args.checkpoint", "depth-anything/Video-Depth-Anything-Small",
        "--model.depth.init_args.encoder", "tiny", "--model.depth.init_args.input_size", "28",
        f"{gen}window", "5", f"{gen}overlap", "1", f"{gen}sampling.num_inference_steps", "2",
        f"{gen}memory.dtype", "float32", f"{gen}memory.device", "cpu", f"{gen}progress", "false",
        "--data.init_args.window", "5", "--data.init_args.overlap", "1",
        "--data.init_args.source", str(video), "--model.output.dir", str(out), "--model.output.layouts", "[right, sbs]",
    ])
    assert (out / "clip" / "right.mp4").is_file() and (out / "clip" / "sbs.mp4").is_file()
    assert cli.model.depth.checkpoint_path().parent.name == REVISION
    assert cli.model.generator.components.folder.name == REVISION


def test_predict_offline_without_the_weights_answers_in_a_few_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from hub_cache import use_hf_home
    from stereo_lit.cli import main
    from test_video_reader import write_test_clip

    use_hf_home(monkeypatch, tmp_path / "empty_home", offline=True)
    video = tmp_path / "clip.mp4"
    write_test_clip(video, num_frames=5, height=32, width=32)
    with pytest.raises(SystemExit) as info:
        main(["predict", "-c", "predict_wild", "--data.init_args.source", str(video), "--model.output.dir", str(tmp_path / "o")])
    assert info.value.code == 1
    answer = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    start = next(i for i, line in enumerate(answer) if line.startswith("stereo-lit: "))
    assert len(answer[start:]) <= 8 and "Traceback" not in "\n".join(answer)
    assert "Wan-AI/Wan2.1-T2V-1.3B-Diffusers" in answer[start] and any("stereo-lit download wan-1.3b" in a for a in answer)
