"""Shot cuts in decoded frames (no torch: :mod:`stereo_lit.io.cut_scan` runs this rule over a video
file before the converter has imported torch).

- :func:`detect_cuts`: the rule on frames (PySceneDetect's ``ContentDetector``, or a
  dependency-free histogram rule; :mod:`stereo_lit.stereo.shots` has the per-shot ranges).
- :func:`detection_size`: the size frames are decoded at for it (:data:`CUT_DETECTION_WIDTH` wide).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

CUT_DETECTION_WIDTH = 320  # frames are decoded this wide (even height, same aspect) for cut detection


METHODS = ("content", "histogram")


def _check_frame(frame: np.ndarray, index: int) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"detect_cuts: frame {index} must be HxWx3 RGB, got shape {frame.shape}")
    if frame.dtype != np.uint8:
        frame = (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return frame


def _rgb_histogram(frame: np.ndarray, bins: int = 16) -> np.ndarray:
    """Normalised per-channel histogram ``[3 * bins]`` (sums to 3) of a uint8 RGB frame."""
    index = (frame.reshape(-1, 3).astype(np.int64) * bins) // 256 + np.arange(3) * bins
    return np.bincount(index.ravel(), minlength=3 * bins) / float(frame.shape[0] * frame.shape[1])


def detect_cuts(
    frames: Iterable[np.ndarray],
    method: str = "content",
    threshold: float | None = None,
    min_shot_len: int = 15,
    fps: float = 25.0,
) -> list[int]:
    """Indices of the first frame of every shot after the first (sorted; ``[]`` for one shot).

    Args:
        frames: HxWx3 RGB frames (uint8, or float in [0, 1]), read once, in order.
        method: ``content`` (PySceneDetect ``ContentDetector``) or ``histogram`` (module docstring).
        threshold: cut threshold (default 27 for ``content``, 0.5 for ``histogram``).
        min_shot_len: shortest shot, in frames.
        fps: frame rate (PySceneDetect timecodes only; cuts are frame indices either way).
    """
    if method not in METHODS:
        raise ValueError(f"cut detection method must be one of {METHODS}, got {method!r}")
    if min_shot_len < 1:
        raise ValueError(f"min_shot_len must be >= 1 frame, got {min_shot_len}")
    if method == "histogram":
        return _histogram_cuts(frames, 0.5 if threshold is None else float(threshold), min_shot_len)
    try:
        from scenedetect.common import FrameTimecode
        from scenedetect.detectors import ContentDetector
    except ImportError as exc:  # pragma: no cover - scenedetect is a dependency
        raise ImportError(
            "shot detection needs PySceneDetect (`pip install scenedetect-headless`), or use method='histogram'"
        ) from exc
    detector = ContentDetector(threshold=27.0 if threshold is None else float(threshold), min_scene_len=min_shot_len)
    found: list = []
    count = 0
    for count, frame in enumerate(frames):
        bgr = np.ascontiguousarray(_check_frame(frame, count)[:, :, ::-1])
        found += detector.process_frame(FrameTimecode(count, fps=fps), bgr)
    found += detector.post_process(FrameTimecode(count, fps=fps))
    cuts = sorted({int(getattr(c, "frame_num", c)) for c in found})
    return [c for c in cuts if 0 < c <= count]


def _histogram_cuts(frames: Iterable[np.ndarray], threshold: float, min_shot_len: int) -> list[int]:
    cuts: list[int] = []
    previous, last_cut = None, 0
    for index, frame in enumerate(frames):
        hist = _rgb_histogram(_check_frame(frame, index))
        if previous is not None and np.abs(hist - previous).sum() >= threshold and index - last_cut >= min_shot_len:
            cuts.append(index)
            last_cut = index
        previous = hist
    return cuts


def detection_size(size: tuple[int, int]) -> tuple[int, int]:
    """``(H, W)`` at which frames of a ``size = (H, W)`` video are decoded for cut detection: at most
    :data:`CUT_DETECTION_WIDTH` wide, even sides, the same aspect."""
    height, width = size
    small_w = min(width, CUT_DETECTION_WIDTH) // 2 * 2
    return max(2, round(height * small_w / width / 2) * 2), max(2, small_w)
