"""The first hour with `stereo-lit` (issue 11, items 2-6): help, progress, quiet output, logs, silent cases.

Every test drives the real CLI (``stereo_lit.cli.main`` / ``build_cli``) or the exact piece it uses.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch

from stereo_lit import cli as cli_module
from stereo_lit import quiet
from stereo_lit.cli import build_cli, config_summaries, log_every_n_steps, main
from stereo_lit.data.synthetic import render_sequence, write_tartanair_sequence
from stereo_lit.generators.geometric import WarpFill

REPO = Path(__file__).resolve().parents[1]


def _run_main(args: list[str]) -> tuple[int | None, str]:
    """``main(args)`` -> (exit code or None, stdout)."""
    out = io.StringIO()
    code = None
    with contextlib.redirect_stdout(out):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue()


# ---------------------------------------------------------------------- 2. discoverable options
@pytest.fixture(scope="module")
def predict_help() -> str:
    code, text = _run_main(["predict", "--help"])
    assert code == 0
    return " ".join(text.split())  # argparse wraps lines: compare on single spaces


def test_top_level_help_names_the_jobs_and_every_shipped_config() -> None:
    code, text = _run_main(["--help"])
    assert code == 0
    for job in ("fit", "validate", "test", "predict"):
        assert f"\n  {job} " in text, job
    flat = " ".join(text.split())  # summaries are wrapped, never cut
    for config in sorted((REPO / "stereo_lit" / "configs").glob("*.yaml")):
        first = next(line for line in config.read_text().splitlines() if line.startswith("#")).lstrip("#").strip()
        assert f"  {config.name} " in text and " ".join(first.split()) in flat, config.name
    # the whole first sentence, not its first line: demo.yaml's runs over two comment lines
    assert "on a synthetic TartanAir-layout sequence (scripts/demo.sh renders it into demo_data/synthetic)." in flat


def test_config_list_reads_first_comment_and_degrades_without_a_folder(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "b.yaml").write_text("seed_everything: 0\n# later comment\n")
    (tmp_path / "a.yaml").write_text("# A: first line\n# second\nmodel: {}\n")
    assert config_summaries(tmp_path) == [("a.yaml", "A: first line second"), ("b.yaml", "later comment")]
    monkeypatch.setattr(cli_module, "configs_dir", lambda: None)
    assert "configs: none found" in cli_module.description()


def test_job_help_lists_every_shipped_generator_and_datamodule(predict_help: str) -> None:
    for name in ("WanStereoGenerator", "WarpFill", "WarpOnly", "CopyLeft", "TartanAirDataModule",
                 "WildVideoDataModule", "PromptDataModule", "StereoVideoDataModule", "StereoImagesDataModule"):
        assert name in predict_help, name


def test_option_help_carries_the_readme_meaning(predict_help: str) -> None:
    assert "0 = screen at infinity (everything pops out), 1 = screen at the nearest surface" in predict_help
    assert "strongest disparity in % of the frame width" in predict_help


def test_class_help_by_short_name() -> None:
    code, text = _run_main(["predict", "--model.generator.help", "WanStereoGenerator"])
    assert code == 0
    for option in ("sampling.num_inference_steps", "memory.offload", "lora.rank", "lora.path"):  # the grouped options
        assert f"--model.generator.init_args.{option}" in text or f"--model.generator.{option}" in text, option


# ---------------------------------------------------------------------- 3. progress
def _boring_fit(tmp_path: Path, max_steps: int, accumulate: int):
    from lightning.pytorch import Trainer
    from lightning.pytorch.demos.boring_classes import BoringModel

    from stereo_lit.progress import StepProgressBar

    bar = StepProgressBar()
    trainer = Trainer(
        max_steps=max_steps, accumulate_grad_batches=accumulate, callbacks=[bar], logger=False,
        enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path, limit_val_batches=0,
        accelerator="cpu",
    )
    model = BoringModel()
    trainer.fit(model)
    return trainer, bar


def test_fit_bar_counts_optimizer_steps_out_of_max_steps(tmp_path: Path) -> None:
    trainer, bar = _boring_fit(tmp_path, max_steps=5, accumulate=3)  # 64 batches an epoch: 15 batches, 5 steps
    assert trainer.global_step == 5
    assert bar.train_progress_bar.total == 5 and bar.train_progress_bar.n == 5
    assert "steps" in bar.train_progress_bar.desc


def test_log_every_n_steps_gives_short_fits_every_step() -> None:
    assert [log_every_n_steps(n) for n in (1, 3, 39, 40, 100, 2000, 10**6)] == [1, 1, 1, 2, 5, 50, 50]


class TinyTrainable(WarpFill):
    """A WarpFill with one trainable scalar: a fit that runs in a second (test only)."""

    name = "tiny_trainable"

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)

    def trainable_modules(self) -> list[torch.nn.Module]:
        return [self.layer]

    def training_loss(self, batch: dict[str, Any], disparity_left_px: Any = None) -> dict[str, torch.Tensor]:
        x = batch["left"].float().mean().reshape(1, 1)
        loss = (self.layer(x) - 1.0).pow(2).mean()
        return {"loss": loss}


@pytest.fixture(scope="module")
def tiny_tartanair(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tartanair")
    for trajectory in ("EnvA/Easy/P000", "EnvA/Easy/P001"):
        write_tartanair_sequence(render_sequence(5, 32, 48, seed=len(trajectory)), root / trajectory)
    return root


def _fit_args(root: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "fit", "--model.generator", "test_cli_ux.TinyTrainable", "--model.output.dir", str(tmp_path / "out"),
        "--data", "stereo_lit.data.tartanair.TartanAirDataModule", "--data.init_args.root", str(root),
        "--data.init_args.train", '["*/Easy/P001"]', "--data.init_args.val", '["*/Easy/P000"]',
        "--data.init_args.clip_frames", "5", "--data.init_args.window", "5", "--data.init_args.overlap", "1",
        "--trainer.max_steps", "3", "--trainer.accelerator", "cpu", "--trainer.limit_val_batches", "0",
        "--trainer.logger", "lightning.pytorch.loggers.TensorBoardLogger",
        "--trainer.logger.init_args.save_dir", str(tmp_path / "tb"), "--trainer.logger.init_args.name", "run",
        *extra,
    ]


def _scalars(log_dir: Path) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_short_fit_logs_lr_and_loss_every_step_and_the_resolved_config(
    tiny_tartanair: Path, tmp_path: Path, capsys
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet.install()
        cli = build_cli(_fit_args(tiny_tartanair, tmp_path))
    assert cli.trainer.global_step == 3
    log_dir = Path(cli.trainer.logger.log_dir)
    scalars = _scalars(log_dir)
    lr = [tag for tag in scalars if tag.startswith("lr-")]
    assert lr and scalars[lr[0]] == [0, 1, 2], scalars  # LearningRateMonitor, every step
    assert scalars["train/loss"] == [0, 1, 2], scalars
    hparams = (log_dir / "hparams.yaml").read_text()
    assert "TinyTrainable" in hparams and "clip_frames: 5" in hparams and "max_steps: 3" in hparams
    # quiet: none of the known harmless warnings reached the user
    messages = [str(w.message) for w in caught]
    for pattern, _ in quiet.HARMLESS_WARNINGS:
        import re

        assert not any(re.match(pattern, m) for m in messages), (pattern, messages)
    from stereo_lit.progress import StepProgressBar

    assert isinstance(cli.trainer.progress_bar_callback, StepProgressBar)
    printed = capsys.readouterr()
    text = printed.out + printed.err
    assert "fit (steps)" in text and "3/3" in text and "Epoch" not in text


def test_failed_fit_leaves_no_empty_version_folder(tiny_tartanair: Path, tmp_path: Path) -> None:
    # WarpFill has nothing to train: configure_optimizers fails after the logger made its folder
    bad = _fit_args(tiny_tartanair, tmp_path, "--model.generator", "stereo_lit.generators.geometric.WarpFill")
    with pytest.raises(ValueError, match="nothing to train"):
        main(bad)
    run_dir = tmp_path / "tb" / "run"
    assert not run_dir.exists() or not any(run_dir.iterdir()), list(run_dir.rglob("*"))


# ---------------------------------------------------------------------- 4. quiet by default
@pytest.mark.parametrize("verbose", [False, True])
def test_harmless_warnings_filtered_unless_verbose(verbose: bool, monkeypatch, caplog) -> None:
    monkeypatch.delenv(quiet.LOG_LEVEL_ENV, raising=False)
    from lightning.pytorch.utilities.rank_zero import rank_zero_info

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        level = quiet.install(verbose)
        warnings.warn("Your `IterableDataset` has `__len__` defined. In combination with ...", UserWarning)
        warnings.warn("Found 3 module(s) in eval mode at the start of training.", UserWarning)
        warnings.warn("something the user must see", UserWarning)
        with caplog.at_level(logging.INFO):
            rank_zero_info("💡 Tip: For seamless cloud logging, try installing [litlogger](https://x) to enable")
            rank_zero_info("GPU available: False")
    shown = [str(w.message) for w in caught]
    logged = caplog.text
    quiet.uninstall()
    assert "something the user must see" in shown and "GPU available" in logged
    if verbose:
        assert level == logging.DEBUG and len(shown) == 3 and "litlogger" in logged
    else:
        assert level == logging.INFO and shown == ["something the user must see"] and "litlogger" not in logged


def test_log_level_from_environment(monkeypatch) -> None:
    monkeypatch.setenv(quiet.LOG_LEVEL_ENV, "debug")
    assert quiet.log_level_from_env() == logging.DEBUG
    monkeypatch.setenv(quiet.LOG_LEVEL_ENV, "loud")
    with pytest.raises(ValueError, match="STEREO_LIT_LOG_LEVEL"):
        quiet.log_level_from_env()


def test_main_strips_verbose_flag(monkeypatch) -> None:
    seen = {}
    monkeypatch.setattr(cli_module.quiet, "install", lambda verbose=False: seen.setdefault("verbose", verbose))
    code, text = _run_main(["-v", "--help"])
    assert code == 0 and seen == {"verbose": True} and "predict" in text


# ---------------------------------------------------------------------- 6. silent cases
def test_clip_frames_longer_than_a_sequence_says_so_and_uses_its_length(tmp_path: Path, caplog) -> None:
    from stereo_lit.data.tartanair import TartanAirDataModule

    root = write_tartanair_sequence(render_sequence(9, 32, 48, seed=1), tmp_path / "synthetic")
    datamodule = TartanAirDataModule(str(root), clip_frames=33, window=5, overlap=1)
    datamodule.setup("test")
    with caplog.at_level(logging.WARNING, logger="stereo_lit.data.tartanair"):
        sample = next(iter(datamodule.dataset("test")))
    assert sample["left"].shape[1] == 9 and sample["padding"]["frames"] == 0  # not padded to 33
    assert "clip_frames=33" in caplog.text and "9 frames" in caplog.text


def _remux(src: Path, dst: Path) -> None:
    """Copy the packets of ``src`` into a new container (other bytes, identical frames)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="matroska") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)


