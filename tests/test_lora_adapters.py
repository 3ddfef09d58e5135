"""Several LoRA adapters with weights (diffusers' multi-adapter API) on the tiny random Wan.

Known answer: a LoRA layer computes ``W x + sum_i w_i (alpha_i / r_i) B_i A_i x``; the deltas are
computed here from the saved safetensors files themselves, not from peft.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from stereo_lit.diffusion.lora import (
    ADAPTER_NAME,
    LORA_WEIGHT_NAME,
    add_lora,
    load_adapters,
    lora_parameters,
    save_lora,
)
from stereo_lit.diffusion.options import LoRAAdapter, LoRAOptions
from stereo_lit.diffusion.tiny import TINY_WAN_DIRNAME
from stereo_lit.diffusion.training import prepare_lora

LAYER = "blocks.1.attn1.to_q"  # the probed layer
NUM_LAYERS = 2 * 2 * 4  # tiny Wan: 2 blocks x (self, cross) attention x (q, k, v, out)
RANKS = {1: (2, 4.0), 2: (3, 3.0)}  # seed -> (rank, alpha): scales 2 and 1


@pytest.fixture(scope="module")
def tiny_wan(tiny_checkpoints: Path) -> Path:
    return tiny_checkpoints / TINY_WAN_DIRNAME


_LOADED: dict[Path, object] = {}


def _pipe(folder: Path):
    """A ``WanPipeline`` of ``folder`` with its own copy of the transformer (the rest is loaded once)."""
    from diffusers import WanPipeline

    if folder not in _LOADED:
        _LOADED[folder] = WanPipeline.from_pretrained(folder, local_files_only=True)
    base = _LOADED[folder]
    return WanPipeline(**{**base.components, "transformer": copy.deepcopy(base.transformer)})


def write_random_adapter(wan_folder: Path, out: Path, seed: int, rank: int = 2, alpha: float = 4.0,
                         scale: float = 0.3) -> Path:
    """A random adapter on the tiny Wan's attention (``add_lora`` seeded by ``seed``, then every LoRA
    weight drawn ``scale * N(0, 1)``, since ``lora_B`` starts at 0), saved with ``save_lora`` in ``out``."""
    transformer = _pipe(wan_folder).transformer
    torch.manual_seed(seed)
    add_lora(transformer, rank=rank, alpha=alpha)
    g = torch.Generator().manual_seed(100 + seed)
    with torch.no_grad():
        for p in lora_parameters(transformer):
            p.copy_(scale * torch.randn(p.shape, generator=g))
    save_lora(transformer, out)
    return out


@pytest.fixture(scope="module")
def adapters(tiny_wan, tmp_path_factory) -> dict[int, Path]:
    """Two random adapters (seeds 1 and 2, different ranks and alphas), saved with save_lora."""
    root = tmp_path_factory.mktemp("adapters")
    return {seed: write_random_adapter(tiny_wan, root / f"a{seed}", seed, rank, alpha) for seed, (rank, alpha) in RANKS.items()}


def _delta(folder: Path, x: torch.Tensor, seed: int) -> torch.Tensor:
    """``(alpha / r) B A x`` of the probed layer, from the saved file."""
    state = load_file(str(folder / LORA_WEIGHT_NAME))
    a, b = state[f"transformer.{LAYER}.lora_A.weight"], state[f"transformer.{LAYER}.lora_B.weight"]
    rank, alpha = RANKS[seed]
    return (alpha / rank) * x @ a.T @ b.T


def _layer(transformer) -> torch.nn.Module:
    return transformer.get_submodule(LAYER)


def _transformer_out(transformer) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 2, 4, 6, generator=g)
    text = torch.randn(1, 7, 32, generator=g)
    with torch.no_grad():
        return transformer(hidden_states=x, timestep=torch.tensor([600.0]), encoder_hidden_states=text, return_dict=False)[0]


def test_two_adapters_add_linearly_with_their_weights(tiny_wan, adapters, caplog):
    pipe = _pipe(tiny_wan)
    x = torch.randn(5, 24, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        base = _layer(pipe.transformer)(x)
    w1, w2 = 0.7, -1.3
    with caplog.at_level(logging.INFO, logger="stereo_lit.diffusion.lora"):
        prepare_lora(pipe, LoRAOptions(path=[{"path": str(adapters[1]), "weight": w1},
                                             {"path": str(adapters[2]), "weight": w2, "name": "stereo"}]))
    assert set(pipe.transformer.peft_config) == {"adapter0", "stereo"}
    assert sorted(pipe.get_active_adapters()) == ["adapter0", "stereo"]
    with torch.no_grad():
        out = _layer(pipe.transformer)(x)
    expected = base + w1 * _delta(adapters[1], x, 1) + w2 * _delta(adapters[2], x, 2)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert (out - base).abs().max() > 1e-2  # the adapters do something
    assert not any(p.requires_grad for p in pipe.transformer.parameters())  # inference: all frozen
    logged = [r.getMessage() for r in caplog.records]
    assert any("'adapter0' (weight 0.7)" in m and f"{NUM_LAYERS} layers" in m and str(adapters[1]) in m for m in logged), logged
    assert any("'stereo' (weight -1.3)" in m and f"{NUM_LAYERS} layers" in m for m in logged), logged


def test_weight_zero_is_the_base_model_exactly(tiny_wan, adapters):
    base = _transformer_out(_pipe(tiny_wan).transformer)
    pipe = _pipe(tiny_wan)
    assert load_adapters(pipe, [LoRAAdapter(str(adapters[1]), 0.0), LoRAAdapter(str(adapters[2]), 0.0)]) == ["adapter0", "adapter1"]
    assert not any(p.requires_grad for p in pipe.transformer.parameters())  # loaded for inference: frozen
    torch.testing.assert_close(_transformer_out(pipe.transformer), base, rtol=0, atol=0)
    pipe.set_adapters(["adapter0", "adapter1"], adapter_weights=[1.0, 0.0])
    assert (_transformer_out(pipe.transformer) - base).abs().max() > 1e-4


def test_one_unnamed_adapter_is_default_and_a_file_path_loads(tiny_wan, adapters):
    pipe = _pipe(tiny_wan)
    prepare_lora(pipe, LoRAOptions(path=str(adapters[1] / LORA_WEIGHT_NAME)))
    assert list(pipe.transformer.peft_config) == [ADAPTER_NAME]
    x = torch.randn(3, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(_layer(pipe.transformer)(x) - _layer(_pipe(tiny_wan).transformer)(x),
                                   _delta(adapters[1], x, 1), rtol=1e-4, atol=1e-6)


def test_training_on_top_of_frozen_adapters(tiny_wan, adapters, tmp_path):
    """rank > 0 and no adapter named "default": a fresh trainable "default" on top of the frozen ones."""
    pipe = _pipe(tiny_wan)
    frozen = _pipe(tiny_wan)
    load_adapters(frozen, [LoRAAdapter(str(adapters[1]), 0.5, "distill")])
    prepare_lora(pipe, LoRAOptions(rank=2, path=[{"path": str(adapters[1]), "weight": 0.5, "name": "distill"}]))
    assert set(pipe.transformer.peft_config) == {"distill", ADAPTER_NAME}
    trainable = [n for n, p in pipe.transformer.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * NUM_LAYERS and all(f".lora_A.{ADAPTER_NAME}." in n or f".lora_B.{ADAPTER_NAME}." in n
                                                    for n in trainable)
    # the fresh adapter starts at zero: the model is the frozen adapter's, still active at its weight
    torch.testing.assert_close(_transformer_out(pipe.transformer), _transformer_out(frozen.transformer), rtol=0, atol=0)
    path = save_lora(pipe.transformer, tmp_path / "trained")
    keys = load_file(str(path)).keys()
    assert len(keys) == 2 * NUM_LAYERS and all(k.startswith("transformer.blocks.") for k in keys)
    assert torch.equal(load_file(str(path))[f"transformer.{LAYER}.lora_B.weight"], torch.zeros(24, 2))


def test_resume_keeps_the_default_adapter_trainable(tiny_wan, adapters):
    pipe = _pipe(tiny_wan)
    prepare_lora(pipe, LoRAOptions(rank=4, path=[str(adapters[1]), {"path": str(adapters[2]), "name": "frozen"}]))
    # two unnamed-or-named adapters: "adapter0" (unnamed, not "default") and "frozen" -> a fresh default on top
    assert set(pipe.transformer.peft_config) == {"adapter0", "frozen", ADAPTER_NAME}
    resumed = _pipe(tiny_wan)
    prepare_lora(resumed, LoRAOptions(rank=4, path=str(adapters[1])))
    assert list(resumed.transformer.peft_config) == [ADAPTER_NAME]
    params = [p for p in resumed.transformer.parameters() if p.requires_grad]
    assert len(params) == 2 * NUM_LAYERS and all(p.dtype == torch.float32 for p in params)
    with pytest.raises(ValueError, match="weight 1"):
        prepare_lora(_pipe(tiny_wan), LoRAOptions(rank=4, path=[{"path": str(adapters[1]), "weight": 0.5}]))


def _corrupt(src: Path, dst: Path, edit) -> Path:
    state = load_file(str(src / LORA_WEIGHT_NAME))
    dst.mkdir(parents=True)
    save_file(edit(state), str(dst / LORA_WEIGHT_NAME))
    return dst


def test_errors_name_the_path(tiny_wan, adapters, tmp_path):
    pipe = _pipe(tiny_wan)
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        prepare_lora(pipe, LoRAOptions(path=[str(adapters[1]), str(missing)]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=f"empty.*has no {LORA_WEIGHT_NAME}"):
        prepare_lora(pipe, LoRAOptions(path=str(tmp_path / "empty")))
    with pytest.raises(ValueError, match="'stereo' is already used by lora.path\\[0\\]"):
        prepare_lora(pipe, LoRAOptions(path=[{"path": str(adapters[1]), "name": "stereo"},
                                             {"path": str(adapters[2]), "name": "stereo"}]))
    with pytest.raises(ValueError, match="lora.path\\[1\\].name"):
        prepare_lora(pipe, LoRAOptions(path=[{"path": str(adapters[1])}, {"path": str(adapters[2]), "name": "a.b"}]))
    with pytest.raises(ValueError, match="weight"):
        prepare_lora(pipe, LoRAOptions(path=[{"path": str(adapters[1]), "weight": float("nan")}]))
    assert not getattr(pipe.transformer, "peft_config", None)  # nothing loaded by the failed calls

    wide = _corrupt(adapters[1], tmp_path / "wide", lambda s: {k: torch.cat([v, v], 1) if "lora_A" in k else v
                                                              for k, v in s.items()})
    elsewhere = _corrupt(adapters[1], tmp_path / "elsewhere", lambda s: {k.replace("blocks.", "blocks.9"): v
                                                                         for k, v in s.items()})
    partial = _corrupt(adapters[1], tmp_path / "partial", lambda s: {k.replace("blocks.1.", "blocks.7."): v
                                                                     for k, v in s.items()})
    for bad, why in ((wide, "size mismatch"), (elsewhere, "not found"), (partial, "8 of its 16 layers")):
        pipe = _pipe(tiny_wan)
        with pytest.raises(ValueError, match=f"does not fit the WanTransformer3DModel.*{why}") as info:
            prepare_lora(pipe, LoRAOptions(path=[str(adapters[2]), str(bad)]))
        assert str(bad / LORA_WEIGHT_NAME) in str(info.value)
        assert not getattr(pipe.transformer, "peft_config", None), bad.name  # the good one is unloaded again
