"""The parts of ``stereo-lit ui`` that need no web page: form values -> ``stereo-lit predict``
arguments, upload staging and checks, path containment, and a cancellable predict run.

Every conversion and preview runs the real ``python -m stereo_lit.cli predict`` in a
subprocess (the same code, atomic and resumable outputs, as the command line); cancelling
kills that subprocess's process group, which leaves nothing that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from stereo_lit.data.wild_sources import depth_names
from stereo_lit.io.layouts import LAYOUTS
from stereo_lit.io.video_reader import VIDEO_EXTENSIONS
from stereo_lit.ui.progress import read_progress

DEFAULT_WAN = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"  # hub ids (from the Hugging Face cache) or local paths
DEFAULT_VDA = "depth-anything/Video-Depth-Anything-Small"
METHODS = ("geometric", "wan")
DEPTH_SOURCES = ("file", "vda")
GEOMETRIC = "stereo_lit.generators.geometric.WarpFill"
WAN = "stereo_lit.diffusion.WanStereoGenerator"
VDA = "stereo_lit.depth.VDAEstimator"
WILD = "stereo_lit.data.wild.WildVideoDataModule"


@dataclass
class Settings:
    """The form's values. ``max_disparity_pct``: strength, largest disparity in % of the width;
    ``convergence``: screen plane, 0 = at infinity .. 1 = at the nearest surface."""

    method: str = "geometric"
    depth: str = "file"
    max_disparity_pct: float = 2.0
    convergence: float = 0.5
    layouts: list[str] = field(default_factory=lambda: ["right", "sbs", "anaglyph"])


def absolute_checkpoint(value: str | Path) -> str:
    """A checkpoint option as the predict job (started in another working folder) must see it:
    a local path made absolute here, a cached hub id as its local snapshot, else the hub id unchanged."""
    from stereo_lit.io.hub import HubUnavailableError, parse_id, resolve

    if parse_id(str(value)) is None:
        return str(Path(value).expanduser().resolve())
    try:
        return str(resolve(value, download=False))
    except HubUnavailableError:
        return str(value)


def _local(checkpoint: str | Path) -> tuple[Path | None, str]:
    """``(local path or None, what was tried)`` for a path or a hub id (cache only, no download)."""
    from stereo_lit.io.hub import HubUnavailableError, resolve

    try:
        return resolve(checkpoint, download=False), ""
    except HubUnavailableError as exc:
        hint = [line.strip() for line in str(exc).splitlines() if "stereo-lit download" in line]
        return None, hint[0] if hint else str(exc).splitlines()[0]
    except FileNotFoundError:
        return None, f"tried {Path(checkpoint).expanduser().resolve()}"


def wan_status(checkpoint: str | Path) -> tuple[bool, str]:
    """(available, reason): a Wan2.1 Diffusers folder (local, or a hub id in the cache) has ``model_index.json``."""
    folder, tried = _local(checkpoint)
    if folder is not None and (folder / "model_index.json").is_file():
        return True, f"Wan2.1 found in {folder}"
    where = folder / "model_index.json" if folder is not None else Path(checkpoint) / "model_index.json"
    return False, (
        f"Wan2.1 diffusion fill is unavailable: {where} was not found ({tried or f'tried {Path(where).resolve()}'}; "
        "or start `stereo-lit ui --wan-checkpoint DIR`)"
    )


def vda_status(checkpoint: str | Path) -> tuple[bool, str]:
    """(available, reason): the Video-Depth-Anything ``.pth`` file (local, or a hub id in the cache) exists."""
    path, tried = _local(checkpoint)
    if path is not None and path.is_file():
        return True, f"Video-Depth-Anything found at {path}"
    return False, (
        f"Video-Depth-Anything depth is unavailable: {checkpoint} was not found ({tried or f'tried {Path(checkpoint).resolve()}'}; "
        "or start `stereo-lit ui --depth-checkpoint FILE`); "
        "upload a depth file NAME.npy with each video instead"
    )


def check_settings(settings: Settings, wan_checkpoint: str | Path, vda_checkpoint: str | Path) -> None:
    """Raise ValueError with a message for the page when the form asks for something impossible."""
    if settings.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {settings.method!r}")
    if settings.depth not in DEPTH_SOURCES:
        raise ValueError(f"depth source must be one of {DEPTH_SOURCES}, got {settings.depth!r}")
    if settings.method == "wan" and not wan_status(wan_checkpoint)[0]:
        raise ValueError(wan_status(wan_checkpoint)[1])
    if settings.depth == "vda" and not vda_status(vda_checkpoint)[0]:
        raise ValueError(vda_status(vda_checkpoint)[1])
    if not 0.0 < float(settings.max_disparity_pct) <= 20.0:
        raise ValueError(f"strength must be in (0, 20] % of the width, got {settings.max_disparity_pct}")
    if not 0.0 <= float(settings.convergence) <= 1.0:
        raise ValueError(f"convergence must be in [0, 1], got {settings.convergence}")
    if not settings.layouts:
        raise ValueError("choose at least one output layout")
    unknown = [layout for layout in settings.layouts if layout not in LAYOUTS]
    if unknown:
        raise ValueError(f"unknown layout(s) {unknown}; expected some of {LAYOUTS}")


def predict_args(
    source: str | Path,
    output_dir: str | Path,
    settings: Settings,
    wan_checkpoint: str | Path = DEFAULT_WAN,
    vda_checkpoint: str | Path = DEFAULT_VDA,
    progress_file: str | Path | None = None,
    window: int | None = None,
) -> list[str]:
    """The ``stereo-lit predict`` arguments for one staged video (no config file needed).

    Args:
        source: the video (its depth file ``NAME.npy`` beside it for ``depth="file"``).
        output_dir: the predict ``model.output.dir``; outputs go to ``output_dir/NAME/``.
        window, progress_file: frames per window (default 81 for Wan, 33 otherwise); the
            :class:`~stereo_lit.ui.progress.ProgressFile` target.
    """
    check_settings(settings, wan_checkpoint, vda_checkpoint)
    wan = settings.method == "wan"
    window = window or (81 if wan else 33)
    overlap = 0 if window == 1 else min(9, 4 * ((window - 1) // 8) + 1)
    args = ["predict", "--seed_everything", "0", "--trainer.accelerator", "auto", "--trainer.devices", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    if wan:
        args += ["--model.generator", WAN, "--model.wan_checkpoint", str(wan_checkpoint),
                 "--model.generator.init_args.window", str(window), "--model.generator.init_args.overlap", str(overlap)]
    else:
        args += ["--model.generator", GEOMETRIC]
    if settings.depth == "vda":
        args += ["--model.depth", VDA, "--model.depth.init_args.checkpoint", str(vda_checkpoint)]
    else:
        args += ["--model.depth", "null"]
    args += [
        "--model.disparity.max_disparity_pct", repr(float(settings.max_disparity_pct)),
        "--model.disparity.convergence", repr(float(settings.convergence)),
        "--model.output.dir", str(output_dir),
        "--model.output.layouts", json.dumps(list(settings.layouts)),
        # player names (clip_LRF_Full_SBS.mp4) so that the results of several videos can be told apart
        "--model.output.naming", "player",
        "--data.class_path", WILD,
        "--data.init_args.source", str(source),
        "--data.init_args.window", str(window), "--data.init_args.overlap", str(overlap),
        "--data.init_args.use_depth", "true" if settings.depth == "file" else "false",
        "--data.init_args.on_error", "skip",
    ]
    if progress_file is not None:
        callback = {"class_path": "stereo_lit.ui.progress.ProgressFile", "init_args": {"path": str(progress_file)}}
        args += ["--trainer.callbacks", json.dumps([callback])]
    return args


def is_inside(path: str | Path, root: str | Path) -> bool:
    """True when ``path`` (symlinks resolved) is ``root`` or lies under it."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
        return True
    except ValueError:
        return False


