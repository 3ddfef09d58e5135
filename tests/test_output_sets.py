"""Output sets are replaced whole (issue 20, item 2): a redo with other settings that fails
part-way (disk full) keeps the earlier complete set and its manifest; a redo that finishes
replaces it, files of layouts the new set lacks included. Never a mix of two settings."""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from fault_injection import disk_full
from stereo_lit.cli import build_cli
from stereo_lit.io import image_writer
from stereo_lit.io.output_manifest import MANIFEST_NAME, replace_output_set, write_manifest
from stereo_lit.io.video_writer import StreamingVideoWriter

REPO = Path(__file__).resolve().parents[1]


def _source(folder: Path, name: str = "clip.mp4", frames: int = 5, height: int = 32, width: int = 48) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    texture = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)  # a warp changes it
    if name.endswith(".mp4"):
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for k in range(frames):
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.roll(texture, k, axis=1), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    else:
        Image.fromarray(texture).save(path)
        frames = 1
    ramp = np.broadcast_to(np.linspace(0.2, 1.0, width, dtype=np.float32), (frames, height, width))
    np.save(path.with_suffix(".npy"), np.ascontiguousarray(ramp))
    return path


def _predict(source: Path, out: Path, strength: str, layouts: str = "[right, sbs, anaglyph]") -> None:
    build_cli([
        "predict", "-c", str(REPO / "stereo_lit/configs/predict_wild.yaml"),
        "--model.generator", "stereo_lit.generators.geometric.WarpFill", "--model.depth", "null",
        "--model.output.dir", str(out), "--data.init_args.source", str(source),
        "--data.init_args.window", "5", "--data.init_args.overlap", "1", "--data.init_args.on_error", "raise",
        "--model.disparity.max_disparity_pct", strength, "--model.output.layouts", layouts, "--model.output.encoder.preset", "ultrafast",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
    ])


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file of the folder (hidden ones included) -> SHA-256."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("name", ["clip.mp4", "photo.png"])
def test_a_redo_that_runs_out_of_space_keeps_the_earlier_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    source, out = _source(tmp_path / "in", name), tmp_path / "out"
    folder = out / Path(name).stem
    _predict(source, out, "2.0")
    before = _snapshot(folder)
    assert MANIFEST_NAME in before and len(before) == 4, before  # three layouts and the manifest, nothing hidden
    if name.endswith(".mp4"):  # the second layout cannot be finished (flush / audio) at the new strength
        failures = disk_full(monkeypatch, StreamingVideoWriter, "close", lambda writer, *a, **k: "sbs" in writer.path.name)
    else:
        failures = disk_full(monkeypatch, image_writer, "save_image", lambda path, *a, **k: path.name.startswith(".sbs."))
    with pytest.raises(Exception) as failed:
        _predict(source, out, "4.0")
    assert failures and "No space left" in str(failed.value) + repr(failed.value.__cause__ or failed.value.__context__)
    if name.endswith(".mp4"):
        assert f"could not write {folder / 'sbs.mp4'}" in str(failed.value)  # the error names the file
    assert _snapshot(folder) == before  # the earlier complete set, its manifest, no partial file
    monkeypatch.undo()
    _predict(source, out, "4.0")  # the redo that finishes replaces the set whole
    after = _snapshot(folder)
    assert set(after) == set(before)
    assert all(after[f] != before[f] for f in after if f != MANIFEST_NAME)
    assert json.loads((folder / MANIFEST_NAME).read_text())["settings"]["max_disparity_pct"] == 4.0


def test_a_redo_with_fewer_layouts_removes_the_earlier_ones(tmp_path: Path) -> None:
    source, out = _source(tmp_path / "in"), tmp_path / "out"
    _predict(source, out, "2.0")
    _predict(source, out, "3.0", "[sbs]")
    folder = out / "clip"
    assert sorted(p.name for p in folder.iterdir()) == ["sbs.mp4", MANIFEST_NAME]  # no right/anaglyph at 2 %


def test_a_failed_rename_leaves_no_mix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    for layout in ("right", "sbs"):
        (folder / f"{layout}.mp4").write_text("old")
        (folder / f".{layout}.partial-1-done.mp4").write_text("new")
    write_manifest(folder, {"layouts": {k: {"file": f"{k}.mp4"} for k in ("right", "sbs")}})
    import os

    disk_full(monkeypatch, os, "replace", lambda src, dst: Path(dst).name == "sbs.mp4")
    staged = {k: (folder / f".{k}.partial-1-done.mp4", folder / f"{k}.mp4") for k in ("right", "sbs")}
    with pytest.raises(OSError, match="both removed") as failed:
        replace_output_set(folder, staged)
    assert failed.value.errno == errno.ENOSPC
    assert list(folder.iterdir()) == []  # neither set, and no manifest: the next run redoes it
