"""An offline Hugging Face hub cache laid out as huggingface_hub writes it, for tests.

``HF_HOME/hub/models--ORG--NAME/snapshots/REV/...`` plus ``refs/main`` holding ``REV``; the
resolver (:mod:`stereo_lit.io.hub`) reads it through huggingface_hub's own cache code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REVISION = "0123456789abcdef0123456789abcdef01234567"
TINY_VDA = "video_depth_anything_tiny.pth"
TINY_WAN = "Wan2.1-T2V-tiny-Diffusers"
TINY_VACE = "Wan2.1-VACE-tiny-Diffusers"


def add_repo(hf_home: Path, repo: str, files: dict[str, Path]) -> Path:
    """Put ``files`` (name in the repo -> local file or folder to copy) into the cache; returns the snapshot folder."""
    storage = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    snapshot = storage / "snapshots" / REVISION
    for name, source in files.items():
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(source).is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(REVISION)
    return snapshot


def use_hf_home(monkeypatch: pytest.MonkeyPatch, hf_home: Path, offline: bool = True) -> None:
    """Point huggingface_hub (its env vars and its already-read constants) at ``hf_home``."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_checkpoints: Path) -> Path:
    """An offline HF_HOME holding the tiny checkpoints under the real repository ids."""
    home = tmp_path / "hf_home"
    add_repo(home, "depth-anything/Video-Depth-Anything-Small", {"video_depth_anything_vits.pth": tiny_checkpoints / TINY_VDA})
    add_repo(home, "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", {".": tiny_checkpoints / TINY_WAN})
    add_repo(home, "Wan-AI/Wan2.1-VACE-1.3B-diffusers", {".": tiny_checkpoints / TINY_VACE})
    use_hf_home(monkeypatch, home)
    return home
