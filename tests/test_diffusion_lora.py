"""LoRA fine-tuning on the tiny random Wan: adapters, the training objective, diffusers-format save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stereo_lit.diffusion.generator import WanStereoGenerator
from stereo_lit.diffusion.lora import LORA_WEIGHT_NAME, add_lora, load_lora_into, lora_parameters, save_lora
from stereo_lit.diffusion.tiny import TINY_WAN_DIRNAME
from stereo_lit.diffusion.training import LoRATrainingObjective

B, T, H, W = 1, 5, 32, 48


@pytest.fixture(scope="module")
def tiny_wan(tiny_checkpoints: Path) -> Path:
    return tiny_checkpoints / TINY_WAN_DIRNAME


def _pipe(folder: Path):
    from diffusers import WanPipeline

    return WanPipeline.from_pretrained(folder, local_files_only=True)


def _generator(tiny_wan: Path, **lora) -> WanStereoGenerator:
    """2 CFG-free steps on CPU in float32; ``lora``: the generator's ``lora`` options (rank, path...)."""
    return WanStereoGenerator(
        tiny_wan, sampling={"num_inference_steps": 2, "guidance_scale": 1.0}, memory={"dtype": "float32", "device": "cpu"},
        lora=lora, prompt="a red ball", window=5, overlap=1, progress=False,
    )


def _batch(mono: bool = False) -> dict:
    g = torch.Generator().manual_seed(0)
    left = torch.rand(B, 3, T, H, W, generator=g)
    disparity = torch.full((B, 1, T, H, W), 4.0)
    disparity[..., 8:24, 16:32] = 12.0  # a near box: occlusions and disocclusions
    batch = {"left": left, "disparity_left_px": disparity, "caption": ["a red ball"]}
    if not mono:
        batch["right"] = torch.rand(B, 3, T, H, W, generator=g)
    return batch


def _transformer_out(transformer, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 16, 2, 4, 6, generator=g)
    text = torch.randn(1, 7, 32, generator=g)
    with torch.no_grad():
        return transformer(hidden_states=x, timestep=torch.tensor([600.0]), encoder_hidden_states=text, return_dict=False)[0]


