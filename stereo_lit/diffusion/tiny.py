"""A tiny random Wan2.1 Diffusers folder, written without downloading anything.

The folder has the layout of a real ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers`` checkpoint
(``model_index.json`` + one sub-folder per component) so that the real loading code
(:func:`stereo_lit.diffusion.loading.load_wan`) and ``WanPipeline.from_pretrained`` read
it exactly as they read the real one. Sizes follow diffusers' own Wan pipeline tests:
a 2-layer transformer of width 24, a VAE of base width 3, a 2-layer UMT5 text encoder
of width 32 and a word-level tokenizer trained here on a handful of sentences.

Used by tests, CI and the demo (``data_prep/make_tiny_checkpoints.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

#: Sub-folder name written inside ``out_dir``.
TINY_WAN_DIRNAME = "Wan2.1-T2V-tiny-Diffusers"
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


def _write_model_index(folder: Path) -> None:
    import diffusers

    index = {
        "_class_name": "WanPipeline",
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


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
    transformer = WanTransformer3DModel(
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


def write_tiny_wan(out_dir: Path, seed: int = 0) -> Path:
    """Write ``out_dir/Wan2.1-T2V-tiny-Diffusers`` (atomically) and return its path.

    Skips the work when a complete, current folder is already there (an outdated one is
    replaced). Nothing is downloaded.
    """
    out_dir = Path(out_dir)
    folder = out_dir / TINY_WAN_DIRNAME
    if _is_complete(folder):
        return folder
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = tiny_wan_components(seed)
    tmp = Path(tempfile.mkdtemp(prefix=f".{TINY_WAN_DIRNAME}.", dir=out_dir))
    try:
        for name, part in parts.items():
            part.save_pretrained(tmp / name)
        _write_model_index(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
