"""Shared pytest fixtures. Nothing here touches the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (fixtures and samples); tests that need it skip with a reason when absent."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent: the shared fixtures/samples folder is not beside this clone")
    return SHARED_DIR


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random checkpoints written by data_prep/make_tiny_checkpoints.py (VDA .pth, Wan2.1 folder)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_tiny_checkpoints", REPO_ROOT / "data_prep" / "make_tiny_checkpoints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("tiny_checkpoints")
    module.main(["--out", str(out)])
    return out
