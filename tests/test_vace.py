"""Wan2.1-VACE fill: conditioning as WanVACEPipeline builds it, parity with WanVACEPipeline, x0_blend on
top, backbone detection and loading, on the tiny random VACE folder (5 frames of 32x32, 1-2 steps)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import warnings
from pathlib import Path

import pytest
import torch

import diffusers  # a hard dependency: missing is a failure, not a skip

from pipeline_loading import load_pipeline
from stereo_lit.diffusion.pipeline import WanStereoPipeline  # noqa: E402
from stereo_lit.diffusion.tiny import TINY_VACE_LAYERS, TINY_WAN_DIRNAME, TINY_WAN_VACE_DIRNAME, write_tiny_wan_vace  # noqa: E402
from stereo_lit.diffusion.vace import backbone_of, conditioning_scales, grey_holes, vace_conditioning  # noqa: E402

PROMPT, NEGATIVE = "a cat walks on a table", "blurry ugly"
T, H, W, STEPS = 5, 32, 32, 2


@pytest.fixture(scope="session")
def tiny_vace(tiny_checkpoints) -> Path:
    """The tiny Wan2.1-VACE folder (make_tiny_checkpoints.py writes it by default; written here if not)."""
    return write_tiny_wan_vace(tiny_checkpoints)


@pytest.fixture(scope="module")
def pipe(tiny_vace) -> WanStereoPipeline:
    return load_pipeline(WanStereoPipeline, tiny_vace)


@pytest.fixture(scope="module")
def ref(tiny_vace):
    return load_pipeline(diffusers.WanVACEPipeline, tiny_vace)


@pytest.fixture(scope="module")
def embeds(pipe) -> tuple[torch.Tensor, torch.Tensor]:
    # WanVACEPipeline's own prompt cleaning needs ftfy (not installed): both pipelines get these embeddings.
    # Under no_grad, as inside __call__ (the text encoder's kernels differ by ~5e-7 with grad enabled).
    with torch.no_grad():
        return pipe.encode_prompt(PROMPT, NEGATIVE, max_sequence_length=16)


def _scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random texture; a far plane (4 px) with a near box (9 px): covered regions and disocclusions."""
    left = torch.rand(1, 3, T, H, W, generator=torch.Generator().manual_seed(seed))
    disparity = torch.full((1, 1, T, H, W), 4.0)
    disparity[..., 8:24, 8:24] = 9.0
    return left, disparity


def _run(pipe, embeds, left=None, **kw):
    scene_left, disparity = _scene()
    opts = dict(prompt_embeds=embeds[0], negative_prompt_embeds=embeds[1], num_inference_steps=STEPS,
                guidance_scale=5.0, generator=torch.Generator().manual_seed(7), output_type="latent")
    opts.update(kw)
    return pipe(scene_left if left is None else left, disparity, **opts)


