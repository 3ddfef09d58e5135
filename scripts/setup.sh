#!/usr/bin/env bash
# Create .venv (if missing) and install stereo-lit with its dependencies. Idempotent:
# a second run finds everything installed and returns quickly.
#
# Dependencies are installed at the tested versions in constraints.txt (reproducible: a fresh
# machine next month gets the same diffusers/transformers as the tests ran with). Set
# STEREO_LIT_CONSTRAINTS=other.txt to use another file, or STEREO_LIT_CONSTRAINTS= (empty) to
# resolve the newest versions within pyproject.toml's ranges. Update the file with
# scripts/update_constraints.sh (see README "Reproducible installs").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CONSTRAINTS=${STEREO_LIT_CONSTRAINTS-constraints.txt}
if [ -n "$CONSTRAINTS" ] && [ ! -f "$CONSTRAINTS" ]; then
  echo "setup.sh: constraints file $CONSTRAINTS not found (STEREO_LIT_CONSTRAINTS); set it empty for unpinned installs" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# The torch pin takes the CPU build that lies on this machine's disk; on a GPU machine,
# install the CUDA torch of your choice first: any 2.x >= 2.4 satisfies the package, and a
# torch already installed at another version is kept (its pin is left out of the constraints).
TORCH_PIN=$( { [ -n "$CONSTRAINTS" ] && grep -E '^torch==' "$CONSTRAINTS" || true; } | head -n1)
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "$TORCH_PIN"
fi
stamp=.venv/.stereo-lit-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || { [ -n "$CONSTRAINTS" ] && [ "$CONSTRAINTS" -nt "$stamp" ]; }; then
  args=()
  if [ -n "$CONSTRAINTS" ]; then
    used=.venv/.stereo-lit-constraints.txt
    installed_torch=$(.venv/bin/python -c "import torch; print(torch.__version__.split('+')[0])")
    if [ "torch==$installed_torch" = "$TORCH_PIN" ]; then
      cp "$CONSTRAINTS" "$used"
    else
      echo "setup.sh: keeping the installed torch $installed_torch (constraints pin $TORCH_PIN)" >&2
      grep -v -E '^torch==' "$CONSTRAINTS" > "$used"
    fi
    args=(-c "$used")
  fi
  .venv/bin/python -m pip install -q "${args[@]}" -e ".[dev,ui]"
  touch "$stamp"
fi
