"""Stereo photos: the layouts of a one-frame prediction written as images, atomically.

A photo's outputs go where a video's would (``output_dir/<name>/``), one image per layout
(``right``, ``sbs``, ``sbs_half``, ``tb``, ``tb_half``, ``anaglyph``, ``vr180``, ``depth``; composed
by :mod:`stereo_lit.io.layouts`, the stereo layouts with the convergence shift, ``right``
the raw right eye) at the source's size (``sbs`` is twice as wide, ``tb`` twice as high),
in the source's format family (:func:`image_format`): PNG -> PNG, JPEG -> JPEG (quality
95, 4:4:4 chroma), WebP -> lossless WebP. The source's ICC colour profile is carried over;
the EXIF orientation is not (the pixels are already upright).

Each file is written under a hidden temporary name of this process
(:func:`stereo_lit.io.video_writer.partial_path`) and renamed when the whole photo is in,
so the manifest and lock rules of :mod:`stereo_lit.io.output_manifest` hold as for videos.
:class:`ImageOutputs` has the interface of the prediction writer's per-video outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stereo_lit.io.layouts import VR180Options, apply_convergence, compose, disparity_to_colormap, output_filename
from stereo_lit.io.output_manifest import replace_output_set
from stereo_lit.io.video_writer import partial_path

# source extension -> (Pillow format, save options)
_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    ".png": ("PNG", {}),
    ".jpg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".jpeg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".webp": ("WEBP", {"lossless": True, "quality": 100, "method": 4}),
}


def image_format(source: str | Path) -> tuple[str, str, dict[str, Any]]:
    """``(extension, Pillow format, save options)`` for outputs of the photo ``source``."""
    suffix = Path(source).suffix.lower()
    if suffix not in _FORMATS:
        raise ValueError(f"{source}: not a photo format stereo-lit writes ({', '.join(_FORMATS)})")
    fmt, options = _FORMATS[suffix]
    return suffix, fmt, dict(options)


def image_filenames(source: str | Path, folder: Path, layouts: list[str], naming: str = "plain") -> dict[str, str]:
    """``{layout: file name}`` of a photo's outputs: the video names
    (:func:`stereo_lit.io.layouts.output_filename`) with the photo's extension
    (``sbs.png``; ``player``: ``<name>_LRF_Full_SBS.jpg``)."""
    ext = image_format(source)[0]
    return {layout: Path(output_filename(layout, naming, folder.name)).with_suffix(ext).name for layout in layouts}


def layout_image(
    layout: str, left: np.ndarray, right: np.ndarray, shift_px: float = 0.0, disparity: np.ndarray | None = None,
    vr: VR180Options | None = None,
) -> np.ndarray:
    """One layout of one stereo pair: uint8 ``[H', W', 3]`` from uint8 ``[H, W, 3]`` eyes.

    ``right`` is the raw right eye; the stereo layouts get the convergence ``shift_px``;
    ``depth`` needs ``disparity`` ``[H, W]`` (px; turbo colours over its 2nd-98th percentiles).
    """
    if layout == "right":
        return right
    if layout == "depth":
        if disparity is None:
            raise ValueError("layout 'depth' needs the disparity of the photo")
        return disparity_to_colormap(disparity[None])[0]
    shifted = apply_convergence(left[None], right[None], shift_px)
    return compose(layout, *shifted, vr=vr)[0]


def save_image(path: Path, pixels: np.ndarray, fmt: str, options: dict[str, Any], icc_profile: bytes | None = None) -> None:
    """Save uint8 ``[H, W, 3]`` RGB as ``fmt`` to ``path`` (not atomic; see :class:`ImageOutputs`)."""
    from PIL import Image

    extra = dict(options)
    if icc_profile:
        extra["icc_profile"] = icc_profile
    Image.fromarray(np.ascontiguousarray(pixels), mode="RGB").save(path, format=fmt, **extra)


def _icc_profile(source: str | Path) -> bytes | None:
    from PIL import Image

    try:
        with Image.open(source) as image:
            return image.info.get("icc_profile")
    except OSError:
        return None


class ImageOutputs:
    """The outputs of one photo (the prediction writer's per-source interface).

    Args:
        video_path: the source photo.
        folder: its output folder.
        layouts: layouts to write (:data:`stereo_lit.io.layouts.LAYOUTS`).
        fps, num_frames: as for a video (a photo has one frame).
        naming: file names, ``plain`` or ``player`` (:func:`image_filenames`).
        vr: options of the ``vr180`` layout.
    """

    def __init__(
        self, video_path: str, folder: Path, layouts: list[str], fps: float = 1.0, num_frames: int = 1,
        naming: str = "plain", vr: VR180Options | None = None,
    ) -> None:
        self.video_path = video_path
        self.folder = folder
        self.layouts = list(layouts)
        self.num_frames = int(num_frames)
        self.next_frame = 0
        self.ext, self.format, self.options = image_format(video_path)
        self.icc_profile = _icc_profile(video_path)
        self.vr = vr
        self.paths = {layout: folder / name for layout, name in image_filenames(video_path, folder, self.layouts, naming).items()}
        self.partials = {layout: partial_path(path) for layout, path in self.paths.items()}

    def file_name(self, layout: str) -> str:
        return self.paths[layout].name

    def write(self, start: int, left: np.ndarray, right: np.ndarray, disparity: np.ndarray | None, shift: float) -> None:
        """Write the photo: ``left``/``right`` uint8 ``[1, H, W, 3]``, ``disparity`` ``[1, H, W]`` px."""
        if start != 0 or left.shape[0] != 1 or self.next_frame != 0:
            raise ValueError(f"{self.video_path}: a photo is one frame; got frames {start}..{start + left.shape[0] - 1}")
        self.folder.mkdir(parents=True, exist_ok=True)
        for layout in self.layouts:
            pixels = layout_image(layout, left[0], right[0], shift, None if disparity is None else disparity[0], self.vr)
            save_image(self.partials[layout], pixels, self.format, self.options, self.icc_profile)
        self.next_frame = 1

    @property
    def done(self) -> bool:
        return self.next_frame >= self.num_frames

    def close(self) -> dict[str, dict[str, Any]]:
        """Rename every layout to its final name; ``{layout: {"bytes", "frames", "file"}}``."""
        if self.next_frame == 0:
            raise ValueError(f"{self.video_path}: no frame was written")
        replace_output_set(self.folder, {layout: (self.partials[layout], self.paths[layout]) for layout in self.layouts})
        return {
            layout: {"bytes": self.paths[layout].stat().st_size, "frames": 1, "file": self.paths[layout].name}
            for layout in self.layouts
        }

    def abort(self) -> None:
        for path in self.partials.values():
            path.unlink(missing_ok=True)