def _reference_conditioning(ref, video_01: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """WanVACEPipeline's own control latents: preprocess_conditions -> prepare_video_latents + prepare_masks."""
    with torch.no_grad():
        video, mask, refs = ref.preprocess_conditions(
            video_01.permute(0, 2, 1, 3, 4), mask.permute(0, 2, 1, 3, 4), None, 1, H, W, T, torch.float32, torch.device("cpu"),
        )
        latents = ref.prepare_video_latents(video, mask, refs, None, torch.device("cpu"))
        return torch.cat([latents, ref.prepare_masks(mask, refs, None)], dim=1)


# ---------------------------------------------------------------------------------------------- conditioning
def test_vace_conditioning_equals_wan_vace_pipelines_own_tensors(ref):
    g = torch.Generator().manual_seed(3)
    video = torch.rand(1, 3, T, H, W, generator=g)
    mask = (torch.rand(1, 1, T, H, W, generator=g) > 0.6).float()
    ours = vace_conditioning(ref.vae, grey_holes(video, mask), mask, ref.transformer.config.patch_size)
    theirs = _reference_conditioning(ref, grey_holes(video, mask), mask)
    assert ours.shape == (1, 96, 1 + (T - 1) // 4, H // 8, W // 8) and ours.dtype == torch.float32
    assert torch.equal(ours, theirs)


def test_mask_channels_are_the_8x8_pixel_unshuffle_at_the_latent_frames(pipe):
    # nearest-exact 5 -> 2 frames samples frames floor((i + 0.5) * 5 / 2) = 1 and 3 (81 -> 21: 1, 5, ..., 79)
    mask = torch.zeros(1, 1, T, H, W)
    mask[0, 0, 1, 9, 3] = 1.0  # -> latent frame 0, cell (1, 0), channel (9 % 8) * 8 + 3 % 8 = 11
    mask[0, 0, 3, 2, 30] = 1.0  # -> latent frame 1, cell (0, 3), channel 2 * 8 + 6 = 22
    mask[0, 0, 0, 5, 5] = mask[0, 0, 4, 5, 5] = 1.0  # frames 0 and 4 are not sampled
    control = vace_conditioning(pipe.vae, torch.rand(1, 3, T, H, W), mask)
    channels = control[0, 32:]
    assert channels.sum() == 2
    assert channels[11, 0, 1, 0] == 1 and channels[22, 1, 0, 3] == 1


def test_grey_holes_and_scales():
    video, mask = torch.rand(1, 3, T, H, W), torch.zeros(1, 1, T, H, W)
    mask[..., :4, :] = 1.0
    grey = grey_holes(video, mask)
    assert (grey[..., :4, :] == 0.5).all() and torch.equal(grey[..., 4:, :], video[..., 4:, :])
    assert conditioning_scales(0.5, TINY_VACE_LAYERS).tolist() == [0.5, 0.5]
    assert conditioning_scales([1.0, 0.25], TINY_VACE_LAYERS).tolist() == [1.0, 0.25]
    with pytest.raises(ValueError, match="one value per VACE layer"):
        conditioning_scales([1.0], TINY_VACE_LAYERS)
    with pytest.raises(ValueError, match="regenerate_mask must be"):
        vace_conditioning(None, video, mask[:, :, :1])


# ---------------------------------------------------------------------------------------------- sampling
@pytest.fixture(scope="module")
def plain(pipe, embeds):
    """Strategy none (pure VACE conditioning), CFG 5, separate cond/uncond calls."""
    return _run(pipe, embeds, strategy="none")


def test_strategy_none_reproduces_wan_vace_pipeline(ref, plain, embeds):
    left, disparity = _scene()
    assert plain.nfe == 2 * STEPS and plain.control_latents.shape == (1, 96, 2, H // 8, W // 8)
    # WanVACEPipeline's inputs, as its users give them: the warped right view, grey where it is to be
    # generated, and the disocclusion mask (1 = generate)
    estimate, known = WanStereoPipeline.right_estimate(left, disparity)
    mask = 1.0 - known
    video = torch.where(mask > 0.5, 0.5, estimate)
    theirs = ref(
        prompt_embeds=embeds[0], negative_prompt_embeds=embeds[1], video=video.permute(0, 2, 1, 3, 4),
        mask=mask.permute(0, 2, 1, 3, 4), height=H, width=W, num_frames=T, num_inference_steps=STEPS, guidance_scale=5.0,
        generator=torch.Generator().manual_seed(7), output_type="latent",
    ).frames
    assert torch.equal(plain.control_latents, _reference_conditioning(ref, video, mask))
    # same noise, same control, same transformer calls, same scheduler steps: bit-identical latents
    assert torch.equal(plain.latents, theirs.float())


def test_every_call_gets_the_control_and_the_scales_and_a_shared_batch_doubles_the_control(pipe, embeds, plain):
    seen: list[tuple] = []

    def spy(module, args, kwargs):
        seen.append((kwargs["hidden_states"].shape[0], kwargs["control_hidden_states"].clone(),
                     kwargs["control_hidden_states_scale"].tolist()))

    handle = pipe.transformer.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        shared = _run(pipe, embeds, strategy="none", batch_mode="shared", conditioning_scale=[1.0, 0.25])
    finally:
        handle.remove()
    assert shared.nfe == len(seen) == STEPS
    for batch, control, scales in seen:  # cond + uncond in one batch: the control twice
        assert batch == 2 and torch.equal(control, torch.cat([shared.control_latents] * 2))
        assert scales == [1.0, 0.25]
    with pytest.raises(ValueError, match="conditioning_scale"):
        _run(pipe, embeds, conditioning_scale=[1.0, 1.0, 1.0])  # one per VACE layer (2)


def test_x0_blend_on_vace_holds_the_known_region(pipe, embeds, plain):
    out = _run(pipe, embeds, strategy="x0_blend", guidance_stop=1.0)
    known = out.latent_mask.expand_as(out.latents) > 0.5
    assert known.float().mean() > 0.2
    # the last step lands on the blended clean prediction: the known cells are the encoded warp
    # (float32 rounding of the scheduler's update, as on the T2V backbone)
    assert (out.latents - out.known_latent)[known].abs().max() <= 1e-5
    assert (out.latents - out.known_latent)[~known].abs().max() > 0.1  # the model fills the rest
    assert (plain.latents - out.known_latent)[known].abs().max() > 0.1  # VACE alone does not hold it


# ---------------------------------------------------------------------------------------------- folders
def test_backbone_of_folders_models_and_errors(tiny_checkpoints, tiny_vace, pipe, tmp_path):
    assert backbone_of(tiny_checkpoints / TINY_WAN_DIRNAME) == "t2v"
    assert backbone_of(tiny_vace) == "vace"
    assert backbone_of(pipe.transformer) == "vace" and backbone_of(pipe) == "vace" and pipe.backbone == "vace"
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "model_index.json").write_text(json.dumps(
        {"_class_name": "WanPipeline", "transformer": ["diffusers", "WanVACETransformer3DModel"]}
    ))
    assert backbone_of(odd) == "vace"  # the transformer entry decides: it is the class that loads
    (odd / "model_index.json").write_text(json.dumps(
        {"_class_name": "WanImageToVideoPipeline", "transformer": ["diffusers", "WanTransformer3DModel"]}
    ))
    with pytest.raises(ValueError, match="WanImageToVideoPipeline"):  # same transformer class, other inputs
        backbone_of(odd)
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        backbone_of(tmp_path / "missing")
    with pytest.raises(ValueError, match="not a Wan2.1 transformer"):
        backbone_of(torch.nn.Linear(2, 2))


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("index", ["as_saved", "without_wan22_keys"])
def test_from_pretrained_loads_an_unchanged_vace_folder_without_warnings(tiny_vace, tmp_path, index):
    folder = tiny_vace
    if index == "without_wan22_keys":  # older diffusers folders: no transformer_2 / boundary_ratio
        folder = tmp_path / TINY_WAN_VACE_DIRNAME
        shutil.copytree(tiny_vace, folder)
        config = json.loads((folder / "model_index.json").read_text())
        del config["transformer_2"], config["boundary_ratio"]
        (folder / "model_index.json").write_text(json.dumps(config))
    assert "transformer_2" in json.loads((folder / "model_index.json").read_text()) or index != "as_saved"
    before = _digest(folder)
    records, logger = _Records(), logging.getLogger("diffusers")
    logger.addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pipe = WanStereoPipeline.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    finally:
        logger.removeHandler(records)
    assert records.messages == [] and [str(w.message) for w in caught] == []
    assert type(pipe.transformer).__name__ == "WanVACETransformer3DModel"
    assert set(pipe.components) == {"vae", "text_encoder", "tokenizer", "transformer", "scheduler"}
    assert _digest(folder) == before  # read, never rewritten


def test_load_wan_loads_the_vace_folder(tiny_vace):
    from stereo_lit.diffusion.loading import load_wan

    components = load_wan(tiny_vace, dtype="float32", device="cpu")
    assert backbone_of(components.transformer) == "vace"
    assert components.transformer.config.vace_layers == list(TINY_VACE_LAYERS)
    assert components.vae.dtype == torch.float32


# ---------------------------------------------------------------------------------------------- eval configs
VACE_REAL = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
WAN_T2V_REAL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
REPO = Path(__file__).resolve().parents[1]


def _vace_rows(cli) -> list:
    from stereo_lit.diffusion.generator import WanStereoGenerator

    return [m for m in cli.model.methods if isinstance(m, WanStereoGenerator) and m.backbone == "vace"]


@pytest.mark.parametrize("name", ["eval_tartanair.yaml", "eval_stereo_video.yaml"])
def test_eval_configs_have_a_vace_row_filled_by_vace_checkpoint(tmp_path, name):
    from stereo_lit.cli import build_cli

    cli = build_cli(["-c", str(REPO / "stereo_lit" / "configs" / name), "--model.wan_checkpoint", str(tmp_path / "t2v")], run=False)
    (row,) = _vace_rows(cli)
    assert row.checkpoint == Path(VACE_REAL)  # model.vace_checkpoint; model.wan_checkpoint (T2V) does not reach it
    assert row.sampling.conditioning_scale == 1.0 and row.sampling.num_inference_steps == 50
    cli = build_cli(["-c", str(REPO / "stereo_lit" / "configs" / name), "--model.vace_checkpoint", str(tmp_path / "vace")], run=False)
    (row,) = _vace_rows(cli)
    assert row.checkpoint == tmp_path / "vace"  # one override reaches the VACE rows...
    from stereo_lit.diffusion.generator import WanStereoGenerator

    assert all(m.checkpoint == Path(WAN_T2V_REAL) for m in cli.model.methods  # ...and no T2V row
               if isinstance(m, WanStereoGenerator) and m.backbone != "vace")


@pytest.mark.slow
def test_stereo_lit_test_with_the_shipped_vace_row_reports_it(tiny_checkpoints, tiny_vace, tmp_path):
    """``stereo-lit test`` through the real CLI: eval_tartanair.yaml's VACE row (lengths shortened, its
    checkpoint the tiny VACE folder) beside WarpFill, on a 9-frame TartanAir sequence."""
    import yaml

    from stereo_lit.cli import build_cli
    from stereo_lit.data.synthetic import render_sequence, write_tartanair_sequence

    config = yaml.safe_load((REPO / "stereo_lit" / "configs" / "eval_tartanair.yaml").read_text())
    (row,) = [b for b in config["model"]["baselines"] if b.get("init_args", {}).get("backbone") == "vace"]
    assert config["model"]["vace_checkpoint"] == VACE_REAL
    row["init_args"].update(window=5, overlap=1)
    row["init_args"]["sampling"]["num_inference_steps"] = 2
    config["model"].update(
        generator=row, baselines=[{"class_path": "stereo_lit.generators.geometric.WarpFill"}],
        wan_checkpoint=str(tiny_checkpoints / TINY_WAN_DIRNAME), vace_checkpoint=str(tiny_vace),
    )
    config["data"]["init_args"].update(clip_frames=9, stride=9, size=None)
    path = tmp_path / "eval_vace.yaml"
    path.write_text(yaml.safe_dump(config))
    root, out = tmp_path / "tartanair", tmp_path / "out"
    write_tartanair_sequence(render_sequence(9, 32, 48, seed=1), root / "EnvA" / "Easy" / "P000")
    cli = build_cli(["test", "-c", str(path), "--data.init_args.root", str(root), "--model.output.dir", str(out),
                     "--trainer.logger", "false"])
    (vace,) = _vace_rows(cli)
    assert backbone_of(vace.components.transformer) == "vace"
    table = json.loads((out / "eval" / "test_metrics.json").read_text())
    assert {vace.name, "warp_fill"} <= set(table["methods"])
    row = table["methods"][vace.name]
    assert row["psnr_all"] > 0 and "seam_jump_ratio" in row  # 9 frames in 5-frame windows: one seam
