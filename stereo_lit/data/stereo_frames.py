"""Frame sources and stereo layouts for :mod:`stereo_lit.data.stereo_video`.

- :func:`open_frames`: a video file (streamed with :mod:`stereo_lit.io.video_reader`), one
  image file (a one-frame clip) or a folder of image frames (sorted by name), all behind
  one interface (:class:`FrameSource`): ``num_frames``, ``fps``, ``height``, ``width`` and
  ``read(start, stop)`` -> uint8 ``[T, H, W, 3]`` RGB.
- :func:`detect_layout`: which packed layout a frame uses (``sbs``, ``sbs_half``, ``tb``,
  ``tb_half``, ``vr180_sbs``), from player-style file-name tags first, then from the split
  (side-by-side or top-bottom) whose two halves look most alike, then from the aspect
  ratio for full vs half. Pure function; returns the reason for the log.
- :func:`split_packed`: one packed video ``[3, T, H, W]`` -> (left, right) eyes, half
  layouts un-squeezed (bilinear) to the full frame's width (SBS) or height (TB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stereo_lit.io.video_reader import VIDEO_EXTENSIONS, VideoInfo, probe_video, read_frames, resampled_num_frames, source_index

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
PACKED_LAYOUTS = ("sbs", "sbs_half", "tb", "tb_half", "vr180_sbs")
LAYOUTS = ("auto", *PACKED_LAYOUTS, "separate")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural name order (``2.png`` < ``10.png``)."""
    return sorted((p for p in folder.iterdir() if p.is_file() and is_image_file(p) and not p.name.startswith(".")), key=_natural_key)


def read_image_rgb(path: str | Path) -> np.ndarray:
    """uint8 ``[H, W, 3]`` RGB; an unreadable/empty file is a ``ValueError`` naming it."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: image file does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: image file is empty (0 bytes)")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except Exception as exc:  # noqa: BLE001 - name the file
        raise ValueError(f"{path}: not a readable image (corrupt or unsupported): {exc}") from exc


@dataclass(frozen=True)
class FrameSource:
    """Frames of one video file, image file or folder of frames, on an output timeline.

    Attributes:
        path: the file or folder (named in every error).
        num_frames: frames on the output timeline (after resampling to ``fps``).
        fps: frame rate of the output timeline.
        height, width: frame size in pixels.
        info: the video's header (None for images); files: the image files (empty for video).
    """

    path: str
    num_frames: int
    fps: float
    height: int
    width: int
    info: VideoInfo | None = None
    files: tuple[str, ...] = ()
    source_fps: float = 0.0

    def read(self, start: int, stop: int) -> np.ndarray:
        """uint8 ``[stop - start, H, W, 3]`` RGB frames ``[start, stop)`` of the output timeline."""
        if not 0 <= start < stop <= self.num_frames:
            raise ValueError(f"{self.path}: frame range [{start}, {stop}) is outside its {self.num_frames} frames")
        if self.info is not None:
            return read_frames(self.info.path, start, stop, fps=self.fps, info=self.info)
        frames = []
        for j in range(start, stop):
            k = source_index(j, len(self.files), self.source_fps, self.fps)
            image = read_image_rgb(self.files[k])
            if image.shape[:2] != (self.height, self.width):
                raise ValueError(
                    f"{self.files[k]}: frame is {image.shape[0]}x{image.shape[1]} but {self.files[0]} is {self.height}x{self.width}"
                )
            frames.append(image)
        return np.stack(frames)


def open_frames(path: str | Path, fps: float | None = None, image_fps: float = 24.0) -> FrameSource:
    """A :class:`FrameSource` for a video file, an image file or a folder of image frames.

    Args:
        fps: resample to this frame rate (nearest frame); None keeps the source's.
        image_fps: the frame rate of image frames (they carry none).
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: does not exist")
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise ValueError(f"{path}: folder holds no image frames ({', '.join(IMAGE_EXTENSIONS)})")
    elif is_image_file(path):
        files = [path]
    else:
        info = probe_video(path)
        n = resampled_num_frames(info.num_frames, info.fps, fps)
        return FrameSource(str(path), n, float(fps or info.fps), info.height, info.width, info=info, source_fps=info.fps)
    first = read_image_rgb(files[0])
    n = resampled_num_frames(len(files), image_fps, fps)
    return FrameSource(
        str(path), n, float(fps or image_fps), first.shape[0], first.shape[1], files=tuple(str(f) for f in files),
        source_fps=float(image_fps),
    )


# ----------------------------------------------------------------------------- layouts
def _name_hint(stem: str) -> tuple[str | None, str | None]:
    """(``sbs``/``tb``/``vr180_sbs`` or None, ``full``/``half`` or None) from player-style tags
    in a file name: ``_180x180_3dh_LR``/``vr180``, ``_LRF_Full_SBS``, ``_Half_SBS``/``HSBS``,
    ``_TB``/``_OU``/``Half_TB``/``HTB``/``FTB``, ``_LR``."""
    s = stem.lower()
    if re.search(r"180x180_3dh|_3dh(?![a-z])|vr180", s):
        return "vr180_sbs", "full"
    half = re.search(r"half|(?<![a-z])h(sbs|tb|ou)(?![a-z])", s) is not None
    full = re.search(r"full|(?<![a-z])f(sbs|tb|ou)(?![a-z])|lrf", s) is not None
    size = "half" if half else ("full" if full else None)
    if re.search(r"sbs|(?<![a-z])lrf?(?![a-z])|side[_-]?by[_-]?side", s):
        return "sbs", size
    if re.search(r"(?<![a-z])[hf]?(tb|ou)(?![a-z])|top[_-]?bottom|over[_-]?under", s):
        return "tb", size
    return None, None


