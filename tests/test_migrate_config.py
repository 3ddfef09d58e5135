"""scripts/migrate_config.py: flat module keys -> model.disparity/output/evaluation/fit, flat WanStereoGenerator
keys -> its sampling/memory/lora groups; the CLI refuses the old keys naming their new place."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stereo_lit.cli import build_cli
from stereo_lit.diffusion import WanStereoGenerator
from stereo_lit.diffusion.options import FLAT_OPTIONS, LoRAAdapter, group_flat_options

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "migrate_config.py"
ALIAS = REPO / "scripts" / "migrate_generator_config.py"  # the former name

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
  # 3D strength
  max_disparity_pct: 3.5
  output_dir: OUT   # where it goes
  layouts:
    - sbs
    - tb
  encoder:
    codec: h265
  eval_protocol: blind
  learning_rate: 2.0e-4
  convergence: 0.25
data:
  class_path: stereo_lit.data.prompts.PromptDataModule
  init_args:
    prompts: ["a red ball"]
    num_frames: 5
"""


def _migrate(path: Path, *flags: str, script: Path = SCRIPT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *flags, str(path)], capture_output=True, text=True, cwd=REPO)


def test_flat_config_is_rewritten_and_parses_to_the_same_settings(tmp_path: Path) -> None:
    config = tmp_path / "old.yaml"
    flat = FLAT.replace("OUT", str(tmp_path / "out"))
    config.write_text(flat)
    assert _migrate(config, "--check").returncode == 1  # needs migrating
    assert config.read_text() == flat  # --check only reports
    done = _migrate(config)
    assert done.returncode == 0, done.stderr
    assert "moved 15 option(s)" in done.stdout
    assert (tmp_path / "old.yaml.bak").read_text() == flat  # the original is kept
    text = config.read_text()
    assert "# an evaluation config written before" in text and "init_args: {fill: telea}" in text
    assert "      sampling:\n        num_inference_steps: 7   # few steps\n        scheduler: euler\n" in text
    assert "      lora:\n        rank: 4\n        sigma_sampling: uniform\n" in text
    assert "  disparity:\n    # 3D strength\n    max_disparity_pct: 3.5\n    convergence: 0.25\n" in text
    assert "  output:\n    dir: " in text and "   # where it goes\n    layouts:\n      - sbs\n      - tb\n" in text
    assert "    encoder:\n      codec: h265\n" in text
    assert _migrate(config, "--check").returncode == 0  # idempotent: nothing left to move
    again = _migrate(config)
    assert "up to date" in again.stdout and config.read_text() == text

    cli = build_cli(["-c", str(config)], run=False)
    main, other = cli.model.generator, cli.model.baselines[0]
    assert isinstance(main, WanStereoGenerator) and isinstance(other, WanStereoGenerator)
    assert (main.strategy, main.sampling.num_inference_steps, main.sampling.scheduler) == ("repaint", 7, "euler")
    assert (main.memory.dtype, main.memory.device, main.lora.rank, main.lora.sigma_sampling) == ("float32", "cpu", 4, "uniform")
    assert (main.window, main.overlap) == (5, 1)
    assert other.sampling.guidance_scale == 1.0 and other.lora.adapters == [LoRAAdapter("some/adapter")]
    assert other.sampling.num_inference_steps == 50  # the rest keeps its defaults
    model = cli.model
    assert (model.policy.max_disparity_pct, model.policy.convergence) == (3.5, 0.25)
    assert (model.output_dir, model.layouts, model.encoder.codec) == (tmp_path / "out", ["sbs", "tb"], "h265")
    assert (model.real_footage.protocol, model.learning_rate, model.naming) == ("blind", 2e-4, "plain")


def test_the_former_script_name_still_migrates(tmp_path: Path) -> None:
    config = tmp_path / "old.yaml"
    config.write_text(FLAT)
    done = _migrate(config, script=ALIAS)
    assert done.returncode == 0 and "moved 15 option(s)" in done.stdout, done.stderr


def test_flow_style_keys_are_named_for_moving_by_hand(tmp_path: Path) -> None:
    config = tmp_path / "flow.yaml"
    config.write_text("model: {layouts: [sbs], output_dir: out}\n")
    done = _migrate(config)
    assert done.returncode == 1 and config.read_text() == "model: {layouts: [sbs], output_dir: out}\n"
    assert "move by hand: model.layouts moved to model.output.layouts" in done.stdout


def test_the_old_flat_keys_are_refused_by_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "old.yaml"
    config.write_text(FLAT)
    with pytest.raises(SystemExit):
        build_cli(["-c", str(config)], run=False)
    err = capsys.readouterr().err
    assert "model.generator.init_args.num_inference_steps moved to model.generator.init_args.sampling.num_inference_steps" in err
    assert "model.baselines[0].init_args.lora_path moved to model.baselines[0].init_args.lora.path" in err
    assert "model.output_dir moved to model.output.dir (run: python scripts/migrate_config.py FILE)" in err
    with pytest.raises(SystemExit):
        build_cli(["--model.layouts", "[sbs]"], run=False)
    err = capsys.readouterr().err
    assert err.strip() == "stereo-lit: error: model.layouts moved to model.output.layouts (run: python scripts/migrate_config.py FILE)"


def test_the_old_flat_keys_are_refused_from_python() -> None:
    from stereo_lit.module import StereoLitModule

    with pytest.raises(TypeError, match=r"layouts moved to output\.layouts .*migrate_config"):
        StereoLitModule(layouts=["sbs"])


def test_every_flat_key_has_a_field_in_its_group() -> None:
    grouped = group_flat_options(**{key: None for key in FLAT_OPTIONS})
    for group, fields in grouped.items():
        cls = type(getattr(WanStereoGenerator(), group))
        assert set(fields) <= set(cls.__dataclass_fields__), (group, set(fields) - set(cls.__dataclass_fields__))


def test_shipped_configs_are_migrated() -> None:
    configs = sorted((REPO / "stereo_lit" / "configs").glob("*.yaml"))
    done = subprocess.run([sys.executable, str(SCRIPT), "--check", *map(str, configs)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0 and done.stdout.count("up to date") == len(configs) >= 10, done.stdout


def test_a_half_migrated_config_gets_the_rest_into_its_groups(tmp_path: Path) -> None:
    config = tmp_path / "half.yaml"
    config.write_text("model:\n  output:\n    dir: x   # kept\n  layouts: [sbs]\n  fit: {learning_rate: 1.0e-3}\n"
                      "predict:\n  model:\n    convergence: 0.1\n")
    assert _migrate(config).returncode == 0
    assert config.read_text() == ("model:\n  output:\n    dir: x   # kept\n    layouts: [sbs]\n  fit: {learning_rate: 1.0e-3}\n"
                                  "predict:\n  model:\n    disparity:\n      convergence: 0.1\n")
    config.write_text("model:\n  output: {dir: x}\n  layouts: [sbs]\n")  # a flow-style group: by hand
    done = _migrate(config)
    assert done.returncode == 1 and "output: {dir: x} is a flow mapping; move ['layouts'] into it by hand" in done.stderr
