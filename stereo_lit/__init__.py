"""stereo-lit: monocular video to stereo video.

Submodules are imported lazily by their users; importing the package itself is cheap.
"""

__version__ = "0.1.0"
