#!/usr/bin/env bash
# Create .venv (if missing) and install stereo-lit with its dependencies. Idempotent:
# a second run finds everything installed and returns quickly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# The torch pin takes the CPU build that lies on this machine's disk; on a GPU machine,
# install the CUDA torch of your choice first: any 2.x >= 2.4 satisfies the package.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q torch==2.13.0
fi
stamp=.venv/.stereo-lit-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
