"""Synthetic stereo sequences with exact ground truth, in the TartanAir v1 file layout.

Each eye is rendered independently by ray casting an analytic scene (never by warping
the other eye), so the ground truth does not depend on the warp under test:

- a textured back wall, a ground plane and a "sky" (large finite depth, as TartanAir);
- two boxes at different depths, one of them moving sideways (independent motion);
- a camera that translates slowly (temporal change, moving disocclusions).

Camera coordinates follow OpenCV (x right, y down, z forward). Rays are
``(u - cx) / fx, (v - cy) / fy, 1``, so the ray parameter at a hit *is* the z-depth.
The right camera is the left one moved ``+baseline`` along x (rectified), so the
disparity is exactly ``fx * baseline / z`` and ``x_right = x_left - d``.
Colours come from smooth solid (3-D) textures evaluated at the hit point: identical for
both eyes, band-limited enough for sub-pixel resampling. Pixels are 2x2 supersampled;
depth is taken at the pixel centre.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BASELINE_M = 0.25
SKY_DEPTH_M = 10_000.0
FX_AT_640 = 320.0


@dataclass
class SyntheticSequence:
    """A rendered stereo sequence.

    Attributes:
        left, right: uint8 ``[T, H, W, 3]`` RGB.
        depth_left_m, depth_right_m: float32 ``[T, H, W]`` z-depth in metres.
        fx, fy, cx, cy: intrinsics in pixels; baseline_m: stereo baseline.
        positions_m: ``[T, 3]`` left-camera position (OpenCV axes) per frame.
    """

    left: np.ndarray
    right: np.ndarray
    depth_left_m: np.ndarray
    depth_right_m: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    baseline_m: float
    positions_m: np.ndarray
    seed: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def disparity_left_px(self) -> np.ndarray:
        return (self.fx * self.baseline_m / self.depth_left_m).astype(np.float32)


# ----------------------------------------------------------------------------- scene
@dataclass(frozen=True)
class _Box:
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    velocity: tuple[float, float, float]
    texture: int


def _scene(seed: int) -> tuple[list[_Box], np.ndarray]:
    rng = np.random.default_rng(seed)
    jitter = lambda s: float(rng.uniform(-s, s))  # noqa: E731 - tiny local helper
    boxes = [
        _Box((-1.6 + jitter(0.2), -0.2, 3.5), (-0.5 + jitter(0.2), 1.5, 4.3), (0.0, 0.0, 0.0), 2),
        _Box((0.6 + jitter(0.2), 0.3, 6.0), (1.8 + jitter(0.2), 1.5, 6.8), (-0.08, 0.0, 0.0), 3),
    ]
    # texture parameters: per texture id, per channel, 4 sinusoids (direction, frequency, phase)
    directions = rng.normal(size=(5, 3, 4, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    wavelengths = rng.uniform(0.25, 1.5, size=(5, 3, 4, 1))
    phases = rng.uniform(0, 2 * np.pi, size=(5, 3, 4))
    params = np.concatenate(
        [directions * (2 * np.pi / wavelengths), phases[..., None]], axis=-1
    ).astype(np.float32)  # [texture, channel, wave, 4]
    return boxes, params


def _texture(points: np.ndarray, texture_id: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Solid texture RGB in [0.1, 0.9] at ``points [..., 3]`` for ``texture_id [...]``."""
    p = params[texture_id]  # [..., 3, 4, 4]
    arg = np.einsum("...k,...cwk->...cw", points, p[..., :3]) + p[..., 3]
    value = np.sin(arg).mean(axis=-1)  # [..., 3] in [-1, 1]
    base = np.array([0.5, 0.45, 0.4], dtype=np.float32)
    return np.clip(base + 0.35 * value, 0.0, 1.0)


