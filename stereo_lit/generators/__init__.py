"""Right-view generators: left video + disparity in, right video + known-region mask out."""

from stereo_lit.generators.base import StereoGenerator, StereoOutput

__all__ = ["StereoGenerator", "StereoOutput"]
