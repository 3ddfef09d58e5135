"""``stereo-lit ui``: the Gradio page (:mod:`~stereo_lit.ui.app`), its job runner (:mod:`~stereo_lit.ui.jobs`)
and the progress file predict writes for it (:mod:`~stereo_lit.ui.progress`). Gradio is imported by ``app`` only."""
