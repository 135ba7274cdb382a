#!/usr/bin/env bash
# One-command set-up: installs autodistil and its dependencies into the active Python (3.11+) environment.
# torch is pinned to the 2.13.0 build (the CPU wheel on CPU-only machines). GPU users who already installed
# their own CUDA build of torch run:  TORCH_SPEC=skip bash setup.sh
set -euo pipefail
cd "$(dirname "$0")"

TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ "$TORCH_SPEC" != skip ]; then
  python -m pip install "$TORCH_SPEC"
fi
python -m pip install -e ".[dev]"
