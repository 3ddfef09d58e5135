"""Evaluation: the side-by-side suite, its Lightning steps, real-footage protocols, reference disparity,
costs and the HTML report. Import the submodule you need (``stereo_lit.evaluation.suite`` ...)."""
