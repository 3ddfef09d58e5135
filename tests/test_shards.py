"""TartanAir -> webdataset shards: identical samples, resume, verification, DDP split."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

import stereo_lit.data.collate as collate
from stereo_lit.data.shards import load_manifest
from stereo_lit.data.synthetic import render_sequence, write_tartanair_sequence
from stereo_lit.data.tartanair import TartanAirDataModule

TRAJECTORIES = ("envA/Easy/P000", "envA/Hard/P001", "envB/Easy/P000")


def _converter():
    path = Path(__file__).resolve().parents[1] / "data_prep" / "tartanair_to_wds.py"
    spec = importlib.util.spec_from_file_location("tartanair_to_wds", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("shards")
    for i, traj in enumerate(TRAJECTORIES):
        write_tartanair_sequence(render_sequence(num_frames=9 + 2 * i, height=48, width=64, seed=i), base / "tree" / traj)
    _converter().main([str(base / "tree"), str(base / "wds"), "--frames-per-shard", "4"])
    return base / "tree", base / "wds"


def _assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        if isinstance(a[key], torch.Tensor):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
        else:
            assert a[key] == b[key], key


def test_manifest_lists_trajectories_and_shards(converted) -> None:
    tree, wds = converted
    manifest = load_manifest(wds)
    assert sorted(manifest["trajectories"]) == sorted(TRAJECTORIES)
    entry = manifest["trajectories"]["envA/Hard/P001"]
    assert entry["num_frames"] == 11 and len(entry["shards"]) == 3  # 4 + 4 + 3 frames
    assert entry["source_path"] == str(tree / "envA/Hard/P001") and entry["intrinsics"][0] == 32.0
    assert sum(s["num_frames"] for s in manifest["shards"].values()) == 9 + 11 + 13
    assert manifest["complete"] and all(len(s["sha256"]) == 64 for s in manifest["shards"].values())
    assert len(list(wds.glob("*.tar"))) == len(manifest["shards"])


@pytest.mark.parametrize("stage", ["test", "predict", "train"])
def test_folder_and_shards_give_identical_samples(converted, stage: str) -> None:
    tree, wds = converted
    kwargs = dict(train=["envA"], clip_frames=5, stride=3, window=5, overlap=1)
    folder = TartanAirDataModule(str(tree), **kwargs)
    shards = TartanAirDataModule(source="shards", shards=str(wds), **kwargs)
    folder.setup(stage), shards.setup(stage)
    assert folder.splits == shards.splits
    from_folder = list(folder.dataset(stage))
    from_shards = list(shards.dataset(stage))
    assert len(from_folder) == len(from_shards) == len(shards.dataset(stage)) > 0
    if stage == "train":  # shuffled differently: compare by id
        from_folder.sort(key=lambda s: s["sample_id"])
        from_shards.sort(key=lambda s: s["sample_id"])
    for a, b in zip(from_folder, from_shards):
        _assert_same(a, b)


def test_shard_loader_batches_through_lightning_dataloader(converted) -> None:
    _, wds = converted
    datamodule = TartanAirDataModule(source="shards", shards=str(wds), test=["envB"], clip_frames=5, batch_size=2, num_workers=0)
    datamodule.setup("test")
    batches = list(datamodule.test_dataloader())
    assert [b["left"].shape[0] for b in batches] == [2]  # 13 frames: clips at 0 and 5
    assert batches[0]["first_frame"].tolist() == [0, 5] and batches[0]["intrinsics"].shape == (2, 5)


def test_ranks_read_disjoint_trajectories(converted, monkeypatch: pytest.MonkeyPatch) -> None:
    _, wds = converted
    datamodule = TartanAirDataModule(source="shards", shards=str(wds), clip_frames=5, stride=2)
    datamodule.setup("test")
    seen = []
    for rank in range(2):
        monkeypatch.setattr(collate, "rank_and_world", lambda rank=rank: (rank, 2))
        import stereo_lit.data.tartanair as tartanair

        monkeypatch.setattr(tartanair, "rank_and_world", lambda rank=rank: (rank, 2))
        data = datamodule.dataset("test")
        ids = [s["sample_id"] for s in data]
        assert len(ids) == len(data)
        seen.append(ids)
    trajectories = [{i.split(":")[0] for i in ids} for ids in seen]
    assert not trajectories[0] & trajectories[1]
    assert trajectories[0] | trajectories[1] == set(TRAJECTORIES)


def test_float16_depth_and_resume(tmp_path: Path, converted) -> None:
    tree, _ = converted
    out = tmp_path / "wds16"
    converter = _converter()
    converter.convert(tree, out, frames_per_shard=5, depth_dtype="float16", include=["envB"])
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    (out / "tartanair-000001.tar").unlink()
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["complete"] = False  # as if interrupted
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="did not finish"):
        load_manifest(out)
    converter.convert(tree, out, frames_per_shard=5, depth_dtype="float16", include=["envB"])
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    assert after["tartanair-000000.tar"] == stamps["tartanair-000000.tar"]  # skipped
    assert "tartanair-000001.tar" in after and load_manifest(out)["complete"]
    folder = TartanAirDataModule(str(tree), test=["envB"], clip_frames=5)
    shards = TartanAirDataModule(source="shards", shards=str(out), clip_frames=5)
    folder.setup("test"), shards.setup("test")
    a, b = next(iter(folder.dataset("test"))), next(iter(shards.dataset("test")))
    torch.testing.assert_close(a["left"], b["left"], rtol=0, atol=0)
    torch.testing.assert_close(a["depth_left_m"], b["depth_left_m"], rtol=1e-3, atol=1e-3)


def test_verification_detects_a_corrupt_shard(tmp_path: Path, converted) -> None:
    tree, _ = converted
    out = tmp_path / "wds"
    converter = _converter()
    manifest = converter.convert(tree, out, frames_per_shard=20, include=["envA/Easy/P000"], run_verify=False)
    shard = out / "tartanair-000000.tar"
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"tartanair-000000.tar: checksum differs"):
        converter.verify(out, manifest)


def test_corrupt_shard_is_skipped_by_name_or_raises(tmp_path: Path, converted, caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import shutil

    _, wds = converted
    copy = tmp_path / "wds"
    shutil.copytree(wds, copy)
    manifest = load_manifest(copy)
    broken = manifest["trajectories"]["envA/Easy/P000"]["shards"][2]  # frame 8
    (copy / broken).write_bytes(b"not a tar file" * 10)
    kwargs = dict(source="shards", shards=str(copy), clip_frames=5, stride=2)
    datamodule = TartanAirDataModule(**kwargs)
    datamodule.setup("test")
    with pytest.raises(Exception):
        list(datamodule.dataset("test"))
    datamodule = TartanAirDataModule(on_error="skip", **kwargs)
    datamodule.setup("test")
    with caplog.at_level(logging.WARNING):
        samples = list(datamodule.dataset("test"))
    from stereo_lit.data.skips import SKIPPED_KEY, is_skip_marker

    markers = [s for s in samples if is_skip_marker(s)]  # a dropped item travels as a marker, never a substitute
    assert len(markers) == 1 and markers[0][SKIPPED_KEY][0].startswith("envA/Easy/P000")
    ids = [s["sample_id"] for s in samples if not is_skip_marker(s)]
    assert "envA/Easy/P000" in caplog.text and broken in caplog.text
    assert {i.split(":")[0] for i in ids} == set(TRAJECTORIES)  # the clips before the bad shard, and the others
    assert [i for i in ids if i.startswith("envA/Easy/P000")] == ["envA/Easy/P000:000000", "envA/Easy/P000:000002"]
