"""Predict without Lightning: the model's predict half (:mod:`.steps`), the prediction writer's
logic (:mod:`.writer`), per-video timing (:mod:`.timing`) and the direct run of a predict
config (:mod:`.direct`, what ``stereo-lit convert --method fast`` runs). Importing this package
imports nothing; its modules import torch but never Lightning or torchmetrics."""
