"""The LoRA objective's right -> left cycle term on a scene with a known answer.

A rectified scene on 8-px blocks (so that an 8x VAE stand-in is exact): background at
8 px disparity, a box at 24 px on left columns [32, 64). The true right view is built by
hand: right column x shows left column x + 24 on the box ([8, 40)), nothing on [40, 56)
(disoccluded beside the box) and [88, 96) (off the left frame), x + 8 elsewhere. The model is replaced by a stand-in
whose clean-latent prediction is chosen by the test (``x0_hat``), the VAE by an exact
block codec. With ``x0_hat`` = the true right view + 0.1, the cycle term is exactly 0.1
on every co-visible pixel, in pixel and in latent space. Using the left view's disparity
for the cycle, or warping in the wrong direction, gives another number.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from stereo_lit.diffusion.training import LoRATrainingObjective, stereo_targets

H, W, BLOCK = 16, 96, 8


class BlockVAE(torch.nn.Module):
    """An exact 8x codec for block-constant images (one frame): RGB in latent channels 0-2."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)  # gives the module a device
        self.config = SimpleNamespace(z_dim=16, latents_mean=[0.0] * 16, latents_std=[1.0] * 16)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def encode(self, x: torch.Tensor) -> SimpleNamespace:  # x [B, 3, 1, H, W] in [-1, 1]
        pooled = F.avg_pool2d(x[:, :, 0], BLOCK)[:, :, None]
        z = torch.cat([pooled, torch.zeros(x.shape[0], 13, *pooled.shape[2:])], dim=1)
        return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: z))

    def decode(self, z: torch.Tensor, return_dict: bool = False) -> tuple[torch.Tensor]:
        return (F.interpolate(z[:, :3, 0], scale_factor=BLOCK, mode="nearest")[:, :, None],)


class ChosenX0(torch.nn.Module):
    """A transformer stand-in whose clean-latent prediction ``x_t - sigma v`` is ``target``."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def forward(self, hidden_states, timestep, encoder_hidden_states, attention_kwargs=None, return_dict=False):
        sigma = (timestep.float() / 1000.0).view(-1, 1, 1, 1, 1)
        return ((hidden_states - self.target) / sigma,)


def _blocks(values: torch.Tensor) -> torch.Tensor:
    """``[3, H/8, W/8]`` block values -> ``[1, 3, 1, H, W]`` image."""
    return values.repeat_interleave(BLOCK, 1).repeat_interleave(BLOCK, 2)[None, :, None]


@pytest.fixture(scope="module")
def scene() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    left = _blocks(0.2 + 0.6 * torch.rand(3, H // BLOCK, W // BLOCK, generator=g))
    disparity_left = torch.full((1, 1, 1, H, W), 8.0)
    disparity_left[..., 32:64] = 24.0
    right = torch.full_like(left, 0.5)  # holes: [40, 56) disoccluded beside the box, [88, 96) off the left frame
    x = torch.arange(W)
    box = (x >= 8) & (x < 40)
    source = torch.where(box, x + 24, x + 8)
    seen = (source < W) & ~((x >= 40) & (x < 56))
    right[..., seen] = left[..., source[seen]]
    disparity_right = torch.where(box, 24.0, 8.0).expand(1, 1, 1, H, W).clone()
    return {"left": left, "right": right, "disparity_left_px": disparity_left, "disparity_right": disparity_right,
            "valid_right": seen.float().expand(1, 1, 1, H, W)}


def test_scene_right_disparity_is_what_the_objective_derives(scene):
    geo = stereo_targets({"left": scene["left"], "disparity_left_px": scene["disparity_left_px"]}, None, torch.device("cpu"))
    torch.testing.assert_close(geo.valid_right, scene["valid_right"])
    torch.testing.assert_close(geo.disparity_right_px * geo.valid_right, scene["disparity_right"] * scene["valid_right"])


@pytest.mark.parametrize("space", ["pixel", "latent"])
@pytest.mark.parametrize("offset", [0.0, 0.1])
def test_cycle_term_of_the_true_right_view_plus_an_offset_is_the_offset(scene, space, offset):
    vae = BlockVAE()
    batch = {k: scene[k] for k in ("left", "right", "disparity_left_px")}
    x0_right = vae.encode(scene["right"] * 2 - 1).latent_dist.mode()
    if space == "pixel":  # decodes to right + offset exactly
        target = vae.encode((scene["right"] + offset) * 2 - 1).latent_dist.mode()
    else:  # every latent channel off by the offset
        target = x0_right + offset
    objective = LoRATrainingObjective(cycle_weight=1.0, cycle_space=space)
    noise = torch.randn(x0_right.shape, generator=torch.Generator().manual_seed(1))
    out = objective(vae, ChosenX0(target), batch, torch.zeros(1, 4, 8), sigmas=torch.tensor([0.5]), noise=noise)
    assert out["loss_cycle"].item() == pytest.approx(offset, abs=1e-5)


def test_cycle_term_tells_a_one_block_shift_of_the_box(scene):
    """The right view with its box one block off (a wrong disparity of the box) costs more than 0."""
    vae = BlockVAE()
    wrong = scene["right"].clone()
    wrong[..., 8:40] = scene["left"][..., 40:72]  # the box drawn with 32 px instead of 24
    batch = {k: scene[k] for k in ("left", "right", "disparity_left_px")}
    objective = LoRATrainingObjective(cycle_weight=1.0, cycle_space="pixel")
    target = vae.encode(wrong * 2 - 1).latent_dist.mode()
    noise = torch.zeros_like(target)
    out = objective(vae, ChosenX0(target), batch, torch.zeros(1, 4, 8), sigmas=torch.tensor([0.5]), noise=noise)
    assert out["loss_cycle"].item() > 0.02
