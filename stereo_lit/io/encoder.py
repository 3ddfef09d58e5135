"""Encoder settings of the video outputs (``model.output.encoder``): which codec, pixel format
and codec options a :class:`EncoderOptions` gives on this machine.

H.264 (libx264) or H.265 (libx265), CRF, preset, 8-bit (``yuv420p``) or 10-bit
(``yuv420p10le``); ``hardware: true`` uses NVENC (``h264_nvenc`` / ``hevc_nvenc``) when it
opens on this machine and falls back to the software encoder with a warning. The software
encoders' rate-control lookahead, most of their memory, is bounded (:func:`lookahead_frames`), and
x264 is kept off its AVX-512 code, whose files are not reproducible (:func:`x264_cpu_cap`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import av

log = logging.getLogger(__name__)

_SOFTWARE = {"h264": "libx264", "h265": "libx265"}
_HARDWARE = {"h264": "h264_nvenc", "h265": "hevc_nvenc"}
_PIX_FMT = {8: "yuv420p", 10: "yuv420p10le"}
_NVENC_PIX_FMT = {8: "yuv420p", 10: "p010le"}
_NVENC_PRESET = {  # x264 preset names -> NVENC p1 (fastest) .. p7 (best)
    "ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p3", "medium": "p4",
    "slow": "p5", "slower": "p6", "veryslow": "p7", "placebo": "p7",
}


@dataclass
class EncoderOptions:
    """Video encoder settings (``model.output.encoder`` in YAML); the defaults: H.264, CRF 18,
    preset ``medium``, 8-bit 4:2:0, software, a 20-frame rate-control lookahead (bounded memory).

    Args:
        codec: ``h264`` or ``h265``.
        crf: constant rate factor (lower = better; 18 is visually lossless for H.264; for
            NVENC it is the constant-quality ``cq`` value).
        bit_depth: 8 (``yuv420p``) or 10 (``yuv420p10le``; NVENC: ``p010le``).
        preset: x264/x265 preset name (``ultrafast`` .. ``veryslow``); NVENC gets p1..p7.
        hardware: use NVENC when it opens here, else fall back to software with a warning.
        lookahead: most frames the software encoder looks ahead for rate control
            (``rc-lookahead``); None: the preset's own (``medium``: 40). The lookahead is most of
            an encoder's memory (about 4.6 bytes per pixel per frame of lookahead, x264): a
            3840x1080 SBS encoder peaks at 1040 MB with 40, 754 MB with 20, 569 MB with 10. So
            frames larger than 1080p SBS get fewer, :data:`LOOKAHEAD_PIXELS` pixels of lookahead
            in all but never fewer than :data:`MIN_AUTO_LOOKAHEAD` frames (4K: 10; 4K SBS: 10).
            On the DAVIS sample at CRF 18, 20 instead of 40 gave a 1.2% smaller file at 0.03 dB
            lower PSNR, 10 a 5% smaller file at 0.17 dB lower (measured; docs/memory.md).
    """

    codec: str = "h264"
    crf: int = 18
    bit_depth: int = 8
    preset: str = "medium"
    hardware: bool = False
    lookahead: int | None = 20

    def __post_init__(self) -> None:
        if self.codec not in _SOFTWARE:
            raise ValueError(f"model.output.encoder.codec must be one of {sorted(_SOFTWARE)}, got {self.codec!r}")
        if int(self.bit_depth) not in _PIX_FMT:
            raise ValueError(f"model.output.encoder.bit_depth must be 8 or 10, got {self.bit_depth!r}")
        if not 0 <= int(self.crf) <= 51:
            raise ValueError(f"model.output.encoder.crf must be in [0, 51], got {self.crf!r}")
        if self.preset not in _NVENC_PRESET:
            raise ValueError(f"model.output.encoder.preset must be one of {list(_NVENC_PRESET)}, got {self.preset!r}")
        if self.lookahead is not None and not 0 <= int(self.lookahead) <= 250:
            raise ValueError(f"model.output.encoder.lookahead must be null or 0-250 frames, got {self.lookahead!r}")
        self.bit_depth, self.crf = int(self.bit_depth), int(self.crf)
        self.lookahead = None if self.lookahead is None else int(self.lookahead)

    def settings(self) -> dict:
        """Plain dict for the output manifest."""
        return asdict(self)


def as_encoder_options(value: "EncoderOptions | dict | None") -> EncoderOptions:
    """``EncoderOptions`` from itself, a dict of its fields (YAML) or None (defaults)."""
    if isinstance(value, EncoderOptions):
        return value
    if value is not None and not isinstance(value, dict):
        fields = list(EncoderOptions.__dataclass_fields__)
        raise ValueError(f"model.output.encoder must be a mapping of {fields}, got {value!r}")
    return EncoderOptions(**(value or {}))


@functools.lru_cache(maxsize=None)
def hardware_encoder_error(name: str, pix_fmt: str) -> str | None:
    """None when encoder ``name`` opens here with ``pix_fmt`` (a 256x256 probe), else why not.

    ``av.codecs_available`` lists NVENC whenever FFmpeg was built with it; only opening
    it tells whether a GPU and driver are there."""
    if name not in av.codecs_available:
        return f"{name} is not in this PyAV/FFmpeg build"
    try:
        ctx = av.CodecContext.create(name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 256, 256, pix_fmt
        ctx.time_base = Fraction(1, 25)
        ctx.framerate = Fraction(25, 1)
        ctx.open()  # freed with the context
    except Exception as err:  # noqa: BLE001 - any failure means: not usable here
        return f"{name} did not open ({err})"
    return None


_warned: set[str] = set()


#: pixels of rate-control lookahead an encoder holds at most: 20 frames of 1080p SBS (3840x1080)
LOOKAHEAD_PIXELS = 20 * 3840 * 1080
#: ... but never fewer frames than this (below it, quality drops faster: 10 frames cost 0.17 dB)
MIN_AUTO_LOOKAHEAD = 10


def lookahead_frames(options: EncoderOptions, height: int, width: int) -> int | None:
    """Frames of lookahead for ``height x width`` frames: ``options.lookahead``, fewer for frames
    whose lookahead would hold more than :data:`LOOKAHEAD_PIXELS` (not below
    :data:`MIN_AUTO_LOOKAHEAD`, nor above ``options.lookahead``); None keeps the preset's."""
    if options.lookahead is None:
        return None
    by_memory = max(MIN_AUTO_LOOKAHEAD, LOOKAHEAD_PIXELS // max(1, height * width))
    return min(options.lookahead, by_memory)


def resolve_encoder(
    options: EncoderOptions, height: int = 1080, width: int = 1920
) -> tuple[str, str, dict[str, str]]:
    """``(codec name, pix_fmt, codec options)`` for ``options`` and ``height x width`` frames on this machine."""
    if options.hardware:
        name, pix_fmt = _HARDWARE[options.codec], _NVENC_PIX_FMT[options.bit_depth]
        error = hardware_encoder_error(name, pix_fmt)
        if error is None:
            preset = _NVENC_PRESET[options.preset]
            return name, pix_fmt, {"rc": "vbr", "cq": str(options.crf), "b": "0", "preset": preset}
        if error not in _warned:
            _warned.add(error)
            log.warning("model.output.encoder.hardware: %s; using the software encoder %s", error, _SOFTWARE[options.codec])
    name, pix_fmt = _SOFTWARE[options.codec], _PIX_FMT[options.bit_depth]
    if name not in av.codecs_available:
        if options.codec == "h264" and options.bit_depth == 8:
            if name not in _warned:
                _warned.add(name)
                log.warning("libx264 is not in this PyAV build; writing MPEG-4 part 2 instead")
            return "mpeg4", "yuv420p", {}
        raise ValueError(f"model.output.encoder.codec={options.codec!r} needs {name}, which this PyAV/FFmpeg build lacks")
    codec_options = {"crf": str(options.crf), "preset": options.preset}
    frames = lookahead_frames(options, height, width)
    lookahead = [] if frames is None else [f"rc-lookahead={frames}"]
    if name == "libx265":
        codec_options["x265-params"] = ":".join(["log-level=error", *lookahead])
    elif name == "libx264":
        cap = x264_cpu_cap(cpu_features())
        params = [*lookahead, *([f"asm={cap}"] if cap else [])]
        if params:
            codec_options["x264-params"] = ":".join(params)
    return name, pix_fmt, codec_options


#: what x264 requires before it runs its AVX-512 code (``X264_CPU_AVX512``), as NumPy names them
X264_AVX512_FEATURES = ("AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL")


def x264_cpu_cap(features: Mapping[str, bool]) -> str | None:
    """``"AVX2"`` for a CPU with ``features`` on which x264 would run its AVX-512 code, else None
    (x264 keeps its own CPU detection).

    With its AVX-512 code, x264 (core 165, in PyAV 18.1's wheels) does not make the same bytes of
    the same frames: what it writes depends on what the process's memory held before. Six encodes
    of identical 540p frames in one process (one thread) gave five different files, and 40 runs of
    ``stereo-lit convert`` on one 540p clip wrote its anaglyph file in three versions (23, 8 and 9
    runs). Capped at AVX2 (``x264-params asm=AVX2``: the instruction sets up to AVX2, as x264 names them)
    it wrote the same bytes every time, for about 3% more CPU in x264 (docs/memory.md)."""
    if all(features.get(name) for name in (*X264_AVX512_FEATURES, "AVX2", "FMA3")):
        return "AVX2"
    return None


@functools.lru_cache(maxsize=1)
def cpu_features() -> dict[str, bool]:
    """This CPU's instruction sets as NumPy detected them at run time (empty where unavailable)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # pragma: no cover - another NumPy layout: no cap
        return {}
    return dict(__cpu_features__)
