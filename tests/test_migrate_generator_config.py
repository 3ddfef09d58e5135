"""scripts/migrate_generator_config.py: flat WanStereoGenerator keys -> the sampling/memory/lora groups."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stereo_lit.cli import build_cli
from stereo_lit.diffusion import WanStereoGenerator
from stereo_lit.diffusion.options import FLAT_OPTIONS, LoRAAdapter, group_flat_options

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "migrate_generator_config.py"

FLAT = """\
# an evaluation config written before the options were grouped
model:
  generator:
    class_path: stereo_lit.diffusion.WanStereoGenerator
    init_args:
      strategy: repaint
      num_inference_steps: 7   # few steps
      scheduler: euler
      dtype: float32
      device: cpu
      lora_rank: 4
      train_sigma_sampling: uniform
      window: 5
      overlap: 1
  baselines:
    - class_path: stereo_lit.diffusion.WanStereoGenerator
      init_args:
        guidance_scale: 1.0
        lora_path: some/adapter
    - class_path: stereo_lit.generators.geometric.WarpFill
      init_args: {fill: telea}
data:
  class_path: stereo_lit.data.prompts.PromptDataModule
  init_args:
    prompts: ["a red ball"]
    num_frames: 5
"""


def _migrate(path: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *flags, str(path)], capture_output=True, text=True, cwd=REPO)


def test_flat_config_is_rewritten_and_parses_to_the_same_settings(tmp_path: Path) -> None:
    config = tmp_path / "old.yaml"
    config.write_text(FLAT)
    assert _migrate(config, "--check").returncode == 1  # needs migrating
    done = _migrate(config)
    assert done.returncode == 0, done.stderr
    assert "moved 8 option(s)" in done.stdout
    assert (tmp_path / "old.yaml.bak").read_text() == FLAT  # the original is kept
    text = config.read_text()
    assert "# an evaluation config written before" in text and "init_args: {fill: telea}" in text
    assert "sampling: {num_inference_steps: 7, scheduler: euler}" in text
    assert "lora: {rank: 4, sigma_sampling: uniform}" in text
    assert _migrate(config, "--check").returncode == 0  # idempotent: nothing left to move

    cli = build_cli(["-c", str(config), "--model.output.dir", str(tmp_path / "out")], run=False)
    main, other = cli.model.generator, cli.model.baselines[0]
    assert isinstance(main, WanStereoGenerator) and isinstance(other, WanStereoGenerator)
    assert (main.strategy, main.sampling.num_inference_steps, main.sampling.scheduler) == ("repaint", 7, "euler")
    assert (main.memory.dtype, main.memory.device, main.lora.rank, main.lora.sigma_sampling) == ("float32", "cpu", 4, "uniform")
    assert (main.window, main.overlap) == (5, 1)
    assert other.sampling.guidance_scale == 1.0 and other.lora.adapters == [LoRAAdapter("some/adapter")]
    assert other.sampling.num_inference_steps == 50  # the rest keeps its defaults


def test_the_old_flat_keys_are_refused_by_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "old.yaml"
    config.write_text(FLAT)
    with pytest.raises(SystemExit):
        build_cli(["-c", str(config), "--model.output.dir", str(tmp_path / "out")], run=False)
    assert "num_inference_steps" in capsys.readouterr().err  # the error names the old key


def test_every_flat_key_has_a_field_in_its_group() -> None:
    grouped = group_flat_options(**{key: None for key in FLAT_OPTIONS})
    for group, fields in grouped.items():
        cls = type(getattr(WanStereoGenerator(), group))
        assert set(fields) <= set(cls.__dataclass_fields__), (group, set(fields) - set(cls.__dataclass_fields__))


def test_shipped_configs_are_migrated() -> None:
    done = _migrate(REPO / "stereo_lit" / "configs" / "predict_wild.yaml", "--check")
    assert done.returncode == 0 and "up to date" in done.stdout