def _hit_scene(origin: np.ndarray, rays: np.ndarray, boxes: list[_Box], time_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameter (= z-depth) and texture id of the first hit, ``[N]`` each."""
    n = rays.shape[0]
    t_best = np.full(n, SKY_DEPTH_M, dtype=np.float32)
    tex = np.full(n, 4, dtype=np.int64)  # 4 = sky
    dx, dy, dz = rays[:, 0], rays[:, 1], rays[:, 2]

    def consider(t: np.ndarray, ok: np.ndarray, texture: int) -> None:
        better = ok & (t > 1e-3) & (t < t_best)
        t_best[better] = t[better]
        tex[better] = texture

    # back wall z = 14 (x in [-12, 12], y in [-4, 1.5]) and ground y = 1.5 (z up to 14)
    t_wall = (14.0 - origin[2]) / dz
    px, py = origin[0] + t_wall * dx, origin[1] + t_wall * dy
    consider(t_wall, (np.abs(px) < 12) & (py > -4.0) & (py <= 1.5), 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(dy > 1e-6, (1.5 - origin[1]) / dy, np.inf)
    pz = origin[2] + t_ground * dz
    consider(t_ground, np.isfinite(t_ground) & (pz < 14.0), 1)
    # boxes (slab method)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / rays
    for box in boxes:
        lo = np.array(box.lo, np.float32) + time_s * np.array(box.velocity, np.float32)
        hi = np.array(box.hi, np.float32) + time_s * np.array(box.velocity, np.float32)
        with np.errstate(invalid="ignore"):
            t0 = (lo - origin) * inv
            t1 = (hi - origin) * inv
        t_near = np.nanmax(np.minimum(t0, t1), axis=1)
        t_far = np.nanmin(np.maximum(t0, t1), axis=1)
        consider(t_near, t_near <= t_far, box.texture)
    return t_best, tex


def _render_eye(
    origin: np.ndarray, height: int, width: int, fx: float, fy: float, cx: float, cy: float,
    boxes: list[_Box], params: np.ndarray, time_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 ``[H, W, 3]`` (2x2 supersampled) and centre z-depth ``[H, W]``."""
    v, u = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")

    def cast(du: float, dv: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rays = np.stack([(u + du - cx) / fx, (v + dv - cy) / fy, np.ones_like(u)], axis=-1).reshape(-1, 3)
        t, tex = _hit_scene(origin, rays, boxes, time_s)
        return t, tex, rays

    colour = np.zeros((height * width, 3), dtype=np.float32)
    for du, dv in ((-0.25, -0.25), (0.25, -0.25), (-0.25, 0.25), (0.25, 0.25)):
        t, tex, rays = cast(du, dv)
        points = origin + np.minimum(t, 50.0)[:, None] * rays
        rgb = _texture(points, tex, params)
        sky = tex == 4
        rgb[sky] = np.stack([0.55 + 0.2 * rays[sky, 1], 0.7 + 0.1 * rays[sky, 1], np.full(sky.sum(), 0.9)], -1)
        colour += rgb / 4.0
    depth, _, _ = cast(0.0, 0.0)
    image = (np.clip(colour, 0, 1) * 255.0 + 0.5).astype(np.uint8).reshape(height, width, 3)
    return image, depth.reshape(height, width).astype(np.float32)


def render_sequence(num_frames: int = 17, height: int = 480, width: int = 640, seed: int = 0) -> SyntheticSequence:
    """Render a stereo sequence; intrinsics scale with size (fx = 320 * W / 640, ...)."""
    if num_frames < 1 or height < 8 or width < 8:
        raise ValueError(f"need num_frames >= 1 and a size of at least 8x8, got {num_frames} frames of {height}x{width}")
    fx, fy = FX_AT_640 * width / 640.0, FX_AT_640 * height / 480.0
    cx, cy = width / 2.0, height / 2.0
    boxes, params = _scene(seed)
    frames_l, frames_r, depth_l, depth_r, positions = [], [], [], [], []
    for k in range(num_frames):
        time_s = k / 10.0  # TartanAir-like 10 fps
        cam = np.array([0.04 * k, -0.2, 0.03 * k], dtype=np.float32)
        img_l, d_l = _render_eye(cam, height, width, fx, fy, cx, cy, boxes, params, time_s)
        img_r, d_r = _render_eye(cam + np.array([BASELINE_M, 0, 0], np.float32), height, width, fx, fy, cx, cy, boxes, params, time_s)
        frames_l.append(img_l), frames_r.append(img_r), depth_l.append(d_l), depth_r.append(d_r), positions.append(cam)
    return SyntheticSequence(
        left=np.stack(frames_l), right=np.stack(frames_r),
        depth_left_m=np.stack(depth_l), depth_right_m=np.stack(depth_r),
        fx=fx, fy=fy, cx=cx, cy=cy, baseline_m=BASELINE_M, positions_m=np.stack(positions), seed=seed,
    )


# ----------------------------------------------------------------------------- TartanAir layout
def _pose_line(position_cv: np.ndarray) -> str:
    """TartanAir pose line ``tx ty tz qx qy qz qw`` in NED (x fwd, y right, z down); no rotation."""
    x, y, z = position_cv
    return f"{z:.6f} {x:.6f} {y:.6f} 0.000000 0.000000 0.000000 1.000000"


def write_tartanair_sequence(seq: SyntheticSequence, out_dir: str | Path) -> Path:
    """Write ``seq`` in the TartanAir v1 layout; atomic (temporary folder, then rename)."""
    from PIL import Image

    out = Path(out_dir)
    tmp = out.with_name(f".{out.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    for sub in ("image_left", "image_right", "depth_left", "depth_right"):
        (tmp / sub).mkdir(parents=True)
    for k in range(seq.left.shape[0]):
        Image.fromarray(seq.left[k]).save(tmp / "image_left" / f"{k:06d}_left.png")
        Image.fromarray(seq.right[k]).save(tmp / "image_right" / f"{k:06d}_right.png")
        np.save(tmp / "depth_left" / f"{k:06d}_left_depth.npy", seq.depth_left_m[k].astype(np.float32))
        np.save(tmp / "depth_right" / f"{k:06d}_right_depth.npy", seq.depth_right_m[k].astype(np.float32))
    (tmp / "pose_left.txt").write_text("\n".join(_pose_line(p) for p in seq.positions_m) + "\n")
    meta = {
        "generator": "stereo_lit.data.synthetic", "seed": seq.seed, "num_frames": int(seq.left.shape[0]),
        "height": int(seq.left.shape[1]), "width": int(seq.left.shape[2]),
        "fx": seq.fx, "fy": seq.fy, "cx": seq.cx, "cy": seq.cy, "baseline_m": seq.baseline_m,
        "sky_depth_m": SKY_DEPTH_M, "pose_convention": "TartanAir NED: x forward, y right, z down; tx ty tz qx qy qz qw",
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def is_complete_sequence(out_dir: str | Path, num_frames: int | None = None) -> bool:
    """True when ``out_dir`` holds a finished sequence (its ``meta.json``, all frames)."""
    meta_path = Path(out_dir) / "meta.json"
    if not meta_path.is_file():
        return False
    meta = json.loads(meta_path.read_text())
    n = meta["num_frames"]
    if num_frames is not None and n != num_frames:
        return False
    return len(list((Path(out_dir) / "image_right").glob("*_right.png"))) == n
