#!/usr/bin/env bash
# Install everything (idempotent), render a synthetic TartanAir-layout stereo sequence if
# missing, convert its left view to stereo (predict) and evaluate every method (test).
# Uses Wan2.1 + Video-Depth-Anything when their checkpoints are in checkpoints/
# (see checkpoints/README.md), otherwise the model-free geometric baseline; it says which.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
PY=.venv/bin/python
DATA=demo_data/synthetic
OUT=outputs/demo
if [ ! -f "$DATA/pose_left.txt" ]; then
  $PY data_prep/make_synthetic.py --out "$DATA" --frames 33 --height 240 --width 320 --seed 0
fi
CONFIG=stereo_lit/configs/demo.yaml
EXTRA=()
if [ -f checkpoints/Wan2.1-T2V-1.3B-Diffusers/model_index.json ]; then
  CONFIG=stereo_lit/configs/demo_wan.yaml
  EXTRA+=(--model.wan_checkpoint checkpoints/Wan2.1-T2V-1.3B-Diffusers)  # the config names the hub id
  echo "demo: Wan2.1 checkpoint found in checkpoints/: the training-free Wan sampler fills the disocclusions"
else
  echo "demo: no Wan2.1 checkpoint in checkpoints/ (see checkpoints/README.md): using the geometric baseline (warp + fill from other frames, then background fill)"
fi
if [ -f checkpoints/video_depth_anything_vits.pth ]; then
  EXTRA+=(--model.depth stereo_lit.depth.VDAEstimator --model.depth.checkpoint checkpoints/video_depth_anything_vits.pth)
  echo "demo: Video-Depth-Anything checkpoint found: depth from VDA (aligned to the true disparity for the table)"
else
  echo "demo: no Video-Depth-Anything checkpoint: depth is the sequence's ground truth"
fi
.venv/bin/stereo-lit predict -c "$CONFIG" --model.output.dir "$OUT" --data.init_args.root "$DATA" "${EXTRA[@]}"
.venv/bin/stereo-lit test -c "$CONFIG" --model.output.dir "$OUT" --data.init_args.root "$DATA" "${EXTRA[@]}"
echo
echo "demo outputs:"
find "$OUT" -type f \( -name '*.mp4' -o -name '*.md' -o -name '*.csv' -o -name '*.json' -o -name '*.html' \) | sort | sed 's/^/  /'
