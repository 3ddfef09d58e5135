"""Tiny random Wan2.1 Diffusers folders (T2V and VACE), written without downloading anything.

The folders have the layout of the real ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers`` and
``Wan-AI/Wan2.1-VACE-1.3B-diffusers`` checkpoints (``model_index.json`` + one sub-folder per
component) so that the real loading code (:func:`stereo_lit.diffusion.loading.load_wan`),
``WanPipeline.from_pretrained`` and ``WanVACEPipeline.from_pretrained`` read them exactly as
they read the real ones. Sizes follow diffusers' own Wan pipeline tests: a 2-layer transformer
of width 24 (VACE: 3 layers, VACE blocks at layers 0 and 2), a VAE of base width 3, a 2-layer
UMT5 text encoder of width 32 and a word-level tokenizer trained here on a handful of sentences;
the VACE folder has the same VAE, text encoder and tokenizer as the T2V one.

Used by tests, CI and the demo (``data_prep/make_tiny_checkpoints.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch

#: Sub-folder name written inside ``out_dir``.
TINY_WAN_DIRNAME = "Wan2.1-T2V-tiny-Diffusers"
#: Sub-folder name of the tiny VACE folder (:func:`write_tiny_wan_vace`).
TINY_WAN_VACE_DIRNAME = "Wan2.1-VACE-tiny-Diffusers"
#: The tiny VACE transformer's layers with a VACE block (Wan2.1-VACE-1.3B: every 2nd of 30).
TINY_VACE_LAYERS = (0, 2)
#: Width of the tiny text encoder; the transformer's ``text_dim`` must match it.
TINY_TEXT_DIM = 32
#: RoPE positions per axis, as Wan2.1's own transformers (``rope_max_seq_len`` 1024): with
#: patch 2 and the VAE's 8x, frames up to 16384 px per side (and 1024 latent frames).
TINY_ROPE_MAX_SEQ_LEN = 1024

_TOKENIZER_CORPUS = [
    "a cat walks on a wooden table in the kitchen",
    "a car drives down a city street at night with lights",
    "waves roll onto a sandy beach under a blue sky",
    "a person rides a bicycle through a green park",
    "snow falls on mountains and trees in the forest",
    "a red ball bounces in a bright room",
    "camera moves slowly along a river with boats",
    "colors are low quality blurry static worst ugly",
]


def _build_tokenizer():
    """A word-level T5-style tokenizer (``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, eos appended)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["<pad>", "</s>", "<unk>"], min_frequency=1)
    tok.train_from_iterator(_TOKENIZER_CORPUS, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def _write_model_index(folder: Path, vace: bool = False) -> None:
    """``model_index.json`` as the real folders have it (VACE: as ``WanVACEPipeline.save_pretrained``
    writes it in diffusers >= 0.35, with the optional Wan2.2 ``transformer_2`` and ``boundary_ratio``)."""
    import diffusers

    index: dict = {
        "_class_name": "WanVACEPipeline" if vace else "WanPipeline",
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
        "transformer": ["diffusers", "WanVACETransformer3DModel" if vace else "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"],
    }
    if vace:
        index.update(transformer_2=[None, None], boundary_ratio=None)
    (folder / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def _tiny_transformer_kwargs() -> dict:
    return dict(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=TINY_TEXT_DIM,
        freq_dim=32,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=TINY_ROPE_MAX_SEQ_LEN,
    )


def tiny_wan_components(seed: int = 0, flow_shift: float = 3.0) -> dict:
    """The tiny random components, in memory: ``vae, transformer, scheduler, text_encoder, tokenizer``."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = _build_tokenizer()
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    torch.manual_seed(seed + 1)
    transformer = WanTransformer3DModel(**_tiny_transformer_kwargs())
    torch.manual_seed(seed + 2)
    text_config = UMT5Config(
        vocab_size=len(tokenizer),
        d_model=TINY_TEXT_DIM,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        is_encoder_decoder=False,
        use_cache=False,
    )
    text_encoder = UMT5EncoderModel(text_config).eval()
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=flow_shift, num_train_timesteps=1000
    )
    return {
        "vae": vae.eval(),
        "transformer": transformer.eval(),
        "scheduler": scheduler,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
    }


def tiny_wan_vace_components(seed: int = 0, flow_shift: float = 3.0) -> dict:
    """The tiny VACE components: :func:`tiny_wan_components`' VAE, text encoder, tokenizer and
    scheduler with a ``WanVACETransformer3DModel`` (3 layers, VACE blocks at :data:`TINY_VACE_LAYERS`)."""
    from diffusers import WanVACETransformer3DModel

    parts = tiny_wan_components(seed, flow_shift)
    torch.manual_seed(seed + 3)
    kwargs = _tiny_transformer_kwargs()
    kwargs.update(num_layers=3, vace_layers=list(TINY_VACE_LAYERS), vace_in_channels=96)
    parts["transformer"] = WanVACETransformer3DModel(**kwargs).eval()
    return parts


def _is_complete(folder: Path) -> bool:
    """True when ``folder`` holds every part, written with the current settings.

    Folders from older versions (``rope_max_seq_len`` 32: nothing above 512 px per side)
    count as incomplete, so they are rewritten.
    """
    needed = ["model_index.json", "vae/config.json", "transformer/config.json", "scheduler/scheduler_config.json",
              "text_encoder/config.json", "tokenizer/tokenizer.json"]
    if not all((folder / name).is_file() for name in needed):
        return False
    config = json.loads((folder / "transformer" / "config.json").read_text())
    return config.get("rope_max_seq_len") == TINY_ROPE_MAX_SEQ_LEN


def _write_atomically(folder: Path, write: "Callable[[Path], None]") -> None:
    """``write(tmp)`` into a temporary sibling of ``folder``, then move it into place (replacing ``folder``)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_tiny_wan(out_dir: Path, seed: int = 0) -> Path:
    """Write ``out_dir/Wan2.1-T2V-tiny-Diffusers`` (atomically) and return its path.

    Skips the work when a complete, current folder is already there (an outdated one is
    replaced). Nothing is downloaded.
    """
    folder = Path(out_dir) / TINY_WAN_DIRNAME
    if _is_complete(folder):
        return folder

    def write(tmp: Path) -> None:
        for name, part in tiny_wan_components(seed).items():
            part.save_pretrained(tmp / name)
        _write_model_index(tmp)

    _write_atomically(folder, write)
    return folder


def _is_complete_vace(folder: Path) -> bool:
    if not _is_complete(folder):
        return False
    index = json.loads((folder / "model_index.json").read_text())
    config = json.loads((folder / "transformer" / "config.json").read_text())
    return index.get("_class_name") == "WanVACEPipeline" and config.get("vace_layers") == list(TINY_VACE_LAYERS)


def write_tiny_wan_vace(out_dir: Path, seed: int = 0) -> Path:
    """Write ``out_dir/Wan2.1-VACE-tiny-Diffusers`` (atomically) and return its path.

    The layout of ``Wan-AI/Wan2.1-VACE-1.3B-diffusers`` (``model_index.json``: ``_class_name``
    ``WanVACEPipeline``, ``transformer`` ``WanVACETransformer3DModel``, ``transformer_2: [null, null]``,
    ``boundary_ratio: null``). Skips the work when a complete folder is there. Nothing is downloaded.
    """
    folder = Path(out_dir) / TINY_WAN_VACE_DIRNAME
    if _is_complete_vace(folder):
        return folder

    def write(tmp: Path) -> None:
        for name, part in tiny_wan_vace_components(seed).items():
            part.save_pretrained(tmp / name)
        _write_model_index(tmp, vace=True)

    _write_atomically(folder, write)
    return folder