def original_name(upload: str | Path) -> str:
    """The file name of an upload (Gradio keeps the browser's name as the last component)."""
    return Path(upload).name


def photo_extensions() -> tuple[str, ...]:
    """The photo formats ``stereo-lit predict`` reads (empty while it converts videos only)."""
    try:
        from stereo_lit.io.image_reader import IMAGE_EXTENSIONS
    except ImportError:
        return ()
    return tuple(IMAGE_EXTENSIONS)


def is_photo_name(name: str) -> bool:
    return Path(name).suffix.lower() in photo_extensions()


def is_source_name(name: str) -> bool:
    """A video or (when predict reads them) a photo, by extension."""
    return Path(name).suffix.lower() in VIDEO_EXTENSIONS + photo_extensions()


def result_files(folder: str | Path) -> list[Path]:
    """The finished outputs in one video's output folder (not hidden partials, locks or the manifest)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix != ".json")


def expected_depth_names(video_name: str) -> str:
    """The depth inputs predict reads for ``video_name``, for messages: ``clip.npy, clip.npz, ...``."""
    files, folders = depth_names(Path(video_name).stem)
    return ", ".join([*files, *(f"{name}/ (16-bit PNGs)" for name in folders)])


def match_depth(video_name: str, depth_uploads: list[str | Path]) -> Path | None:
    """The uploaded depth for ``video_name``, as predict would pick it next to the video
    (:func:`stereo_lit.data.wild_sources.find_depth_file`): the first of the files ``STEM.npy``,
    ``STEM.npz``, ``STEM_depths.npz``, then the 16-bit PNG folders ``STEM_depth/``, ``STEM.depth/``."""
    files, folders = depth_names(Path(video_name).stem)
    uploads = [Path(p) for p in depth_uploads]
    for names, folder in ((files, False), (folders, True)):
        by_name = {original_name(p): p for p in uploads if p.is_dir() == folder}
        for name in names:
            if name in by_name:
                return by_name[name]
    return None


def _digest(path: Path) -> str:
    """Content hash (16 hex digits) of a file, or of a folder's files (names and contents, sorted)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            h.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def stage(upload: str | Path, uploads_dir: str | Path, name: str | None = None, key: str | None = None) -> Path:
    """Copy an upload (a file, or a folder such as a depth PNG sequence ``STEM_depth/``) to
    ``uploads_dir/<key>/<name>`` (key: the content hash by default).

    An identical file or folder staged before is reused untouched (same mtime), so predict's
    manifest recognises a finished video and a repeated conversion is skipped, as on the
    command line; a different one replaces it.
    """
    upload = Path(upload)
    name = name or upload.name
    folder = Path(uploads_dir) / (key or _digest(upload))
    target = folder / name
    if upload.is_dir():
        if target.is_dir() and _digest(target) == _digest(upload):
            return target
    elif target.is_file() and target.stat().st_size == upload.stat().st_size and _digest(target) == _digest(upload):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.partial-{os.getpid()}"
    if upload.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(upload, tmp)
        if target.is_dir():
            shutil.rmtree(target)
    else:
        shutil.copyfile(upload, tmp)
    os.replace(tmp, target)
    return target


def stage_depth(depth: str | Path, video: str | Path) -> Path:
    """Stage an uploaded depth (file or PNG folder) next to the staged ``video`` under its own
    name, and remove the other depth inputs of that video there (an earlier upload's
    ``STEM.npy`` would otherwise win over a new ``STEM_depth/``), so predict reads this one."""
    video = Path(video)
    target = stage(depth, video.parent.parent, key=video.parent.name)
    files, folders = depth_names(video.stem)
    for name in (*files, *folders):
        other = video.with_name(name)
        if other != target and other.is_dir():
            shutil.rmtree(other)
        elif other != target and other.exists():
            other.unlink()
    return target


def check_video(path: str | Path, name: str) -> int:
    """The frame count of an uploaded video; ValueError with a message for the page otherwise."""
    from stereo_lit.io.video_reader import VideoReadError, probe_video

    if not is_source_name(name):
        photos = f"photos ({', '.join(photo_extensions())})" if photo_extensions() else "photos are not supported yet"
        raise ValueError(
            f"{name}: unsupported format {Path(name).suffix or '(no extension)'}; stereo-lit converts videos "
            f"({', '.join(VIDEO_EXTENSIONS)}); {photos}"
        )
    try:
        if is_photo_name(name):
            from stereo_lit.io.image_reader import probe_image

            return int(probe_image(path).num_frames)
        return int(probe_video(path).num_frames)
    except (VideoReadError, OSError, ValueError) as exc:
        kind = "photo" if is_photo_name(name) else "video"
        raise ValueError(f"{name}: not a readable {kind} (a corrupt or truncated file?): {_short(exc).split(': ', 1)[-1]}") from exc


