"""Costs without loading (issue 21, item 4): load time apart from generate time; one prompt encode per text encoder."""

from __future__ import annotations

from pathlib import Path

import torch

from stereo_lit.diffusion.loading import SharedComponents
from stereo_lit.evaluation.predict_cost import CostTotals
from stereo_lit.metrics.cost import CallCost, timed_generate
from test_memory_plan import _generator, _scene


def test_one_prompt_encode_for_four_rows_sharing_a_text_encoder(tiny_checkpoints: Path, monkeypatch) -> None:
    shared = SharedComponents()
    rows = [_generator(tiny_checkpoints).share_loads(shared) for _ in range(4)]
    calls = []
    pipe = rows[0].pipeline
    original = type(pipe).encode_prompt
    monkeypatch.setattr(type(pipe), "encode_prompt", lambda self, *a, **k: calls.append(a[0]) or original(self, *a, **k))
    embeds = [row.prompt_embeds("a red ball") for row in rows]
    assert shared.loads == 1 and calls == ["a red ball"]
    assert all(e[0] is embeds[0][0] for e in embeds)
    rows[0].prompt_embeds("a blue ball")
    assert calls == ["a red ball", "a blue ball"]


def test_the_first_call_reports_the_load_apart_from_its_generate_time(tiny_checkpoints: Path) -> None:
    generator = _generator(tiny_checkpoints)
    left, disparity = _scene(5)
    _, first = timed_generate(generator, left, disparity)
    _, second = timed_generate(generator, left, disparity)
    assert first.load_seconds > 0 and second.load_seconds == 0 and second.load_peak_bytes is None
    totals = CostTotals()
    totals.add(first, 5)
    totals.add(second, 5)
    assert totals.seconds == first.seconds + second.seconds  # generate time only
    assert totals.load_seconds == first.load_seconds
    assert "loading the models (not in the above)" in totals.line("wan")


def test_a_cost_line_without_loading_says_nothing_about_it() -> None:
    totals = CostTotals()
    totals.add(CallCost(seconds=1.0, nfe=0), 81)
    assert "loading" not in totals.line("warp_fill") and totals.record()["load_seconds"] == 0.0


def _umt5_loads(monkeypatch) -> list[str]:
    from transformers import UMT5EncoderModel

    loads: list[str] = []
    original = UMT5EncoderModel.from_pretrained.__func__
    monkeypatch.setattr(UMT5EncoderModel, "from_pretrained",
                        classmethod(lambda cls, *a, **k: loads.append(str(a[0])) or original(cls, *a, **k)))
    return loads


def test_t2v_and_vace_folders_with_identical_text_encoders_load_it_once(tiny_checkpoints: Path, monkeypatch, tmp_path) -> None:
    import shutil

    from stereo_lit.diffusion.generator import WanStereoGenerator
    from stereo_lit.diffusion.options import group_flat_options
    from stereo_lit.diffusion.tiny import TINY_WAN_VACE_DIRNAME

    t2v_folder, vace_folder = tiny_checkpoints / "Wan2.1-T2V-tiny-Diffusers", tiny_checkpoints / TINY_WAN_VACE_DIRNAME
    opts = dict(num_inference_steps=1, guidance_scale=1.0, overlap=1, device="cpu", dtype="float32", progress=False)
    loads = _umt5_loads(monkeypatch)
    t2v = WanStereoGenerator(t2v_folder, **group_flat_options(**opts))
    vace = WanStereoGenerator(vace_folder, **group_flat_options(backbone="vace", **opts))
    assert t2v.pipeline.text_encoder is vace.pipeline.text_encoder and len(loads) == 1
    # a folder whose text-encoder weights differ loads its own
    other = tmp_path / "other"
    shutil.copytree(vace_folder, other)
    weights = other / "text_encoder" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4:] = bytes(4 - i for i in range(4)) if data[-4:] != bytes(4 - i for i in range(4)) else b"\\0\\0\\0\\0"
    weights.write_bytes(bytes(data))
    third = WanStereoGenerator(other, **group_flat_options(backbone="vace", **opts))
    assert third.pipeline.text_encoder is not t2v.pipeline.text_encoder and len(loads) == 2
