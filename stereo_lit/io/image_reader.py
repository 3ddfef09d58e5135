"""Photos as one-frame clips: PNG, JPEG and WebP read with Pillow, EXIF orientation applied.

A photo goes through ``predict`` like a video of one frame (one frame is a valid ``4k+1``
length): :func:`probe_image` gives the same :class:`~stereo_lit.io.video_reader.VideoInfo`
a video gets (``num_frames=1``, ``fps=1``, no audio, ``codec`` = the image format), and
:func:`read_image` the frame as uint8 ``[H, W, 3]`` RGB in *display* orientation (a
camera's EXIF rotation tag is applied, :func:`PIL.ImageOps.exif_transpose`, so a portrait
JPEG stored sideways comes out upright). Alpha is dropped (composited on black), palette and
grey images become RGB. Failures raise :class:`~stereo_lit.io.video_reader.VideoReadError`
naming the file.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from stereo_lit.io.media import VideoInfo, VideoReadError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
IMAGE_FPS = 1.0  # nominal frame rate of a one-frame clip (nothing is timed by it)


def is_image_file(path: str | Path) -> bool:
    """True for a path whose extension is a photo format read here (case-insensitive), except
    an animated WebP, which converts as a video (:func:`is_animated_image`), as a GIF does."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS and not is_animated_image(path)


def is_animated_image(path: str | Path) -> bool:
    """True for an existing WebP file holding more than one frame (read from its header)."""
    path = Path(path)
    if path.suffix.lower() != ".webp":
        return False
    try:
        stat = path.stat()
    except OSError:
        return False
    return _animated(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _animated(path: str, size: int, mtime_ns: int) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return int(getattr(image, "n_frames", 1)) > 1
    except Exception:  # noqa: BLE001 - unreadable: the photo reader names the file
        return False


def probe_animated(path: str | Path) -> VideoInfo:
    """An animated WebP's :class:`VideoInfo`: its frame count, size and average frame rate (from the frame durations)."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as image:
            count, (width, height) = int(image.n_frames), image.size
            durations = []
            for index in range(count):
                image.seek(index)
                durations.append(float(image.info.get("duration") or 0.0))
    except Exception as exc:  # noqa: BLE001 - name the file
        raise VideoReadError(f"{path}: not a readable animated image: {exc}") from exc
    mean_ms = sum(durations) / len(durations) if durations and sum(durations) > 0 else 100.0
    fps = 1000.0 / mean_ms
    return VideoInfo(path=str(path), num_frames=count, fps=fps, height=int(height), width=int(width), has_audio=False,
                     duration_s=count / fps, codec="webp")


def iter_animated(path: str | Path, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, uint8 [H, W, 3] RGB)`` of an animated WebP from frame ``start`` (alpha composited on black)."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as image:
            for index in range(start, int(image.n_frames)):
                image.seek(index)
                yield index, _rgb(image.copy())
    except VideoReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - name the file
        raise VideoReadError(f"{path}: corrupt animated image data: {exc}") from exc


def _open_upright(path: Path):
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.exists():
        raise VideoReadError(f"{path}: image file does not exist")
    if path.is_dir():
        raise VideoReadError(f"{path}: expected an image file, got a folder")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise VideoReadError(f"{path}: not a readable image (corrupt or unsupported): {exc}") from exc
    return ImageOps.exif_transpose(image), image.format or path.suffix.lstrip(".").upper()


def _rgb(image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        from PIL import Image

        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def dropped_on_read(path: str | Path) -> list[str]:
    """What reading ``path`` as 8-bit RGB loses: ``"alpha"`` (transparency) and/or ``"16-bit"`` (more
    than 8 bits per channel); read from the header, nothing decoded."""
    from PIL import Image

    lost = []
    try:
        with Image.open(path) as image:
            if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
                lost.append("alpha")
            rawmodes = [str(t.args[0] if isinstance(t.args, tuple) and t.args else t.args) for t in (image.tile or [])]
            if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F") or any(";16" in m for m in rawmodes):
                lost.append("16-bit")
    except Exception:  # noqa: BLE001 - unreadable: the reader names the file
        return []
    return lost


def probe_image(path: str | Path) -> VideoInfo:
    """A photo's :class:`VideoInfo`: one frame, the display size (after EXIF rotation). A photo with
    an alpha channel or 16 bits per channel gets a warning: the outputs are 8-bit RGB (the stereo
    layouts have no alpha, and the written formats are 8-bit)."""
    path = Path(path)
    lost = dropped_on_read(path)
    if lost:
        log.warning(
            "%s: %s dropped: stereo outputs are 8-bit RGB%s", path, " and ".join(
                {"alpha": "the alpha channel (transparency)", "16-bit": "16-bit precision"}[k] for k in lost),
            " (transparent areas become black)" if "alpha" in lost else "",
        )
    image, fmt = _open_upright(path)
    width, height = image.size
    return VideoInfo(
        path=str(path), num_frames=1, fps=IMAGE_FPS, height=int(height), width=int(width), has_audio=False,
        duration_s=1.0 / IMAGE_FPS, codec=str(fmt).lower(),
    )


def read_image(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 ``[H, W, 3]`` RGB in display orientation; ``size=(H, W)`` resizes (area filter)."""
    image, _ = _open_upright(Path(path))
    rgb = _rgb(image)
    if size is not None and tuple(rgb.shape[:2]) != tuple(size):
        import cv2

        rgb = cv2.resize(rgb, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA)
    return rgb
