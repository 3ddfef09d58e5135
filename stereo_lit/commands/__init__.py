"""``stereo-lit`` commands that are not a Lightning job (``preview``); each module has a ``main(argv)``."""
