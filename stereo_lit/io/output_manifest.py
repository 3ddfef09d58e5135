"""What makes a video's outputs *finished*: a manifest written last, and a per-folder lock.

Layout of one video's output folder (``output_dir/<name>/``)::

    right.mp4 sbs.mp4 ...      the layouts (each renamed from a hidden temporary name;
                               player names such as clip_LRF_Full_SBS.mp4 with naming=player)
    stereo-lit.json            the manifest (:data:`MANIFEST_NAME`), written last, atomically
    .stereo-lit.lock           present while a run writes the folder (:class:`OutputLock`)

The manifest records the source's fingerprint (size, mtime, SHA-256 of its first MiB),
the depth file's fingerprint, the frame count, each layout's file size, and the settings
that change the pixels (:func:`manifest_mismatch` compares all of them on resume), and
``cost``: what generating the video cost (frames, seconds, NFE, VAE passes, peak memory and
their per-81-frame rates, :meth:`stereo_lit.evaluation.predict_cost.CostTotals.record`; never compared).
``output_dir`` itself gets a marker file (:data:`ROOT_MARKER`) so a reader scanning a
folder that contains it leaves it out.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

MANIFEST_NAME = "stereo-lit.json"
LOCK_NAME = ".stereo-lit.lock"
ROOT_MARKER = ".stereo-lit-outputs"
FORMAT = "stereo-lit-outputs/1"
_HEAD_BYTES = 1 << 20


def jsonable(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples -> lists, paths -> str), for comparisons."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def source_fingerprint(path: str | Path | None) -> dict[str, Any] | None:
    """Size, mtime (ns) and SHA-256 of the first MiB of a file; for a folder (an image
    sequence) file count, total size and newest mtime; ``{"id": path}`` when it is not on disk."""
    if path is None:
        return None
    p = Path(path)
    if p.is_file():
        stat = p.stat()
        with p.open("rb") as handle:
            head = hashlib.sha256(handle.read(_HEAD_BYTES)).hexdigest()
        return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head_sha256": head}
    if p.is_dir():
        stats = [f.stat() for f in p.rglob("*") if f.is_file()]
        return {"files": len(stats), "bytes": sum(s.st_size for s in stats), "mtime_ns": max((s.st_mtime_ns for s in stats), default=0)}
    return {"id": str(path)}


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of ``folder``, None when absent or unreadable (then: not finished)."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def write_manifest(folder: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` (plus the format tag) as ``folder/stereo-lit.json`` atomically."""
    path = folder / MANIFEST_NAME
    tmp = folder / f".{MANIFEST_NAME}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp.write_text(json.dumps({"format": FORMAT, **jsonable(record)}, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, f"could not write the output manifest {path}: {exc.strerror or exc}", str(path)) from exc
    return path


def replace_output_set(folder: Path, staged: dict[str, tuple[Path, Path]]) -> None:
    """Put a complete new set of outputs in place of the earlier one, whole.

    ``staged`` maps each layout to ``(complete temporary file, final path)``. The earlier
    set stays untouched until every new file is complete (the caller stages them all first);
    then the manifest goes (the folder no longer counts as finished), the earlier set's files
    that the new set does not replace are removed (other layouts or names, listed in the
    earlier manifest), and each staged file is renamed. If a rename fails, every file of both
    sets is removed, so no mix of two settings is left under the normal names, and the error says so.
    The caller writes the new manifest afterwards (:func:`write_manifest`).
    """
    finals = {final.name for _, final in staged.values()}
    earlier = read_manifest(folder) or {}
    old_files = [folder / entry["file"] for entry in (earlier.get("layouts") or {}).values()
                 if isinstance(entry, dict) and isinstance(entry.get("file"), str) and "/" not in entry["file"]]
    (folder / MANIFEST_NAME).unlink(missing_ok=True)  # the old manifest no longer describes the files
    for path in old_files:
        if path.name not in finals:
            path.unlink(missing_ok=True)
    done: list[Path] = []
    try:
        for tmp, final in staged.values():
            os.replace(tmp, final)
            done.append(final)
    except OSError as exc:
        for tmp, final in staged.values():
            tmp.unlink(missing_ok=True)
            final.unlink(missing_ok=True)
        raise OSError(
            exc.errno, f"{folder}: renaming the new outputs failed ({exc}); the earlier and the new outputs were "
            "both removed, so no mix of two settings is left (run again to redo them)", str(folder),
        ) from exc


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [f"{prefix[:-1]}={old!r} (now {new!r})"]


