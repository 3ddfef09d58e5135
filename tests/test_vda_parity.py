"""Parity with the official Video-Depth-Anything on deterministic weights (../shared/fixtures)."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
import torch

from stereo_lit.depth import VideoDepthAnything, infer_video_depth
from stereo_lit.depth.tiny import tiny_vda_state_dict


def _seeded_state_dict(shared_dir, shapes):
    path = shared_dir / "fixtures" / "vda_seeded_weights.py"
    spec = importlib.util.spec_from_file_location("vda_seeded_weights", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.seeded_state_dict(shapes)


@pytest.fixture(scope="module")
def forward_fixture(shared_dir):
    return torch.load(shared_dir / "fixtures" / "vda_parity_vits.pt", weights_only=True)


@pytest.fixture(scope="module")
def seeded_vits(shared_dir, forward_fixture):
    assert forward_fixture["config"]["encoder"] == "vits"
    model = VideoDepthAnything("vits")
    cfg = forward_fixture["config"]
    assert (model.config.features, list(model.config.out_channels)) == (cfg["features"], list(cfg["out_channels"]))
    # strict: every official key exists in our module with the official shape, and nothing else
    model.load_state_dict(_seeded_state_dict(shared_dir, forward_fixture["shapes"]), strict=True)
    return model.eval()


def test_key_names_and_shapes_match_official(seeded_vits, forward_fixture):
    ours = {k: tuple(v.shape) for k, v in seeded_vits.state_dict().items()}
    theirs = {k: tuple(v) for k, v in forward_fixture["shapes"].items()}
    assert ours == theirs


def test_forward_matches_official(seeded_vits, forward_fixture):
    with torch.no_grad():
        out = seeded_vits(forward_fixture["input"])
    ref = forward_fixture["output"]
    assert out.shape == ref.shape
    assert ref.abs().max() > 0.1  # the reference carries signal
    assert (out - ref).abs().max() <= 1e-4 * ref.abs().max()


def test_windowed_inference_matches_official(seeded_vits, shared_dir):
    fixture = torch.load(shared_dir / "fixtures" / "vda_parity_vits_video.pt", weights_only=True)
    frames = fixture["frames_uint8_THWC"].numpy()
    ref = fixture["depth"].numpy()
    assert frames.shape[0] > 32  # several windows: keyframes, seams and alignment are exercised
    depth = infer_video_depth(seeded_vits, frames, input_size=fixture["input_size"], device="cpu")
    assert depth.shape == ref.shape and depth.dtype == np.float32
    rel = np.abs(depth - ref).max() / np.abs(ref).max()
    assert rel <= 1e-3, rel


def test_tiny_checkpoint_uses_official_key_families(forward_fixture):
    """The tiny model is the same architecture at reduced width: same key names up to block counts."""

    def families(keys):
        return {re.sub(r"blocks\.\d+\.", "blocks.N.", k) for k in keys}

    assert families(tiny_vda_state_dict(0)) == families(forward_fixture["shapes"])
