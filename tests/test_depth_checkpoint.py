"""Checkpoint loading: strict keys, clear errors, names -> variants, the tiny checkpoint script."""

from __future__ import annotations

import pytest
import torch

from stereo_lit.depth import (
    CheckpointMismatchError,
    VDAEstimator,
    VideoDepthAnything,
    load_vda,
    parse_checkpoint_name,
    write_tiny_vda,
)
from stereo_lit.depth.tiny import TINY_VDA_NAME, tiny_vda_state_dict


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return write_tiny_vda(tmp_path_factory.mktemp("ckpt"), seed=0)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("video_depth_anything_vits.pth", ("vits", False)),
        ("video_depth_anything_vitb.pth", ("vitb", False)),
        ("video_depth_anything_vitl.pth", ("vitl", False)),
        ("metric_video_depth_anything_vitl.pth", ("vitl", True)),
        ("metric_video_depth_anything_vits.pth", ("vits", True)),
        ("video_depth_anything_tiny.pth", ("tiny", False)),
        ("weights.pth", (None, False)),
    ],
)
def test_parse_checkpoint_name(name, expected):
    assert parse_checkpoint_name(f"/some/dir/{name}") == expected


def test_missing_file_names_the_expected_path(tmp_path):
    path = tmp_path / "video_depth_anything_vits.pth"
    with pytest.raises(FileNotFoundError) as info:
        load_vda(path)
    assert str(path) in str(info.value)
    estimator = VDAEstimator(str(path), progress=False)  # lazy: constructing is fine (YAML/CLI)
    with pytest.raises(FileNotFoundError, match="video_depth_anything_vits.pth"):
        estimator.estimate(torch.rand(1, 3, 2, 28, 28))


def test_wrong_keys_are_listed(tmp_path):
    state = tiny_vda_state_dict(0)
    state.pop("head.scratch.output_conv1.weight")
    state["head.extra_layer.weight"] = torch.zeros(3)
    path = tmp_path / "video_depth_anything_tiny.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_vda(path)
    message = str(info.value)
    assert "missing keys (1): head.scratch.output_conv1.weight" in message
    assert "unexpected keys (1): head.extra_layer.weight" in message
    assert str(path.resolve()) in message


def test_wrong_encoder_reports_shape_mismatch(tiny_ckpt):
    with pytest.raises(CheckpointMismatchError, match="shape mismatches"):
        load_vda(tiny_ckpt, encoder="vits")


def test_round_trip_is_exact_and_official_layout(tiny_ckpt):
    state = torch.load(tiny_ckpt, map_location="cpu", weights_only=True)
    assert all(k.startswith(("pretrained.", "head.")) for k in state)
    model = load_vda(tiny_ckpt)
    assert isinstance(model, VideoDepthAnything) and model.encoder == "tiny" and not model.metric
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_encoder_inferred_from_weights_when_name_is_silent(tiny_ckpt, tmp_path):
    other = tmp_path / "my_depth_model.pth"
    other.write_bytes(tiny_ckpt.read_bytes())
    assert load_vda(other).encoder == "tiny"
    assert load_vda(other, metric=True).metric


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "video_depth_anything_tiny.pth"
    torch.save({"model": VideoDepthAnything("tiny")}, path)  # a pickled module, not a state dict
    with pytest.raises(ValueError, match="weights-only"):
        load_vda(path)


def test_write_tiny_is_deterministic_and_skips_when_complete(tmp_path):
    a = write_tiny_vda(tmp_path / "a", seed=3)
    b = write_tiny_vda(tmp_path / "b", seed=3)
    assert a.name == TINY_VDA_NAME and _same_tensors(a, b)
    assert not _same_tensors(a, write_tiny_vda(tmp_path / "c", seed=4))
    mtime = a.stat().st_mtime_ns
    assert write_tiny_vda(tmp_path / "a", seed=3) == a and a.stat().st_mtime_ns == mtime
    a.write_bytes(b"truncated")  # an incomplete file is rewritten
    write_tiny_vda(tmp_path / "a", seed=3)
    assert _same_tensors(a, b)
    assert not list((tmp_path / "a").glob(".*tmp*"))


def _same_tensors(a, b):
    sa = torch.load(a, weights_only=True)
    sb = torch.load(b, weights_only=True)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_make_tiny_checkpoints_script(repo_root, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_tiny", repo_root / "data_prep" / "make_tiny_checkpoints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--out", str(tmp_path), "--only", "vda"])
    assert load_vda(tmp_path / TINY_VDA_NAME).encoder == "tiny"
