"""Where in-the-wild videos come from, and the depth files that may sit next to them.

Sources (:func:`resolve_videos`):

- a video file or a photo (PNG, JPEG, WebP: a one-frame video,
  :mod:`stereo_lit.io.image_reader`);
- a folder of videos and/or photos (searched recursively, sorted);
- a ``.txt`` file of paths, one per line (``#`` comments; ``PATH<TAB>caption`` allowed;
  relative paths are relative to the text file);
- a Hugging Face ``datasets`` collection: a folder saved with ``save_to_disk``
  (``load_from_disk``), or a ``.csv`` / ``.parquet`` / ``.json`` / ``.jsonl`` file with a
  path column and an optional caption column;
- a list of any of the above (from YAML).

Each :class:`VideoEntry` has an output ``name``: its path relative to the folder (or list
file / table) it came from, without the extension (``a/clip.mp4`` -> ``a/clip``); a lone
file or a path outside that folder keeps its stem. :func:`check_output_names` refuses two
videos with one name. A folder scan leaves out this package's outputs: hidden files and
folders, folders holding a stereo-lit manifest, lock or output marker
(:mod:`stereo_lit.io.output_manifest`), and mp4 files tagged by its writer.

Depth (:func:`find_depth_file`, :func:`DepthFile`): ``<stem>.npy``, ``<stem>.npz`` or
``<stem>_depths.npz`` (Video-Depth-Anything's output, key ``depths``) next to the video,
``[T, H, W]`` (or ``[T, 1, H, W]``; a photo's ``NAME.npy`` may be ``[H, W]`` or
``[1, H, W]``, in display orientation), relative *inverse* depth unless the file says
otherwise (an npz key ``depth_kind`` holding ``"metric_m"`` or ``"inverse_relative"``).
An edited depth may also come back as a folder ``<stem>_depth/`` (or ``<stem>.depth/``) of
16-bit grey PNGs ``000000.png, 000001.png, ...``, one per frame, read as relative inverse
depth ``value / 65535`` (:class:`PngDepthSequence`); a folder scan leaves such folders out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stereo_lit.io import mapped
from stereo_lit.io.image_reader import IMAGE_EXTENSIONS
from stereo_lit.io.output_manifest import LOCK_NAME, MANIFEST_NAME, ROOT_MARKER
from stereo_lit.io.video_reader import VIDEO_EXTENSIONS
from stereo_lit.io.video_writer import WRITER_TAG

log = logging.getLogger(__name__)

PATH_COLUMNS = ("path", "video", "video_path", "file", "filename", "file_name")
CAPTION_COLUMNS = ("caption", "text", "prompt", "description")
DEPTH_KINDS = ("metric_m", "inverse_relative")
DEPTH_FILE_SUFFIXES = (".npy", ".npz", "_depths.npz")  # <stem>.npy ...: a depth array file, looked for in this order
DEPTH_FOLDER_SUFFIXES = ("_depth", ".depth")  # <stem>_depth/000000.png ...: an edited depth as 16-bit PNGs
_TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".json": "json", ".jsonl": "json"}


@dataclass(frozen=True)
class VideoEntry:
    """One video to read and its optional caption (the prompt)."""

    path: str
    caption: str = ""
    name: str = ""  # output folder name (posix, relative); "" = the file's stem


def is_video_file(path: Path) -> bool:
    """A source file predict converts: a video or a photo (by extension)."""
    return path.suffix.lower() in VIDEO_EXTENSIONS + IMAGE_EXTENSIONS


def output_name(path: Path, base: Path | None) -> str:
    """``path`` relative to ``base`` without its extension (posix), else its stem."""
    if base is not None:
        try:
            return path.resolve().relative_to(base.resolve()).with_suffix("").as_posix()
        except ValueError:
            pass
    return path.stem


def check_output_names(named: dict[str, str]) -> None:
    """Raise when two videos (``{path: output name}``) would write one output folder
    (names compared case-insensitively, for case-insensitive file systems)."""
    seen: dict[str, str] = {}
    clashes = []
    for path, name in named.items():
        key = name.casefold()
        if key in seen and seen[key] != path:
            clashes.append(f"{seen[key]} and {path} -> {name}/")
        seen.setdefault(key, path)
    if clashes:
        raise ValueError(
            "videos would write to the same output folder: " + "; ".join(clashes)
            + ". Give them distinct names, or put them under one source folder (outputs keep the path relative to it)"
        )


def _written_by_us(path: Path) -> bool:
    """An mp4 this package wrote (its container comment is the writer's tag)."""
    if path.suffix.lower() != ".mp4":
        return False
    try:
        import av

        with av.open(str(path)) as container:
            return container.metadata.get("comment", "").startswith(WRITER_TAG)
    except Exception:  # noqa: BLE001 - unreadable files are the reader's business, not ours
        return False


def _is_output_folder(folder: Path) -> bool:
    return any((folder / n).exists() for n in (MANIFEST_NAME, LOCK_NAME, ROOT_MARKER)) or _is_depth_folder(folder)


def _is_depth_folder(folder: Path) -> bool:
    """``<stem>_depth/`` or ``<stem>.depth/`` next to a video ``<stem>.*``: a depth PNG sequence."""
    for suffix in DEPTH_FOLDER_SUFFIXES:
        if folder.name.endswith(suffix) and len(folder.name) > len(suffix):
            stem = folder.name[: -len(suffix)]
            if any(p.stem == stem and p.is_file() and is_video_file(p) for p in folder.parent.iterdir()):
                return True
    return False


def scan_folder(root: Path) -> tuple[list[Path], list[Path]]:
    """Video files under ``root`` (recursive, sorted) and those left out as our outputs."""
    videos, outputs = [], []
    output_folders: dict[Path, bool] = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or not is_video_file(p):
            continue
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        parents = [root / Path(*rel.parts[:i]) for i in range(1, len(rel.parts))]
        if any(output_folders.setdefault(f, _is_output_folder(f)) for f in parents) or _written_by_us(p):
            outputs.append(p)
        else:
            videos.append(p)
    return videos, outputs


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_info.json").is_file() or (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def _pick_column(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, source: str, required: bool) -> str | None:
    if wanted is not None:
        if wanted not in columns:
            raise ValueError(f"{source}: no {what} column {wanted!r}; columns are {columns}")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    if required:
        raise ValueError(f"{source}: no {what} column (looked for {list(candidates)}); columns are {columns}; set it explicitly")
    return None


def _from_table(dataset, source: str, base: Path, path_column: str | None, caption_column: str | None) -> list[VideoEntry]:
    columns = list(dataset.column_names)
    pcol = _pick_column(columns, path_column, PATH_COLUMNS, "path", source, required=True)
    ccol = _pick_column(columns, caption_column, CAPTION_COLUMNS, "caption", source, required=False)
    entries = []
    for row in dataset.select_columns([c for c in (pcol, ccol) if c]):
        value = row[pcol]
        if isinstance(value, dict) and "path" in value:  # datasets Video()/Image() feature
            value = value["path"]
        path = Path(str(value)).expanduser()
        caption = row[ccol] if ccol else ""
        full = path if path.is_absolute() else base / path
        entries.append(VideoEntry(str(full), "" if caption is None else str(caption), output_name(full, base)))
    return entries


def _load_saved(folder: Path, split: str | None):
    from datasets import DatasetDict, load_from_disk

    data = load_from_disk(str(folder))
    if isinstance(data, DatasetDict):
        name = split or ("train" if "train" in data else next(iter(data)))
        if name not in data:
            raise ValueError(f"{folder}: no split {name!r}; splits are {list(data)}")
        data = data[name]
    return data


def existing_source(source: str | Path, what: str) -> Path:
    """``source`` as a path (``~`` expanded); FileNotFoundError naming ``what`` (e.g. "video source") when absent."""
    path = Path(str(source)).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return path


def resolve_videos(
    source: str | Path | list,
    path_column: str | None = None,
    caption_column: str | None = None,
    split: str | None = None,
) -> list[VideoEntry]:
    """The videos named by ``source`` (see module docstring), in a stable order."""
    if isinstance(source, (list, tuple)):
        return [e for s in source for e in resolve_videos(s, path_column, caption_column, split)]
    path = existing_source(source, "video source")
    if path.is_dir():
        if _is_saved_dataset(path):
            return _from_table(_load_saved(path, split), str(path), path, path_column, caption_column)
        videos, outputs = scan_folder(path)
        if outputs:
            log.info("%s: left out %d stereo-lit output file(s)", path, len(outputs))
        if not videos:
            ours = f" ({len(outputs)} stereo-lit outputs left out)" if outputs else ""
            raise ValueError(f"{path}: folder holds no video or image files ({', '.join(VIDEO_EXTENSIONS + IMAGE_EXTENSIONS)}){ours}")
        return [VideoEntry(str(p), "", output_name(p, path)) for p in videos]
    suffix = path.suffix.lower()
    if suffix == ".txt":
        entries = []
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, caption = line.partition("\t")
            p = Path(name.strip()).expanduser()
            full = p if p.is_absolute() else path.parent / p
            entries.append(VideoEntry(str(full), caption.strip(), output_name(full, path.parent)))
        if not entries:
            raise ValueError(f"{path}: the list holds no video paths")
        return entries
    if suffix in _TABLE_FORMATS:
        from datasets import load_dataset

        table = load_dataset(_TABLE_FORMATS[suffix], data_files=str(path), split="train")
        return _from_table(table, str(path), path.parent, path_column, caption_column)
    if is_video_file(path):
        return [VideoEntry(str(path), "", path.stem)]
    raise ValueError(
        f"{path}: unrecognised video source; expected a video file, a photo (png/jpg/webp), a folder, a .txt list, "
        "a saved `datasets` folder or a .csv/.parquet/.json table"
    )


# ----------------------------------------------------------------------------- depth
def depth_names(stem: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(file names, folder names)`` a depth of the video ``<stem>.*`` may have, in the order
    :func:`find_depth_file` looks for them: ``<stem>.npy``, ``<stem>.npz``, ``<stem>_depths.npz``;
    ``<stem>_depth/``, ``<stem>.depth/``."""
    return tuple(stem + s for s in DEPTH_FILE_SUFFIXES), tuple(stem + s for s in DEPTH_FOLDER_SUFFIXES)


DEPTH_ASPECT_TOLERANCE = 0.01  #: a depth file of another size is resized when its aspect ratio is this close
_RESIZE_WARNED: set[tuple[str, tuple[int, int], tuple[int, int]]] = set()


def check_depth_size(depth_path: str | Path, depth_hw: tuple[int, int], video_path: str | Path, video_hw: tuple[int, int]) -> None:
    """The one rule for a depth file (``.npy``/``.npz`` or a ``NAME_depth/`` PNG folder) whose frame
    size differs from the video's *displayed* size (after its rotation / EXIF orientation).

    Same size: nothing. Same aspect ratio within :data:`DEPTH_ASPECT_TOLERANCE` (1 %): resized to
    the video (bilinear) with a warning, once per file. Otherwise a ValueError naming both sizes
    (a depth in the stored orientation of a rotated video says so).
    """
    (dh, dw), (vh, vw) = (int(x) for x in depth_hw), (int(x) for x in video_hw)
    if (dh, dw) == (vh, vw):
        return
    if abs((dw / dh) / (vw / vh) - 1.0) <= DEPTH_ASPECT_TOLERANCE:
        key = (str(depth_path), (dh, dw), (vh, vw))
        if key not in _RESIZE_WARNED:
            _RESIZE_WARNED.add(key)
            log.warning("%s: depth frames are %dx%d (WxH), %s is %dx%d as displayed: depth resized to the video "
                        "(same aspect ratio)", depth_path, dw, dh, video_path, vw, vh)
        return
    rotated = abs((dw / dh) / (vh / vw) - 1.0) <= DEPTH_ASPECT_TOLERANCE
    raise ValueError(
        f"{depth_path}: depth frames are {dw}x{dh} (WxH) but {video_path} is {vw}x{vh} as displayed, another aspect "
        f"ratio; give depth at the video's displayed size"
        + (" (this depth looks rotated: depth files are in the displayed orientation, after a phone's rotation tag "
           "or a photo's EXIF orientation)" if rotated else "")
    )


def find_depth_file(video_path: str | Path) -> Path | None:
    """The depth next to the video, if any: the first of :func:`depth_names` present (files first)."""
    video = Path(video_path)
    files, folders = depth_names(video.stem)
    for name in files:
        if video.with_name(name).is_file():
            return video.with_name(name)
    for name in folders:
        if video.with_name(name).is_dir():
            return video.with_name(name)
    return None


class PngDepthSequence:
    """A folder of 16-bit grey PNGs ``000000.png ...`` as a lazy float32 array ``[T, H, W]``
    of relative inverse depth ``value / 65535`` (frames decoded when indexed).

    Raises:
        ValueError (naming the folder): no PNGs, names not ``000000.png`` .. ``N-1`` without
            gaps, a frame that is not 16-bit single-channel, or frames of different sizes.
    """

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, folder: str | Path) -> None:
        from PIL import Image

        self.folder = Path(folder)
        self.files = sorted(self.folder.glob("*.png"))
        if not self.files:
            raise ValueError(f"{self.folder}: depth folder holds no PNG files (expected 000000.png, 000001.png, ...)")
        for i, f in enumerate(self.files):
            if f.name != f"{i:06d}.png":
                raise ValueError(f"{self.folder}: depth PNGs must be numbered 000000.png .. {len(self.files) - 1:06d}.png without gaps; found {f.name} at position {i}")
        with Image.open(self.files[0]) as first:
            self.size = first.size  # (W, H)
        for f in self.files[1:]:  # headers only: a wrong size is an error before any frame is decoded
            with Image.open(f) as image:
                if image.size != self.size:
                    raise ValueError(f"{self.folder}: {f.name} is {image.size[0]}x{image.size[1]} but 000000.png is {self.size[0]}x{self.size[1]}; every depth frame must have one size")
        self.shape = (len(self.files), self.size[1], self.size[0])

    def _frame(self, index: int) -> np.ndarray:
        from PIL import Image

        path = self.files[index]
        with Image.open(path) as image:
            values = np.asarray(image)
        if values.ndim != 2 or values.dtype != np.uint16:
            raise ValueError(f"{self.folder}: {path.name} must be a 16-bit single-channel PNG (mode I;16), got mode {image.mode} {values.dtype}")
        return values.astype(np.float32) / 65535.0

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self._frame(int(index))
        indices = range(self.shape[0])[index] if isinstance(index, slice) else list(index)
        return np.stack([self._frame(int(i)) for i in indices]) if len(indices) else np.zeros((0, *self.shape[1:]), np.float32)


class DepthFile:
    """A per-video depth array ``[T, H, W]``: ``.npy`` is memory-mapped (frames read on
    demand); an ``.npz`` is decompressed whole when opened (one video at a time is cached).

    Args:
        path: the ``.npy``/``.npz`` file.
        default_kind: depth kind when the file does not say (``"inverse_relative"``).
    """

    def __init__(self, path: str | Path, default_kind: str = "inverse_relative") -> None:
        self.path = Path(path)
        if default_kind not in DEPTH_KINDS:
            raise ValueError(f"depth_kind must be one of {DEPTH_KINDS}, got {default_kind!r}")
        self.kind = default_kind
        try:
            if self.path.is_dir():  # an edited depth: 16-bit PNG sequence, relative inverse depth
                array = PngDepthSequence(self.path)
                self.kind = "inverse_relative"
            elif self.path.suffix == ".npy":
                array = np.load(self.path, mmap_mode="r", allow_pickle=False)
            else:
                with np.load(self.path, allow_pickle=False) as npz:
                    key = "depths" if "depths" in npz.files else ("depth" if "depth" in npz.files else None)
                    if key is None:
                        raise ValueError(f"{self.path}: npz has no 'depths' (or 'depth') array; keys are {npz.files}")
                    array = npz[key]
                    if "depth_kind" in npz.files:
                        self.kind = str(npz["depth_kind"])
        except Exception as exc:  # noqa: BLE001 - name the file (numpy's own ValueErrors do not)
            if str(self.path) in str(exc):
                raise
            raise ValueError(f"{self.path}: unreadable depth file: {exc}") from exc
        if self.kind not in DEPTH_KINDS:
            raise ValueError(f"{self.path}: depth_kind {self.kind!r} is not one of {DEPTH_KINDS}")
        if array.ndim == 4 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim == 2:  # one photo's depth [H, W]
            array = array[None]
        if array.ndim != 3:
            raise ValueError(f"{self.path}: depth must be [T, H, W], got shape {tuple(array.shape)}")
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{self.path}: depth must be float16/float32, got {array.dtype}")
        self.array = array

    @property
    def num_frames(self) -> int:
        return int(self.array.shape[0])

    def frames(self, indices: list[int]) -> np.ndarray:
        """float32 ``[len(indices), H, W]``; NaN/inf is an error naming the file."""
        out = mapped.read(self.array, indices, np.float32)  # a .npy's pages then leave the process (io.mapped)
        if not np.isfinite(out).all():
            raise ValueError(f"{self.path}: depth holds NaN/inf values (frames {indices[0]}..{indices[-1]})")
        return out