def test_depth_cache_hits_for_a_remux_with_identical_frames(tmp_path: Path, monkeypatch) -> None:
    from stereo_lit.depth import VDAEstimator, write_tiny_vda
    from stereo_lit.depth.source import whole_video_depth
    from stereo_lit.io.video_reader import iter_frames
    from test_video_reader import write_test_clip

    original, remuxed = tmp_path / "clip.mp4", tmp_path / "clip_remux.mkv"
    write_test_clip(original, num_frames=6, height=32, width=48)
    _remux(original, remuxed)
    assert original.read_bytes() != remuxed.read_bytes()
    first_frames = np.stack(list(iter_frames(str(original), fps=10.0, size=(32, 48))))
    assert np.array_equal(first_frames, np.stack(list(iter_frames(str(remuxed), fps=10.0, size=(32, 48)))))

    checkpoint = write_tiny_vda(tmp_path / "ckpt")
    estimator = VDAEstimator(str(checkpoint), input_size=14, device="cpu", cache_dir=str(tmp_path / "cache"), progress=False)
    first = np.array(whole_video_depth(estimator, str(original), 10.0, (32, 48)))

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("depth was estimated again: the remux missed the cache")

    monkeypatch.setattr("stereo_lit.depth.estimator.stream_video_depth", forbidden)
    np.testing.assert_array_equal(np.array(whole_video_depth(estimator, str(remuxed), 10.0, (32, 48))), first)