def _perturb(params, seed: int = 1, scale: float = 0.2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(scale * torch.randn(p.shape, generator=g))


# ----------------------------------------------------------------------------- adapters
def test_add_lora_trains_only_adapters_on_target_modules(tiny_wan):
    transformer = _pipe(tiny_wan).transformer
    base_names = {n for n, _ in transformer.named_parameters()}
    before = _transformer_out(transformer)
    add_lora(transformer, rank=4, alpha=8)
    trainable = {n: p for n, p in transformer.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n for n in trainable)
    assert {p for p in lora_parameters(transformer)} == set(trainable.values())
    assert all(p.dtype == torch.float32 for p in trainable.values())
    adapted = {n.split(".lora_")[0] for n in trainable}
    suffixes = {".".join(n.split(".")[-2:]) if n.endswith("to_out.0") else n.split(".")[-1] for n in adapted}
    assert suffixes == {"to_q", "to_k", "to_v", "to_out.0"}
    num_blocks = len(transformer.blocks)
    assert len(adapted) == num_blocks * 2 * 4  # self- and cross-attention, four projections each
    # base weights: all frozen and untouched (peft keeps them under base_layer)
    frozen = [n for n, p in transformer.named_parameters() if not p.requires_grad]
    assert len(frozen) == len(base_names)
    # lora_B starts at zero: the adapted model computes exactly what the base model does
    torch.testing.assert_close(_transformer_out(transformer), before, rtol=0, atol=0)


def test_add_lora_target_subset_and_errors(tiny_wan):
    transformer = _pipe(tiny_wan).transformer
    add_lora(transformer, rank=2, target_modules=("to_q",))
    names = [n for n, p in transformer.named_parameters() if p.requires_grad]
    assert names and all(".to_q.lora_" in n for n in names)
    with pytest.raises(ValueError, match="already has"):
        add_lora(transformer, rank=2)
    with pytest.raises(ValueError, match="rank"):
        add_lora(_pipe(tiny_wan).transformer, rank=0)


# ----------------------------------------------------------------------------- objective
def _train(generator: WanStereoGenerator, batch: dict, steps: int, lr: float = 3e-3) -> list[float]:
    """AdamW on fixed sigmas/noise (two draws averaged), so the curve is deterministic; returns the losses."""
    transformer = generator.trainable_modules()[0]
    params = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    embeds = generator.prompt_embeds("a red ball")[0]
    noises = [torch.randn(B, 16, 2, H // 8, W // 8, generator=torch.Generator().manual_seed(s)) for s in (10, 11)]
    sigmas = [torch.tensor([0.35]), torch.tensor([0.8])]
    vae = generator.components.vae
    history = []
    for _ in range(steps):
        total = 0.0
        optimizer.zero_grad()
        for sigma, noise in zip(sigmas, noises):
            out = generator.objective(vae, transformer, batch, embeds, sigmas=sigma, noise=noise)
            (out["loss"] / len(sigmas)).backward()
            total += float(out["loss"].detach()) / len(sigmas)
        optimizer.step()
        history.append(total)
    return history


@pytest.mark.parametrize("mono", [False, True], ids=["true_right", "mono"])
def test_total_loss_goes_down_and_only_lora_changes(tiny_wan, mono):
    generator = _generator(tiny_wan, rank=8, cycle_weight=0.5)
    components = generator.components
    frozen = {
        f"{part}.{n}": p.detach().clone()
        for part, module in (("vae", components.vae), ("text_encoder", components.pipe.text_encoder),
                             ("transformer", components.transformer))
        for n, p in module.named_parameters() if "lora_" not in n
    }
    assert not any(p.requires_grad for p in components.vae.parameters())
    assert not any(p.requires_grad for p in components.pipe.text_encoder.parameters())

    history = _train(generator, _batch(mono), steps=30)
    assert history[-1] < 0.85 * history[0], history  # deterministic: about 0.74 on CPU
    assert min(history[-5:]) < min(history[:5])
    for part, module in (("vae", components.vae), ("text_encoder", components.pipe.text_encoder),
                         ("transformer", components.transformer)):
        for n, p in module.named_parameters():
            if "lora_" not in n:
                assert torch.equal(p, frozen[f"{part}.{n}"]), f"{part}.{n} changed"
                assert p.grad is None, f"{part}.{n} received a gradient"


@pytest.mark.parametrize("space", ["latent", "pixel"])
def test_cycle_term_reaches_the_lora_weights(tiny_wan, space):
    generator = _generator(tiny_wan, rank=4)
    transformer = generator.trainable_modules()[0]
    _perturb(lora_parameters(transformer))  # lora_B = 0 would zero every lora_A gradient
    batch, embeds = _batch(), generator.prompt_embeds("a red ball")[0]
    noise = torch.randn(B, 16, 2, H // 8, W // 8, generator=torch.Generator().manual_seed(3))

    def grads(objective: LoRATrainingObjective) -> tuple[dict, torch.Tensor]:
        transformer.zero_grad()
        out = objective(generator.components.vae, transformer, batch, embeds, sigmas=torch.tensor([0.5]), noise=noise)
        out["loss"].backward()
        return out, torch.cat([p.grad.flatten() for p in lora_parameters(transformer)])

    with_cycle, g_cycle = grads(LoRATrainingObjective(cycle_weight=10.0, cycle_space=space))
    without, g_plain = grads(LoRATrainingObjective(cycle_weight=0.0, cycle_space=space))
    assert with_cycle["loss_cycle"] > 0 and without["loss_cycle"] == 0
    torch.testing.assert_close(with_cycle["loss_fm"], without["loss_fm"])
    torch.testing.assert_close(with_cycle["loss"], with_cycle["loss_fm"] + 10.0 * with_cycle["loss_cycle"])
    assert (g_cycle - g_plain).abs().max() > 1e-6


def test_training_loss_api_and_errors(tiny_wan):
    generator = _generator(tiny_wan, rank=4)
    out = generator.training_loss(_batch())
    assert set(out) == {"loss", "loss_fm", "loss_cycle"}
    assert out["loss"].requires_grad and out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    # mono video: disparity passed by the caller (the module's depth pipeline)
    mono = _batch(mono=True)
    disparity = mono.pop("disparity_left_px")
    with pytest.raises(ValueError, match="disparity"):
        generator.training_loss(mono)
    assert torch.isfinite(generator.training_loss(mono, disparity_left_px=disparity)["loss"])
    bad = _batch()
    bad["left"] = bad["left"][:, :, :4]
    with pytest.raises(ValueError, match="4k\\+1"):
        generator.training_loss(bad)

    plain = _generator(tiny_wan)
    assert plain.trainable_modules() == []
    with pytest.raises(ValueError, match="lora.rank"):
        plain.training_loss(_batch())
    with pytest.raises(ValueError, match="cycle_space"):
        _generator(tiny_wan, rank=4, cycle_space="rgb")


# ----------------------------------------------------------------------------- save / load
def test_saved_adapter_loads_into_a_fresh_wan_pipeline_and_the_generator(tiny_wan, tmp_path):
    generator = _generator(tiny_wan, rank=4, alpha=8)
    transformer = generator.trainable_modules()[0]
    _train(generator, _batch(), steps=3, lr=2e-2)
    _perturb(lora_parameters(transformer), scale=0.1)  # make the adapter's effect unmistakable
    trained = _transformer_out(transformer)

    path = generator.save_lora(tmp_path / "adapter")
    assert path == tmp_path / "adapter" / LORA_WEIGHT_NAME
    assert [p.name for p in (tmp_path / "adapter").iterdir()] == [LORA_WEIGHT_NAME]  # no temporary left

    # any diffusers user: WanPipeline.from_pretrained(...).load_lora_weights(folder)
    fresh = _pipe(tiny_wan)
    base = _transformer_out(fresh.transformer)
    fresh.load_lora_weights(str(tmp_path / "adapter"))
    torch.testing.assert_close(_transformer_out(fresh.transformer), trained, rtol=1e-5, atol=1e-6)
    assert (trained - base).abs().max() > 1e-3

    # the library's loader, and the generator's lora.path option
    loaded = load_lora_into(_pipe(tiny_wan), tmp_path / "adapter")
    torch.testing.assert_close(_transformer_out(loaded.transformer), trained, rtol=1e-5, atol=1e-6)
    assert not any(p.requires_grad for p in loaded.transformer.parameters())
    with_adapter = _generator(tiny_wan, path=str(tmp_path / "adapter"))
    torch.testing.assert_close(_transformer_out(with_adapter.components.transformer), trained, rtol=1e-5, atol=1e-6)
    assert with_adapter.trainable_modules() == []

    # inference: the adapter changes the produced right view
    batch = _batch()
    left, disparity = batch["left"], batch["disparity_left_px"]
    right_lora = with_adapter.generate(left, disparity).right
    right_base = _generator(tiny_wan).generate(left, disparity).right
    assert (right_lora - right_base).abs().max() > 1e-4

    # resume: lora.path + lora.rank > 0 keeps the loaded adapter trainable
    resumed = _generator(tiny_wan, path=str(tmp_path / "adapter"), rank=4)
    params = [p for p in resumed.trainable_modules()[0].parameters() if p.requires_grad]
    assert params and len(params) == len(lora_parameters(transformer))
    torch.testing.assert_close(_transformer_out(resumed.components.transformer), trained, rtol=1e-5, atol=1e-6)


def test_save_and_load_errors(tiny_wan, tmp_path):
    with pytest.raises(ValueError, match="no LoRA adapter"):
        save_lora(_pipe(tiny_wan).transformer, tmp_path / "none")
    with pytest.raises(FileNotFoundError, match=LORA_WEIGHT_NAME):
        load_lora_into(_pipe(tiny_wan), tmp_path)
