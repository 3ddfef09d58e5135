"""Video-Depth-Anything inside stereo-lit: model, official checkpoints, streaming inference, estimators.

    from stereo_lit.depth import VDAEstimator
    depth = VDAEstimator("checkpoints/video_depth_anything_vits.pth").estimate(video)  # [B,1,T,H,W]

Estimators return a :class:`DepthResult` labelled ``metric_m`` (metres) or ``inverse_relative``
(larger = nearer); ``stereo_lit.stereo.disparity`` turns it into disparity.
"""

from .align import INFER_LEN, INTERP_LEN, KEYFRAMES, OVERLAP, WindowAligner
from .cache import DepthCache, file_content_hash, frames_content_hash, tensor_content_hash
from .checkpoint import CheckpointMismatchError, load_vda, parse_checkpoint_name, read_state_dict
from .estimator import DEPTH_KINDS, DepthEstimator, DepthResult, PrecomputedDepth, VDAEstimator
from .inference import infer_video_depth, stream_video_depth
from .model import VDA_CONFIGS, VDAConfig, VideoDepthAnything
from .preprocess import network_size, preprocess_frame
from .resize import STORAGE_VERSION, ResizedDepth, resize_depth
from .tiny import TINY_VDA_NAME, write_tiny_vda

__all__ = [
    "CheckpointMismatchError",
    "DEPTH_KINDS",
    "DepthCache",
    "DepthEstimator",
    "DepthResult",
    "INFER_LEN",
    "INTERP_LEN",
    "KEYFRAMES",
    "OVERLAP",
    "PrecomputedDepth",
    "ResizedDepth",
    "STORAGE_VERSION",
    "TINY_VDA_NAME",
    "VDAConfig",
    "VDAEstimator",
    "VDA_CONFIGS",
    "VideoDepthAnything",
    "WindowAligner",
    "file_content_hash",
    "frames_content_hash",
    "infer_video_depth",
    "load_vda",
    "network_size",
    "parse_checkpoint_name",
    "preprocess_frame",
    "read_state_dict",
    "resize_depth",
    "stream_video_depth",
    "tensor_content_hash",
    "write_tiny_vda",
]
