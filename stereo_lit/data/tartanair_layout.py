"""TartanAir trajectory folders on disk: discovery, validation and per-frame readers.

v1: ``ENV/{Easy,Hard}/P000/image_left/000000_left.png``, ``image_right/000000_right.png``,
``depth_left/000000_left_depth.npy`` (float metres), ``depth_right/...``; 640x480,
fx = fy = 320, cx = 320, cy = 240, baseline 0.25 m.

v2: ``ENV/Data_{easy,hard}/P000/image_lcam_front/000000_lcam_front.png``,
``image_rcam_front/...``, ``depth_lcam_front/000000_lcam_front_depth.png`` (float32
metres packed into the 4 bytes of an RGBA PNG); 640x640, fx = fy = 320, cx = cy = 320,
baseline 0.25 m.

A ``meta.json`` in the trajectory folder (written by :mod:`stereo_lit.data.synthetic`)
overrides the intrinsics (``fx, fy, cx, cy, baseline_m``) and the frame rate (``fps``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_FPS = 10.0
DIFFICULTIES = {"easy": "Easy", "hard": "Hard", "data_easy": "Easy", "data_hard": "Hard"}


@dataclass(frozen=True)
class Layout:
    """Folder and file-name suffixes of one TartanAir version."""

    name: str
    image_left: str
    image_right: str
    depth_left: str
    depth_right: str
    native_size: tuple[int, int]  # (H, W) of the default intrinsics
    default_intrinsics: tuple[float, float, float, float, float]  # fx, fy, cx, cy, baseline_m

    def dirs(self) -> dict[str, str]:
        return {"left": self.image_left, "right": self.image_right, "depth_left": self.depth_left, "depth_right": self.depth_right}


V1 = Layout("v1", "image_left", "image_right", "depth_left", "depth_right", (480, 640), (320.0, 320.0, 320.0, 240.0, 0.25))
V2 = Layout(
    "v2", "image_lcam_front", "image_rcam_front", "depth_lcam_front", "depth_rcam_front", (640, 640),
    (320.0, 320.0, 320.0, 320.0, 0.25),
)
LAYOUTS = (V1, V2)
_INDEX = re.compile(r"^(\d+)")


def layout_of(folder: Path) -> Layout | None:
    """The layout whose left-image folder exists in ``folder``, else None."""
    for layout in LAYOUTS:
        if (folder / layout.image_left).is_dir():
            return layout
    return None


@dataclass
class Trajectory:
    """One trajectory: its frame files per modality and its camera.

    Attributes:
        path: the trajectory folder; traj_id: ``ENV/Difficulty/P000`` (or the folder name).
        files: modality (``left``, ``right``, ``depth_left``, ``depth_right``) -> frame paths,
            index k holds frame k; modalities that are absent are missing from the dict.
        height, width: native image size; intrinsics: (fx, fy, cx, cy, baseline_m) at it.
    """

    path: Path
    traj_id: str
    env: str
    difficulty: str
    name: str
    layout: Layout
    files: dict[str, list[Path]]
    height: int
    width: int
    intrinsics: tuple[float, float, float, float, float]
    fps: float = DEFAULT_FPS
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.files["left"])


def _ids(folder: Path, root: Path | None) -> tuple[str, str, str, str]:
    """``(traj_id, env, difficulty, trajectory)`` from the folder's position in the tree."""
    name, parent = folder.name, folder.parent
    difficulty = DIFFICULTIES.get(parent.name.lower())
    if difficulty is not None:
        env = parent.parent.name
        return f"{env}/{difficulty}/{name}", env, difficulty, name
    if root is not None and folder != root:
        rel = folder.relative_to(root).as_posix()
        return rel, rel.split("/")[0], "", name
    return name, name, "", name


def _frame_files(folder: Path, suffix: str) -> dict[int, Path]:
    files: dict[int, Path] = {}
    for path in folder.iterdir():
        if path.name.endswith(suffix) and not path.name.startswith("."):
            match = _INDEX.match(path.name)
            if match:
                files[int(match.group(1))] = path
    return files


