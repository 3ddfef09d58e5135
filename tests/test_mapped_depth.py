"""Depth read from memory-mapped .npy files leaves no pages in the process (stereo_lit.io.mapped):
peak RSS does not grow with the video's length through its depth file."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from stereo_lit.data.wild_sources import DepthFile
from stereo_lit.depth.estimator import PrecomputedDepth
from stereo_lit.depth.resize import ResizedDepth
from stereo_lit.io import mapped

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")

FRAMES, H, W = 48, 256, 512  # 24 MiB of float32


def resident_mib(path: Path) -> float:
    """MiB of ``path``'s mappings resident in this process (``/proc/self/smaps``)."""
    total_kb, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if line[:1].isdigit() or line[:1] in "abcdef":  # a mapping's header line
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total_kb += int(line.split()[1])
    return total_kb / 1024


@pytest.fixture
def depth_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    depth = np.random.default_rng(0).random((FRAMES, H, W), dtype=np.float32) + 0.1
    path = tmp_path / "clip.npy"
    np.save(path, depth)
    return path, depth


def test_reading_a_mapped_file_maps_its_pages_without_release(depth_file: tuple[Path, np.ndarray]) -> None:
    """The premise: a memmap's read pages stay resident in the process until released."""
    path, depth = depth_file
    array = np.load(path, mmap_mode="r")
    copies = [np.array(array[i]) for i in range(FRAMES)]
    assert resident_mib(path) > 20
    mapped.release(array)
    assert resident_mib(path) < 1
    np.testing.assert_array_equal(np.stack(copies), depth)
    np.testing.assert_array_equal(mapped.read(array, [3, 5]), depth[[3, 5]])  # readable again after release


def test_a_depth_file_read_frame_by_frame_stays_out_of_memory(depth_file: tuple[Path, np.ndarray]) -> None:
    path, depth = depth_file
    frames = PrecomputedDepth(str(path)).video_depth(size=(H, W))  # the converter's --depth FILE
    for i in range(FRAMES):
        np.testing.assert_array_equal(frames[i], depth[i])
        assert resident_mib(path) < 2
    np.testing.assert_array_equal(frames[10:20], depth[10:20])
    assert resident_mib(path) < 2
    beside = DepthFile(path)  # the depth file beside a video (the datamodule's reader)
    np.testing.assert_array_equal(beside.frames(list(range(FRAMES))), depth)
    assert resident_mib(path) < 2


def test_a_mapped_cache_entry_resized_on_read_stays_out_of_memory(depth_file: tuple[Path, np.ndarray]) -> None:
    path, depth = depth_file
    resized = ResizedDepth(np.load(path, mmap_mode="r"), (H, W))  # a depth-cache entry, already at size
    for i in range(0, FRAMES, 4):
        np.testing.assert_array_equal(resized[i : i + 4], depth[i : i + 4])
        assert resident_mib(path) < 2


def test_writable_and_copy_on_write_mappings_are_left_alone(depth_file: tuple[Path, np.ndarray]) -> None:
    """Dropping the pages of a copy-on-write mapping would throw its changes away: only read-only
    mappings are released."""
    path, depth = depth_file
    private = np.load(path, mmap_mode="c")
    private[0, 0, 0] = -5.0  # a change that lives only in this process's pages
    np.testing.assert_array_equal(mapped.read(private, 1), depth[1])
    assert private[0, 0, 0] == -5.0
    assert resident_mib(path) > 0.0  # its pages stay
    writable = np.load(path, mmap_mode="r+")
    np.testing.assert_array_equal(mapped.read(writable, slice(0, FRAMES)), depth)
    assert resident_mib(path) > 20
