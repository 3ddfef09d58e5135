"""A wheel built from the repository, installed outside it, finds its configs by name and runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installed_outside_the_repository_runs_configs_by_name(tmp_path: Path) -> None:
    source = tmp_path / "src"  # build from a copy: pip builds in-tree and would leave build/ in the checkout
    shutil.copytree(REPO / "stereo_lit", source / "stereo_lit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    wheels, target, away = tmp_path / "wheels", tmp_path / "target", tmp_path / "elsewhere"
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(source)],
                   check=True, env=env, cwd=away)
    (wheel,) = wheels.glob("stereo_lit-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, env=env, cwd=away)
    env = dict(env, PYTHONPATH=str(target), HF_HUB_OFFLINE="1")  # the wheel first, then the venv's packages

    def run(*args: str) -> str:
        done = subprocess.run([str(target / "bin" / "stereo-lit"), *args], capture_output=True, text=True, env=env, cwd=away, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    where = subprocess.run([sys.executable, "-c", "import stereo_lit; print(stereo_lit.__file__)"],
                           capture_output=True, text=True, env=env, cwd=away, check=True).stdout
    assert where.startswith(str(target)), where  # the installed wheel, not the checkout
    config = run("predict", "-c", "predict_wild", "--print_config")
    assert "stereo_lit.data.wild.WildVideoDataModule" in config and "depth-anything/Video-Depth-Anything-Small" in config
    assert "--method" in run("convert", "--help")
    assert "predict_wild" in run("configs")
    assert (target / "stereo_lit" / "commands" / "convert_costs.json").is_file()
