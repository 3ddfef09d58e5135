"""Portable Float Map (PFM) files, the format of Middlebury / SceneFlow disparity maps.

Layout: a text header ``PF`` (3 channels) or ``Pf`` (1 channel), then ``WIDTH HEIGHT``, then a
scale whose sign gives the byte order (negative = little-endian), each on its own line;
then float32 rows stored **bottom to top**. :func:`read_pfm` returns rows top to bottom;
:func:`write_pfm` is its exact inverse (``inf`` marks unknown disparity in Middlebury).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def decode_pfm(data: bytes, name: str = "PFM data") -> np.ndarray:
    """float32 ``[H, W]`` (``Pf``) or ``[H, W, 3]`` (``PF``), rows top to bottom."""
    fields: list[bytes] = []
    pos = 0
    while len(fields) < 4:  # header tokens: kind, width, height, scale
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if pos < len(data) and data[pos : pos + 1] == b"#":
            pos = data.find(b"\n", pos) + 1 or len(data)
            continue
        end = pos
        while end < len(data) and not data[end : end + 1].isspace():
            end += 1
        if end == pos:
            raise ValueError(f"{name}: truncated PFM header")
        fields.append(data[pos:end])
        pos = end
    pos += 1  # the single whitespace character after the scale
    kind, width, height, scale = fields
    if kind not in (b"PF", b"Pf"):
        raise ValueError(f"{name}: not a PFM file (header {kind[:8]!r}, expected 'PF' or 'Pf')")
    try:
        w, h, s = int(width), int(height), float(scale)
    except ValueError as exc:
        raise ValueError(f"{name}: bad PFM header {b' '.join(fields)!r}") from exc
    if w <= 0 or h <= 0 or s == 0:
        raise ValueError(f"{name}: bad PFM size/scale {w}x{h}, scale {s}")
    channels = 3 if kind == b"PF" else 1
    count = w * h * channels
    raw = data[pos : pos + 4 * count]
    if len(raw) != 4 * count:
        raise ValueError(f"{name}: PFM data truncated ({len(raw)} of {4 * count} bytes for {w}x{h}x{channels})")
    array = np.frombuffer(raw, dtype="<f4" if s < 0 else ">f4").reshape(h, w, channels)[::-1]
    array = array.astype(np.float32)
    return array[..., 0] if channels == 1 else array


def encode_pfm(array: np.ndarray) -> bytes:
    """The PFM bytes of float ``[H, W]`` or ``[H, W, 3]`` (little-endian)."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        kind = b"Pf"
    elif array.ndim == 3 and array.shape[2] == 3:
        kind = b"PF"
    else:
        raise ValueError(f"PFM holds [H, W] or [H, W, 3] floats, got shape {array.shape}")
    h, w = array.shape[:2]
    header = kind + b"\n" + f"{w} {h}\n".encode() + b"-1.0\n"
    return header + np.ascontiguousarray(array[::-1], dtype="<f4").tobytes()


def read_pfm(path: str | Path) -> np.ndarray:
    """Read a PFM file (see :func:`decode_pfm`); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: PFM file does not exist")
    return decode_pfm(path.read_bytes(), str(path))


def write_pfm(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as a PFM file (see :func:`encode_pfm`)."""
    path = Path(path)
    path.write_bytes(encode_pfm(array))
    return path