def check_depth(path: str | Path, name: str, num_frames: int) -> None:
    """Open an uploaded depth file as predict would; ValueError with a message otherwise."""
    from stereo_lit.data.wild_sources import DepthFile

    try:
        depth = DepthFile(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{name}: unreadable depth file: {_short(exc)}") from exc
    if depth.num_frames != num_frames:
        raise ValueError(f"{name}: depth has {depth.num_frames} frames but its video has {num_frames}")


def _short(exc: BaseException) -> str:
    """The exception's message without temporary folder names."""
    return re.sub(r"(/[^\s:'\"]+/)([^/\s:'\"]+)", r"\2", str(exc)) or type(exc).__name__


_ERROR_LINE = re.compile(r"^([A-Za-z_.]*(Error|Exception)|stereo-lit:|error:)", re.IGNORECASE)


def error_message(output: str) -> str:
    """The lines of a failed predict run's output a person needs (no traceback)."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    if "every video failed" in output:
        start = max(i for i, line in enumerate(lines) if "every video failed" in line)
        return _short(RuntimeError("\n".join(lines[start + 1 : start + 6])))
    hits = [line for line in lines if _ERROR_LINE.match(line.strip())]
    return _short(RuntimeError(hits[-1] if hits else (lines[-1] if lines else "predict failed without a message")))


class PredictRun:
    """``python -m stereo_lit.cli predict ARGS`` in its own process group.

    Args:
        args: from :func:`predict_args`; cwd: its working directory; log: where its output goes.
    """

    def __init__(self, args: list[str], cwd: str | Path, log: str | Path, progress_file: str | Path | None = None) -> None:
        self.progress_file = progress_file
        self.log = Path(log)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   PYTHONUNBUFFERED="1")
        with open(self.log, "w") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stereo_lit.cli", *args], cwd=str(cwd), env=env,
                stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )

    def progress(self) -> tuple[int, int] | None:
        """(done, total) windows so far, when the run has reported any."""
        return read_progress(self.progress_file) if self.progress_file else None

    def poll(self) -> int | None:
        return self.process.poll()

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def cancel(self, grace_s: float = 5.0) -> None:
        """Stop the run (SIGTERM to its group, SIGKILL after ``grace_s``)."""
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.time() + wait
            while self.process.poll() is None and time.time() < deadline:
                time.sleep(0.1)
            if self.process.poll() is not None:
                return


def preview_clip(video: str | Path, depth: str | Path | None, folder: str | Path, name: str) -> Path:
    """Write the first frame of ``video`` as a 1-frame lossless clip ``folder/STEM.mkv`` (and the
    first depth frame as ``folder/STEM.npy``), the input of a 1-frame predict window."""
    import av
    import numpy as np

    from stereo_lit.data.wild_sources import DepthFile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(name).stem
    if depth is not None:
        np.save(folder / f"{stem}.npy", np.ascontiguousarray(DepthFile(depth).frames([0]), dtype=np.float32))
    if is_photo_name(name):  # a photo is a one-frame clip already
        shutil.copyfile(video, folder / name)
        return folder / name
    from stereo_lit.io.video_reader import read_frames

    frame = read_frames(video, 0, 1)[0]  # as displayed (a phone video's rotation applied)
    clip = folder / f"{stem}.mkv"
    with av.open(str(clip), mode="w") as out:
        stream = out.add_stream("ffv1", rate=1)
        stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "bgr0"
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="bgr0")):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return clip


def first_frame(path: str | Path):
    """The first frame of a video (or a photo) as ``[H, W, 3]`` uint8."""
    from stereo_lit.io.video_reader import read_frames

    return read_frames(path, 0, 1)[0]  # as displayed: EXIF orientation / display rotation applied
