#!/usr/bin/env bash
# The GPU check: everything this project runs on CUDA, in one command that fits a short lease (about 8 minutes on
# one H200). Figures and logs go to ${OUT:-bench/gpu_check}/.
#
#   bash bench/gpu_check.sh            # from the repository root, on a machine with a GPU
#
# 1. the gpu-marked tests (bf16 autocast against fp32 in a SuperLM step, the held-out scoring of probes and search,
#    fine-tuning; an exported student on CUDA against its slice);
# 2. bench/gpu.py at BERT-base shapes (random weights, no downloads): SuperLM training tokens/s and MFU in bf16,
#    search seconds per candidate, fine-tuning examples/s;
# 3. the paper profile's dry run (configs/paper_dry_run.py: every stage of configs/paper.yaml, CUDA chosen by
#    `device: auto`), when the raw data is there (data/raw/corpus, data/raw/glue: `dvc pull`, see README).
# Each part has its own time limit (90 + 150 + 240 s: the check ends within 8 minutes plus start-up); a part that
# fails is reported and the next one still runs. Exit status: the number of failed parts.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/gpu_check}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

python - <<'EOF' || { echo "gpu_check: torch with CUDA is needed (TORCH_SPEC=skip bash setup.sh on a CUDA build)"; exit 1; }
import torch
assert torch.cuda.is_available(), "no CUDA device visible"
print("gpu_check:", torch.__version__, torch.cuda.get_device_name(0), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
EOF
if ! python -c "import autodistil" 2>/dev/null; then  # a bare machine: the package from this checkout, no downloads
  python -m pip install --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1 || export PYTHONPATH=src
fi
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv >"$OUT/nvidia_smi.csv" 2>&1

failed=0
part() {  # part NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name (limit ${limit}s)"
  if timeout "$limit" "$@" >"$OUT/$name.log" 2>&1; then
    echo "   ok in $((SECONDS - t0)) s"
  else
    echo "   FAILED (exit $?) after $((SECONDS - t0)) s; last lines of $OUT/$name.log:"
    tail -n 15 "$OUT/$name.log" | sed 's/^/   /'
    failed=$((failed + 1))
  fi
}

rm -f "$OUT/gpu.json"  # no figures of an earlier run
part pytest_gpu 90 python -m pytest -m gpu -q -p no:cacheprovider
tail -n 3 "$OUT/pytest_gpu.log"
part bench_gpu 150 python bench/gpu.py --device cuda --out "$OUT/gpu.json"
[ -f "$OUT/gpu.json" ] && cat "$OUT/gpu.json"
if [ -d data/raw/corpus ] && [ -d data/raw/glue ]; then
  part paper_dry_run 240 python configs/paper_dry_run.py
  tail -n 12 "$OUT/paper_dry_run.log"
else
  echo "== paper_dry_run skipped: data/raw/corpus and data/raw/glue are not here (dvc pull, see README Data)"
fi
echo "gpu_check: $failed part(s) failed; logs and figures in $OUT/"
exit "$failed"
