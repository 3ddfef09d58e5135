#!/usr/bin/env bash
# Regenerate constraints.txt (the tested dependency versions that scripts/setup.sh installs)
# from the current .venv. Run it after upgrading packages in .venv AND running the tests:
#   .venv/bin/python -m pip install -U diffusers   # for example
#   bash scripts/test.sh && bash scripts/update_constraints.sh && git diff constraints.txt
# The package itself is left out; torch is pinned without its local build tag (+cpu/+cu124),
# so the CPU and the CUDA builds of the tested version both satisfy the pin.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_PIN=${TORCH_PIN:-2.13.0}
body=$(.venv/bin/python -m pip freeze --exclude-editable \
  | grep -v -i -e '^stereo[-_]lit' -e '^#' -e '^-e ' \
  | sed -E "s/^torch==.*/torch==${TORCH_PIN}/")
{
  echo "# Tested versions of every dependency (Python $(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'), torch ${TORCH_PIN}), installed by"
  echo "# scripts/setup.sh as: pip install -c constraints.txt -e \".[dev,ui]\". pyproject.toml keeps the package's"
  echo "# own version ranges; this file only pins what was tested. Regenerate: bash scripts/update_constraints.sh"
  echo "$body"
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) pinned packages"