def open_trajectory(folder: str | Path, root: str | Path | None = None) -> Trajectory:
    """Index and validate a trajectory folder (frame counts, missing frames, image size).

    Raises:
        ValueError: not a trajectory, missing frames, or modalities whose frame counts differ;
            the message names the folder.
    """
    from PIL import Image

    folder = Path(folder)
    layout = layout_of(folder)
    if layout is None:
        known = ", ".join(f"{l.name}: {l.image_left}/" for l in LAYOUTS)
        raise ValueError(f"{folder}: not a TartanAir trajectory folder (no {known})")
    suffixes = {"left": ".png", "right": ".png", "depth_left": ".npy" if layout is V1 else ".png"}
    suffixes["depth_right"] = suffixes["depth_left"]
    indexed: dict[str, dict[int, Path]] = {}
    for modality, sub in layout.dirs().items():
        if (folder / sub).is_dir():
            indexed[modality] = _frame_files(folder / sub, suffixes[modality])
    left = indexed["left"]
    if not left:
        raise ValueError(f"{folder / layout.image_left}: no frames ({suffixes['left']})")
    expected = set(range(min(left), min(left) + len(left)))
    if set(left) != expected:
        missing = sorted(expected - set(left))[:10]
        raise ValueError(f"{folder / layout.image_left}: missing frames, e.g. indices {missing}")
    for modality, frames in indexed.items():
        if set(frames) != set(left):
            missing = sorted(set(left) - set(frames))[:10]
            extra = sorted(set(frames) - set(left))[:10]
            raise ValueError(
                f"{folder / layout.dirs()[modality]}: {len(frames)} frames but {layout.image_left} has {len(left)} "
                f"(missing {missing}, extra {extra})"
            )
    order = sorted(left)
    files = {m: [frames[k] for k in order] for m, frames in indexed.items()}
    with Image.open(files["left"][0]) as image:
        width, height = image.size
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if all(k in meta for k in ("fx", "fy", "cx", "cy")):
        baseline = float(meta.get("baseline_m", meta.get("baseline", layout.default_intrinsics[4])))
        intrinsics = (float(meta["fx"]), float(meta["fy"]), float(meta["cx"]), float(meta["cy"]), baseline)
    else:
        nh, nw = layout.native_size
        fx, fy, cx, cy, baseline = layout.default_intrinsics
        intrinsics = (fx * width / nw, fy * height / nh, cx * width / nw, cy * height / nh, baseline)
    traj_id, env, difficulty, name = _ids(folder, None if root is None else Path(root))
    return Trajectory(
        folder, traj_id, env, difficulty, name, layout, files, height, width, intrinsics,
        float(meta.get("fps", DEFAULT_FPS)), meta,
    )


def find_trajectories(root: str | Path, patterns: list[str] | None = None) -> list[Path]:
    """Trajectory folders under ``root`` matching ``patterns`` (sorted, unique).

    A pattern is a path relative to ``root`` (globs allowed): ``ENV`` (all its
    trajectories), ``ENV/Easy``, ``ENV/Easy/P000``, ``*/Hard/P00[0-3]``. None: all.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"TartanAir root {root} is not a folder")
    if layout_of(root) is not None:  # root is itself a trajectory
        return [root]
    found: set[Path] = set()
    for pattern in patterns if patterns is not None else ["**"]:
        matches = [root] if pattern in ("", ".", "**") else sorted(root.glob(pattern))
        if not matches:
            raise ValueError(f"{root}: no folder matches the trajectory pattern {pattern!r}")
        before = len(found)
        for match in matches:
            if not match.is_dir():
                continue
            if layout_of(match) is not None:
                found.add(match)
            else:  # an environment or difficulty folder: every trajectory below it
                found.update(p.parent for l in LAYOUTS for p in match.rglob(l.image_left) if p.is_dir())
        if len(found) == before and patterns is not None:
            raise ValueError(f"{root}: the pattern {pattern!r} matches no trajectory folder")
    if not found:
        raise ValueError(f"{root}: no TartanAir trajectory folders (image_left/ or image_lcam_front/) below it")
    return sorted(found)


# ----------------------------------------------------------------------------- frame readers
def read_image(path: Path) -> np.ndarray:
    """uint8 ``[H, W, 3]`` RGB."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - name the file
        raise ValueError(f"{path}: unreadable image: {exc}") from exc


def check_depth(depth: np.ndarray, name: str) -> np.ndarray:
    """Accept float16/float32 ``[H, W]`` (or ``[H, W, 1]``) depth; return float32 ``[H, W]``."""
    if depth.dtype not in (np.float16, np.float32):
        raise ValueError(f"{name}: depth must be float16 or float32, got {depth.dtype}")
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise ValueError(f"{name}: depth must be [H, W], got shape {depth.shape}")
    return depth.astype(np.float32, copy=False)


def decode_packed_depth(rgba: np.ndarray, name: str) -> np.ndarray:
    """TartanAir v2 depth: float32 packed little-endian into an RGBA uint8 ``[H, W, 4]``."""
    if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[-1] != 4:
        raise ValueError(f"{name}: packed depth must be an RGBA uint8 PNG, got {rgba.dtype} {rgba.shape}")
    return np.ascontiguousarray(rgba).view("<f4")[..., 0].astype(np.float32)


def read_depth(path: Path) -> np.ndarray:
    """float32 ``[H, W]`` metres from a ``.npy`` (v1) or packed RGBA ``.png`` (v2)."""
    try:
        if path.suffix == ".npy":
            return check_depth(np.load(path, allow_pickle=False), str(path))
        from PIL import Image

        with Image.open(path) as image:
            return decode_packed_depth(np.asarray(image), str(path))
    except Exception as exc:  # noqa: BLE001 - name the file
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: unreadable depth: {exc}") from exc
