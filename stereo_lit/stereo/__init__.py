"""Stereo geometry and disparity math: pure functions on tensors, no models, no Lightning, no diffusers.

- :mod:`~stereo_lit.stereo.geometry`: depth <-> disparity, forward splat (z-buffered), backward warp, masks.
- :mod:`~stereo_lit.stereo.disparity`: the disparity policy (strength, convergence, per-shot ranges).
- :mod:`~stereo_lit.stereo.edges`: depth-edge cleaning (dilation, smoothing).
- :mod:`~stereo_lit.stereo.projection`: VR180 equirectangular <-> pinhole.
- :mod:`~stereo_lit.stereo.padding`, :mod:`~stereo_lit.stereo.windows`: Wan sizes and temporal windows.
- :mod:`~stereo_lit.stereo.shots`: shot cuts and per-shot ranges.
- :mod:`~stereo_lit.stereo.warp_references`: reference splats the warp is measured against.
"""
