"""Tests that read ``../shared`` skip when it is absent, but fail when ``CI`` is set (issue 9 item 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SHARED_DIR, require_shared


@pytest.mark.parametrize("ci", ["1", "true"])
def test_missing_shared_folder_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    try:
        require_shared(tmp_path / "shared")
        outcome: BaseException | None = None
    except BaseException as exc:  # noqa: BLE001 - a skip must not pass (or skip) this test
        outcome = exc
    assert isinstance(outcome, pytest.fail.Exception), f"expected a failure under CI, got {outcome!r}"
    assert "CI is set" in str(outcome)


@pytest.mark.parametrize("ci", [None, "", "0", "false"])
def test_missing_shared_folder_skips_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="is absent"):
        require_shared(tmp_path / "shared")


def test_present_shared_folder_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "1")
    assert require_shared(tmp_path) == tmp_path
    assert SHARED_DIR.name == "shared" and SHARED_DIR.parent == Path(__file__).resolve().parents[2]