def manifest_mismatch(
    folder: Path, *, source: dict | None, depth_file: dict | None, frames: int | None, layouts: list[str],
    settings: dict[str, Any], filenames: dict[str, str] | None = None,
) -> str | None:
    """Why ``folder`` does not hold finished outputs for this source and these settings
    (None: it does). Each requested layout must be listed with its size on disk, in the
    file ``filenames[layout]`` (default ``<layout>.mp4``)."""
    names = {layout: (filenames or {}).get(layout, f"{layout}.mp4") for layout in layouts}
    manifest = read_manifest(folder)
    if manifest is None:
        if any((folder / names[layout]).is_file() for layout in layouts):
            return "outputs without a manifest (unfinished, or written by an older version)"
        return "not started"
    if manifest.get("source") != jsonable(source):
        return "the source video changed since its outputs were made"
    if manifest.get("depth_file") != jsonable(depth_file):
        return "the depth file changed since the outputs were made"
    if frames is not None and manifest.get("frames") != frames:
        return f"outputs hold {manifest.get('frames')} frames, the source {frames}"
    changed = _differences(manifest.get("settings"), jsonable(settings))
    if changed:
        return "made with other settings: " + ", ".join(changed)
    files = manifest.get("layouts", {})
    for layout in layouts:
        entry, path = files.get(layout), folder / names[layout]
        if entry is None:
            return f"layout {layout!r} was not made"
        if entry.get("file", f"{layout}.mp4") != path.name:
            return f"layout {layout!r} was written as {entry.get('file', f'{layout}.mp4')}, not {path.name}"
        if not path.is_file() or path.stat().st_size != entry.get("bytes"):
            return f"{path.name} is missing or differs from the manifest"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """``folder/.stereo-lit.lock``: one run writes a folder at a time.

    The lock file holds ``{"pid", "host", "token", "since"}``, created atomically (hard
    link of a complete temporary file). A lock whose process is gone (same host, pid not
    alive, or our own pid with another token) is stale and taken over. Runs sharing a
    ``token`` (the ranks of one DDP run) share the lock.
    """

    def __init__(self, folder: Path, token: str) -> None:
        self.folder, self.token = folder, token
        self.path = folder / LOCK_NAME
        self.held = False

    def holder(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"pid": -1, "host": "?", "token": "?", "since": "?"}  # half-written by an old version: held
        return data if isinstance(data, dict) else None

    def _stale(self, info: dict[str, Any]) -> bool:
        if info.get("host") != socket.gethostname():
            return False
        pid = int(info.get("pid", -1))
        if pid == os.getpid():
            return info.get("token") != self.token
        return pid > 0 and not _pid_alive(pid)

    def acquire(self) -> bool:
        """Take the lock (or join it, same token); False when another live run holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "token": self.token, "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        tmp = self.folder / f"{LOCK_NAME}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        try:
            tmp.write_text(json.dumps(record))
        except OSError as exc:  # e.g. disk full: no empty .lock...tmp left behind, the error names the lock
            tmp.unlink(missing_ok=True)
            raise OSError(exc.errno, f"could not write the lock file {self.path}: {exc.strerror or exc}", str(self.path)) from exc
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)
                    self.held = True
                    return True
                except FileExistsError:
                    info = self.holder()
                    if info is None:
                        continue  # released meanwhile: try again
                    if info.get("token") == self.token:
                        self.held = True
                        return True
                    if not self._stale(info):
                        return False
                    if self.holder() == info:  # still the same stale holder: take it over
                        self.path.unlink(missing_ok=True)
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def describe_holder(self) -> str:
        info = self.holder() or {}
        return f"pid {info.get('pid')} on {info.get('host')}, since {info.get('since')}"

    def release(self) -> None:
        """Remove the lock file if it is still ours."""
        if self.held and (self.holder() or {}).get("token") == self.token:
            self.path.unlink(missing_ok=True)
        self.held = False


def remove_stale_partials(folder: Path) -> int:
    """Remove hidden temporary files (``.*.partial*``) in ``folder`` left by other (killed)
    processes; call it while holding the folder's lock, so no one else writes there."""
    removed = 0
    for path in folder.glob(".*.partial*"):
        if f".partial-{os.getpid()}-" in path.name:
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed
