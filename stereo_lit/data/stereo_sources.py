"""Where stereo videos come from: packed files (one file, both eyes) or separate eye files.

:func:`resolve_stereo` turns a ``source`` into :class:`StereoEntry` items, in a stable order:

- a video or image file: a packed stereo file (SBS / TB / VR180), or, when its stem ends in
  ``_L`` / ``_R`` (also ``_left`` / ``_right``, any case), the pair with its partner;
- a folder with ``left/`` and ``right/`` subfolders: the videos in them paired by stem; or,
  when they hold image frames, one clip (the two frame folders); or subfolders of frames
  paired by name;
- a folder holding only image files (not all ``_L``/``_R`` tagged): one packed clip of
  frames in name order;
- any other folder: searched recursively for the above (``left/``+``right/`` folders,
  ``NAME_L.*``/``NAME_R.*`` pairs, other videos and images as packed files);
- a ``.txt`` list, a saved ``datasets`` folder or a ``.csv``/``.parquet``/``.json`` table:
  read with :func:`stereo_lit.data.wild_sources.resolve_videos` (captions too), each path
  expanded as above;
- a list of any of these.

An ``_L`` file without its ``_R`` partner (or the reverse) is an error naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stereo_lit.data.stereo_frames import image_files, is_image_file, is_video_file
from stereo_lit.data.wild_sources import _is_saved_dataset, existing_source, resolve_videos

_EYE = re.compile(r"^(?P<name>.+?)[_-](?P<eye>l|r|left|right)$", re.IGNORECASE)


@dataclass(frozen=True)
class StereoEntry:
    """One stereo clip: ``path`` (a packed file, or the left eye) and ``right_path`` (the
    right eye for separate files, else None); ``name`` identifies it in sample ids."""

    path: str
    right_path: str | None = None
    name: str = ""
    caption: str = ""

    @property
    def separate(self) -> bool:
        return self.right_path is not None


def _eye_of(path: Path) -> tuple[str, str] | None:
    m = _EYE.match(path.stem)
    if m is None:
        return None
    return m.group("name"), "left" if m.group("eye").lower() in ("l", "left") else "right"


def _partner(path: Path) -> Path:
    """The other eye of ``NAME_L.ext`` in the same folder (same extension preferred)."""
    name, eye = _eye_of(path)  # type: ignore[misc]
    wanted = (name, "right" if eye == "left" else "left")
    found = [
        p for p in sorted(path.parent.iterdir())
        if p.is_file() and p != path and (is_video_file(p) or is_image_file(p)) and _eye_of(p) == wanted
    ]
    if not found:
        other = "R" if eye == "left" else "L"
        raise ValueError(f"{path}: separate-eye file without its partner (expected {name}_{other}{path.suffix} next to it)")
    found.sort(key=lambda p: p.suffix != path.suffix)
    return found[0]


def _pair_files(path: Path, caption: str = "") -> StereoEntry:
    eye = _eye_of(path)
    if eye is None:
        return StereoEntry(str(path), None, path.stem, caption)
    other = _partner(path)
    left, right = (path, other) if eye[1] == "left" else (other, path)
    return StereoEntry(str(left), str(right), eye[0], caption)


def _eye_folders(folder: Path) -> list[StereoEntry]:
    """Entries of a folder holding ``left/`` and ``right/``."""
    left_dir, right_dir = folder / "left", folder / "right"
    videos = sorted(p for p in left_dir.iterdir() if p.is_file() and is_video_file(p))
    if videos:
        entries = []
        for video in videos:
            partner = [p for p in right_dir.glob(f"{video.stem}.*") if is_video_file(p)]
            if not partner:
                raise ValueError(f"{video}: no right-eye video {right_dir / video.stem}.* for it")
            entries.append(StereoEntry(str(video), str(partner[0]), f"{folder.name}/{video.stem}"))
        return entries
    if image_files(left_dir):
        return [StereoEntry(str(left_dir), str(right_dir), folder.name)]
    subs = sorted(p for p in left_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subs:
        raise ValueError(f"{left_dir}: holds no videos, image frames or frame folders")
    entries = []
    for sub in subs:
        if not (right_dir / sub.name).is_dir():
            raise ValueError(f"{sub}: no right-eye frame folder {right_dir / sub.name}")
        entries.append(StereoEntry(str(sub), str(right_dir / sub.name), f"{folder.name}/{sub.name}"))
    return entries


def _walk(folder: Path) -> list[StereoEntry]:
    if (folder / "left").is_dir() and (folder / "right").is_dir():
        return _eye_folders(folder)
    entries: list[StereoEntry] = []
    seen: set[str] = set()
    children = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if children and all(p.is_file() and is_image_file(p) for p in children) and not all(_eye_of(p) for p in children):
        return [StereoEntry(str(folder), None, folder.name)]  # a folder of packed frames: one clip
    for child in children:
        if child.is_file() and (is_video_file(child) or is_image_file(child)) and str(child) not in seen:
            entry = _pair_files(child)
            seen.update(p for p in (entry.path, entry.right_path) if p)
            entries.append(entry)
    for child in children:
        if child.is_dir():
            entries.extend(_walk(child))
    return entries


def _expand(path: Path, caption: str = "") -> list[StereoEntry]:
    path = existing_source(path, "stereo source")
    if path.is_dir():
        entries = _walk(path)
        if not entries:
            raise ValueError(f"{path}: folder holds no stereo videos, images or left/ and right/ folders")
        return [StereoEntry(e.path, e.right_path, e.name, caption) for e in entries] if caption else entries
    return [_pair_files(path, caption)]


def resolve_stereo(
    source: str | Path | list,
    path_column: str | None = None,
    caption_column: str | None = None,
    split: str | None = None,
) -> list[StereoEntry]:
    """The stereo clips named by ``source`` (see the module docstring)."""
    if isinstance(source, (list, tuple)):
        return [e for s in source for e in resolve_stereo(s, path_column, caption_column, split)]
    path = existing_source(source, "stereo source")
    if (path.is_dir() and _is_saved_dataset(path)) or (path.is_file() and path.suffix.lower() in (".txt", ".csv", ".parquet", ".json", ".jsonl")):
        entries: list[StereoEntry] = []
        for video in resolve_videos(path, path_column, caption_column, split):
            entries.extend(_expand(Path(video.path), video.caption))
        # one pair listed as both NAME_L and NAME_R gives one clip
        unique = {(e.path, e.right_path): e for e in entries}
        return list(unique.values())
    return _expand(path)