# ---------------------------------------------------------------------- 5. adapter permissions
def test_saved_adapter_has_the_permissions_of_other_outputs(tiny_checkpoints: Path, tmp_path: Path) -> None:
    from stereo_lit.diffusion.loading import load_wan
    from stereo_lit.diffusion.lora import add_lora, save_lora

    models = load_wan(str(tiny_checkpoints / "Wan2.1-T2V-tiny-Diffusers"), device="cpu", dtype=torch.float32)
    transformer = models.transformer if hasattr(models, "transformer") else models["transformer"]
    add_lora(transformer, rank=2)
    old = os.umask(0o022)
    try:
        path = save_lora(transformer, tmp_path / "lora")
        other = tmp_path / "other.txt"
        other.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(other.stat().st_mode) == 0o644


def test_loading_an_adapter_names_it_and_counts_its_layers(tmp_path: Path, caplog) -> None:
    from diffusers import WanPipeline

    from stereo_lit.diffusion.lora import add_lora, load_lora_into, save_lora
    from stereo_lit.diffusion.tiny import write_tiny_wan

    folder = write_tiny_wan(tmp_path / "ckpt", seed=0)
    source = WanPipeline.from_pretrained(folder, local_files_only=True).transformer
    add_lora(source, rank=2, target_modules=("to_q", "to_k"))
    expected = sum(1 for name, _ in source.named_modules() if name.endswith((".to_q", ".to_k")))
    save_lora(source, tmp_path / "lora")
    with caplog.at_level(logging.INFO, logger="stereo_lit.diffusion.lora"):
        load_lora_into(WanPipeline.from_pretrained(folder, local_files_only=True), tmp_path / "lora")
    assert expected > 0
    assert f"adapter 'default' (weight 1)" in caplog.text and f": {expected} layers of the transformer" in caplog.text
    assert str(tmp_path / "lora") in caplog.text


def test_prompt_outputs_include_the_generated_left_view(tmp_path: Path) -> None:
    from stereo_lit.predict.writer import _VideoOutputs

    left = np.full((5, 32, 48, 3), 200, np.uint8)
    right = np.full((5, 32, 48, 3), 50, np.uint8)
    outputs = _VideoOutputs("prompt_000_a_red_fox", tmp_path / "prompt", ["right", "sbs"], 8.0, 5)
    outputs.write(0, left, right, None, 0.0)
    files = outputs.close()
    assert files["left"]["file"] == "left.mp4" and files["left"]["frames"] == 5
    with av.open(str(tmp_path / "prompt" / "left.mp4")) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert decoded.shape == (5, 32, 48, 3) and abs(float(decoded.mean()) - 200) < 3
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"")  # a real source video: its left view is the input, not written again
    plain = _VideoOutputs(str(source), tmp_path / "clip", ["right"], 8.0, 5)
    assert "left" not in plain.writers
    plain.abort()