def _gray_small(image: np.ndarray, size: int = 48) -> np.ndarray:
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)


def half_dissimilarity(a: np.ndarray, b: np.ndarray, max_shift: int = 4) -> float:
    """How unlike two eye candidates are: ``1 -`` the best zero-mean normalised correlation of
    their 48x48 grey thumbnails over horizontal shifts of up to ``max_shift`` columns.

    About 0.05 for the two eyes of one stereo frame, 0.4 or more for two halves of a mono frame.
    """
    ga, gb = _gray_small(a), _gray_small(b)
    best = -1.0
    for s in range(-max_shift, max_shift + 1):
        x, y = (ga[:, s:], gb[:, : gb.shape[1] - s]) if s >= 0 else (ga[:, :s], gb[:, -s:])
        x, y = x - x.mean(), y - y.mean()
        best = max(best, float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum() + 1e-6)))
    return 1.0 - best


def detect_layout(frame: np.ndarray, name: str = "", similar_below: float = 0.2) -> tuple[str, str]:
    """``(layout, reason)`` of a packed stereo ``frame`` (uint8 ``[H, W, 3]``).

    Rules: a player-style tag in ``name`` (``_180x180_3dh_LR`` / ``vr180`` -> ``vr180_sbs``;
    ``Full_SBS``/``LRF``/``Half_SBS``/``HSBS``/``_TB``/``Half_OU`` ...) fixes the split; otherwise
    the split (left|right or top/bottom) whose halves are most alike
    (:func:`half_dissimilarity` below ``similar_below`` and below 0.7 x the other split's);
    a tag without full/half is completed from the aspect ratio: side-by-side is full when
    each half is at least square (``W / 2 >= H``), top-bottom is full when the frame is
    taller than wide (``W < H``). Raises ``ValueError`` when neither split looks stereo.
    """
    height, width = frame.shape[:2]
    direction, size = _name_hint(Path(name).stem if name else "")
    reason = f"name tag in {Path(name).name!r}" if direction else ""
    if direction == "vr180_sbs":
        return "vr180_sbs", reason
    if direction is None:
        sbs = half_dissimilarity(frame[:, : width // 2], frame[:, width - width // 2 :])
        tb = half_dissimilarity(frame[: height // 2], frame[height - height // 2 :])
        best, other, direction = (sbs, tb, "sbs") if sbs <= tb else (tb, sbs, "tb")
        if not (best < similar_below and best < 0.7 * other):
            raise ValueError(
                f"{name or 'frame'}: cannot tell the stereo layout ({height}x{width}; left|right dissimilarity {sbs:.2f}, "
                f"top/bottom {tb:.2f}; a stereo pair is below {similar_below}); set layout explicitly "
                f"(one of {', '.join(LAYOUTS[1:])})"
            )
        reason = f"halves alike: left|right {sbs:.2f}, top/bottom {tb:.2f}"
    if size is None:
        full = (width / 2 >= height) if direction == "sbs" else (width < height)
        size = "full" if full else "half"
        reason += f"; aspect {width}x{height} -> {size}"
    return (direction if size == "full" else f"{direction}_half"), reason


def unsqueeze(eye: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize an eye ``[C, T, h, w]`` to ``(height, width)`` (bilinear, ``align_corners=False``)."""
    if tuple(eye.shape[-2:]) == (height, width):
        return eye
    frames = eye.permute(1, 0, 2, 3)
    out = F.interpolate(frames, size=(height, width), mode="bilinear", align_corners=False)
    return out.clamp_(0, 1).permute(1, 0, 2, 3).contiguous()


def split_packed(video: torch.Tensor, layout: str, name: str = "video") -> tuple[torch.Tensor, torch.Tensor]:
    """``[C, T, H, W]`` packed frames -> (left, right) ``[C, T, h, w]``.

    ``sbs``/``vr180_sbs``: left | right, each ``W/2`` wide; ``tb``: left over right; the
    half layouts are un-squeezed to ``[H, W]`` (:func:`unsqueeze`). The packed size must
    split evenly (an odd width for SBS or odd height for TB is an error naming ``name``).
    """
    if layout not in PACKED_LAYOUTS:
        raise ValueError(f"{name}: layout must be one of {PACKED_LAYOUTS}, got {layout!r}")
    height, width = video.shape[-2:]
    if layout in ("sbs", "sbs_half", "vr180_sbs"):
        if width % 2:
            raise ValueError(f"{name}: a side-by-side frame must have an even width, got {height}x{width}")
        left, right = video[..., : width // 2], video[..., width // 2 :]
    else:
        if height % 2:
            raise ValueError(f"{name}: a top-bottom frame must have an even height, got {height}x{width}")
        left, right = video[..., : height // 2, :], video[..., height // 2 :, :]
    if layout.endswith("_half"):
        left, right = unsqueeze(left, height, width), unsqueeze(right, height, width)
    return left.contiguous(), right.contiguous()


def eye_size(height: int, width: int, layout: str) -> tuple[int, int]:
    """Size ``(h, w)`` of each eye of a packed ``height x width`` frame after :func:`split_packed`."""
    if layout in ("sbs", "vr180_sbs"):
        return height, width // 2
    if layout == "tb":
        return height // 2, width
    return height, width
