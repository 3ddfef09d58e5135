"""Time per 81 frames and NFE: known sums, NFE read from the method or counted on its transformer."""

from __future__ import annotations

import math
import time

import pytest
import torch

from stereo_lit.generators.base import StereoOutput
from stereo_lit.generators.geometric import CopyLeft, WarpFill
from stereo_lit.metrics import CallCost, GenerationCost, method_nfe, timed_generate


def test_seconds_and_nfe_per_81_frames_are_pooled_sums() -> None:
    cost = GenerationCost()
    cost.update(1.0, 27, nfe=10)
    cost.update(2.0, 54, nfe=20)
    out = {k: float(v) for k, v in cost.compute().items()}
    assert out == {"sec_per_81f": pytest.approx(3.0), "nfe_per_81f": pytest.approx(30.0)}  # 3 s, 30 NFE for 81 frames
    cost.update(0.5, 81, nfe=None)  # one call that does not say: NFE unknown, time still counts
    out = {k: float(v) for k, v in cost.compute().items()}
    assert out["sec_per_81f"] == pytest.approx(3.5 / 162 * 81) and math.isnan(out["nfe_per_81f"])
    with pytest.raises(ValueError, match="must be >= 0"):
        cost.update(-1.0, 3)
    assert math.isnan(float(GenerationCost().compute()["sec_per_81f"]))


class _Denoiser(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _FakeDiffusion:
    """Runs its transformer ``steps`` times per call, sleeping ``delay`` s."""

    name = "fake"

    def __init__(self, steps: int, delay: float = 0.0, report: int | None = None) -> None:
        self.transformer, self.steps, self.delay, self.report = _Denoiser(), steps, delay, report

    def generate(self, left: torch.Tensor, disparity: torch.Tensor, **_) -> StereoOutput:
        for _ in range(self.steps):
            self.transformer(left)
        time.sleep(self.delay)
        extras = {} if self.report is None else {"nfe": torch.tensor(self.report)}
        return StereoOutput(right=left, known_mask=torch.ones_like(left[:, :1]), extras=extras)


def test_nfe_of_methods() -> None:
    left = torch.rand(1, 3, 2, 8, 8)
    disparity = torch.zeros(1, 1, 2, 8, 8)
    for method in (CopyLeft(), WarpFill()):
        out, cost = timed_generate(method, left, disparity)
        assert cost.nfe == 0 and cost.seconds >= 0 and out.right.shape == left.shape
    out, cost = timed_generate(_FakeDiffusion(steps=7, delay=0.05), left, disparity)
    assert cost.nfe == 7 and cost.seconds >= 0.05  # counted on the transformer; the sleep is timed
    _, cost = timed_generate(_FakeDiffusion(steps=7, report=100), left, disparity)
    assert cost.nfe == 100  # what the method reports wins over the hook count
    unknown = type("Other", (), {"generate": lambda self, left, d, **_: StereoOutput(left, left[:, :1])})()
    assert timed_generate(unknown, left, disparity)[1].nfe is None and method_nfe(unknown) is None
    counter = type("Counted", (), {"last_nfe": type("NFECount", (), {"count": 42})()})()
    assert method_nfe(counter) == 42
    assert isinstance(cost, CallCost)


@pytest.mark.slow
def test_wan_generator_nfe_is_counted_on_its_transformer(tmp_path) -> None:
    """The tiny random Wan, 2 steps with CFG: 4 transformer calls; its load is not timed."""
    from stereo_lit.diffusion.generator import WanStereoGenerator
    from stereo_lit.diffusion.tiny import write_tiny_wan

    gen = WanStereoGenerator(write_tiny_wan(tmp_path / "ckpt", seed=0), num_inference_steps=2, guidance_scale=5.0,
                             window=5, overlap=1, device="cpu", dtype="float32", prompt="a red ball", progress=False)
    left = torch.rand(1, 3, 5, 16, 32, generator=torch.Generator().manual_seed(0))
    out, cost = timed_generate(gen, left, torch.full((1, 1, 5, 16, 32), 3.0))
    assert cost.nfe == 2 * 2 and out.right.shape == left.shape
    assert gen._components is not None  # loaded by timed_generate before the clock started
