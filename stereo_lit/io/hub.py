"""Weights by Hugging Face hub id: one registry of the models stereo-lit uses, one resolver.

Every checkpoint option (``model.depth.init_args.checkpoint``, ``model.wan_checkpoint``,
``model.vace_checkpoint``, a generator's ``checkpoint``, ``lora.path``) takes

- a local file or folder (used as it is), or
- a hub repository id ``ORG/NAME`` (``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``,
  ``depth-anything/Video-Depth-Anything-Small``), ``ORG/NAME/FILE`` for one file of a known
  repository, or a short name of :data:`MODELS` (``vda-s``, ``wan-1.3b``, ...).

Hub ids resolve through huggingface_hub: from its cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``)
when there, else downloaded with huggingface_hub's own progress bar. Offline (``HF_HUB_OFFLINE=1``)
or without network a missing repository is a :class:`HubUnavailableError` of a few lines naming the
repository and ``stereo-lit download NAME``. Nothing here imports torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stereo_lit.errors import UserError

WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt", ".npy", ".npz")


@dataclass(frozen=True)
class HubModel:
    """A model stereo-lit can fetch: ``repo`` (hub id), ``file`` (one file; None = the whole snapshot)."""

    name: str
    repo: str
    file: str | None
    licence: str
    size: str
    what: str


#: short name -> model. Licences as the model cards state them (VDA-Base/Large: non-commercial).
MODELS: dict[str, HubModel] = {m.name: m for m in (
    HubModel("vda-s", "depth-anything/Video-Depth-Anything-Small", "video_depth_anything_vits.pth",
             "Apache-2.0", "~110 MB", "Video-Depth-Anything Small (relative depth; the default)"),
    HubModel("vda-b", "depth-anything/Video-Depth-Anything-Base", "video_depth_anything_vitb.pth",
             "CC-BY-NC-4.0", "~390 MB", "Video-Depth-Anything Base (non-commercial)"),
    HubModel("vda-l", "depth-anything/Video-Depth-Anything-Large", "video_depth_anything_vitl.pth",
             "CC-BY-NC-4.0", "~1.4 GB", "Video-Depth-Anything Large (non-commercial)"),
    HubModel("vda-metric-s", "depth-anything/Metric-Video-Depth-Anything-Small", "metric_video_depth_anything_vits.pth",
             "Apache-2.0", "~110 MB", "Metric Video-Depth-Anything Small (metres)"),
    HubModel("vda-metric-b", "depth-anything/Metric-Video-Depth-Anything-Base", "metric_video_depth_anything_vitb.pth",
             "CC-BY-NC-4.0", "~390 MB", "Metric Video-Depth-Anything Base (metres; non-commercial)"),
    HubModel("vda-metric-l", "depth-anything/Metric-Video-Depth-Anything-Large", "metric_video_depth_anything_vitl.pth",
             "CC-BY-NC-4.0", "~1.4 GB", "Metric Video-Depth-Anything Large (metres; non-commercial)"),
    HubModel("wan-1.3b", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", None,
             "Apache-2.0", "~30 GB (mostly the UMT5-XXL text encoder)", "Wan2.1 T2V 1.3B (the diffusion fill)"),
    HubModel("wan-vace-1.3b", "Wan-AI/Wan2.1-VACE-1.3B-diffusers", None,
             "Apache-2.0", "~30 GB", "Wan2.1 VACE 1.3B (the VACE fill)"),
    HubModel("wan-14b", "Wan-AI/Wan2.1-T2V-14B-Diffusers", None,
             "Apache-2.0", "~80 GB", "Wan2.1 T2V 14B (with the few-step LoRA: predict_few_step)"),
    HubModel("lightx2v", "lightx2v/Wan2.1-T2V-14B-StepDistill-CfgDistill-Lightx2v",
             "loras/Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank64.safetensors",
             "Apache-2.0", "~630 MB", "few-step (4 steps, no CFG) distillation LoRA for Wan2.1-T2V-14B"),
)}
_BY_REPO = {m.repo.lower(): m for m in MODELS.values()}


class HubUnavailableError(UserError, FileNotFoundError):
    """A hub id that is neither in the local cache nor downloadable now (offline, no network)."""


def hub_cache_dir() -> Path:
    """huggingface_hub's cache, read from the environment now (``HF_HUB_CACHE``, ``HF_HOME/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` set truthy (read now), or huggingface_hub's own constant."""
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def looks_local(value: str) -> bool:
    """Whether ``value`` must be a local path: it exists, starts like a path, ends like a weights
    file, or its first folder exists here. Everything else of 2+ segments is tried as a hub id."""
    path = Path(value).expanduser()
    if path.exists() or value.startswith((".", "/", "~", "\\")) or Path(value).is_absolute() or ":" in value[:3]:
        return True
    parts = value.replace("\\", "/").split("/")
    if len(parts) < 2 or not all(parts):
        return True
    if len(parts) == 2 and value.lower().endswith(WEIGHT_SUFFIXES):
        return True
    if len(parts) > 2 and "/".join(parts[:2]).lower() not in _BY_REPO:
        return True  # ORG/NAME/FILE only for the registry's repositories
    return Path(parts[0]).is_dir()


def parse_id(value: str) -> tuple[str, str | None, HubModel | None] | None:
    """``(repo, file or None, registry entry or None)`` of a hub id or short name; None for a local path."""
    key = str(value).strip()
    if key.lower() in MODELS:
        model = MODELS[key.lower()]
        return model.repo, model.file, model
    if looks_local(key):
        return None
    parts = key.replace("\\", "/").split("/")
    repo = "/".join(parts[:2])
    model = _BY_REPO.get(repo.lower())
    file = "/".join(parts[2:]) or (model.file if model else None)
    return (model.repo if model else repo), file, model


def expected_name(value: str | Path) -> str:
    """The file name ``value`` will resolve to, without touching disk or network (for name parsing)."""
    parsed = parse_id(str(value))
    if parsed is None or parsed[1] is None:
        return Path(str(value)).name
    return Path(parsed[1]).name


def download_command(repo: str, model: HubModel | None) -> str:
    return f"stereo-lit download {model.name}" if model else f"stereo-lit download {repo}"


def resolve(value: str | Path, option: str = "checkpoint", download: bool = True) -> Path:
    """A local path for ``value``: the path itself, or the hub id's cached (or downloaded) file/folder.

    Args:
        value: local path, ``ORG/NAME``, ``ORG/NAME/FILE`` or a short name of :data:`MODELS`.
        option: the config key, for messages.
        download: False: the cache only (raise :class:`HubUnavailableError` when missing).

    Raises:
        FileNotFoundError: a local path that does not exist (the absolute path tried is named).
        HubUnavailableError: a hub id not cached and not downloadable now (<= 8 lines).
    """
    text = str(value)
    parsed = parse_id(text)
    if parsed is None:
        path = Path(text).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"{option}: {text} does not exist (tried {path.resolve()}); give a local file/folder, "
                f"a Hugging Face repository id (ORG/NAME) or one of: {', '.join(MODELS)}"
            )
        return path
    repo, file, model = parsed
    return fetch(repo, file, model, option=option, download=download)


def fetch(repo: str, file: str | None, model: HubModel | None = None, option: str = "checkpoint", download: bool = True) -> Path:
    """The cached (or now downloaded) ``file`` of ``repo``, or its whole snapshot folder when ``file`` is None."""
    from huggingface_hub import hf_hub_download, snapshot_download

    local_only = is_offline() or not download
    cache = str(hub_cache_dir())
    try:
        if file is None:
            return Path(snapshot_download(repo, cache_dir=cache, local_files_only=local_only))
        return Path(hf_hub_download(repo, file, cache_dir=cache, local_files_only=local_only))
    except Exception as exc:  # LocalEntryNotFoundError, connection errors, a missing repo or file
        raise unavailable(repo, file, model, option, local_only, exc) from exc


def unavailable(repo: str, file: str | None, model: HubModel | None, option: str, local_only: bool, exc: Exception) -> HubUnavailableError:
    """The short answer for a repository that cannot be had now."""
    what = f"{repo} ({file})" if file else repo
    first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    why = "HF_HUB_OFFLINE is set" if is_offline() else ("only the cache was asked" if local_only else f"download failed: {first}")
    lines = [
        f"{option}: {what} is not in the Hugging Face cache ({hub_cache_dir()}) and {why}.",
        f"  fetch it once with network: {download_command(repo, model)}",
        "  or give a local file/folder instead of the hub id.",
    ]
    if model is not None:
        lines.insert(1, f"  {model.what}; licence {model.licence}; size {model.size}")
    return HubUnavailableError("\n".join(lines))


def is_cached(value: str | Path) -> bool:
    """Whether ``value`` is a local path that exists or a hub id already in the cache (no network)."""
    try:
        resolve(value, download=False)
    except FileNotFoundError:
        return False
    return True
