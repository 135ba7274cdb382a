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

# Raw data (GLUE TSVs and the corpus sample) from the default DVC remote. A local remote folder that does not
# exist is skipped with a message (point the remote at your own storage, or use the hub: see README "Data").
# DVC_PULL=skip skips this step.
if [ "${DVC_PULL:-}" != skip ]; then
  remote=$(dvc config core.remote 2>/dev/null || true)
  url=$(dvc config "remote.${remote:-storage}.url" 2>/dev/null || true)
  if [ -z "$remote" ] || [ -z "$url" ]; then
    echo "setup.sh: no default DVC remote configured; skipping 'dvc pull' of data/raw (see README, Data)" >&2
  elif [[ "$url" != *://* ]] && [ ! -d "$url" ]; then
    echo "setup.sh: DVC remote '$remote' is $url, which does not exist; skipping 'dvc pull' of data/raw." >&2
    echo "  Point it at your copy:  dvc remote modify --local $remote url /path/to/dvc-store  (see README, Data)" >&2
  else
    dvc pull data/raw/glue.dvc data/raw/corpus.dvc
  fi
fi
