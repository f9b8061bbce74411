#!/usr/bin/env bash
# Tokens/s and MFU of codeparrot-small in bf16 on one GPU (an H200 in the plan), all within ~5 minutes.
# Offline: builds its own data from the local Python installation; installs nothing unless packages are
# missing, and then only from wheels carried along in $WHEELS (default .whl/, see below).
#   bash benchmarks/gpu_mfu.sh [OUT_DIR]          results: OUT_DIR/results.jsonl, lines "RESULT {...}"
# Runs: eager with micro batch 24 (8 accumulation steps of 24 x 1024 tokens = 192 x 1024 per step), then
# the same with torch.compile. Each run is bounded by a timeout so the whole script stays under 5 minutes.
# To carry wheels: pip download --only-binary=:all: -d .whl transformers accelerate tokenizers zstandard xxhash \
#     safetensors pyyaml tqdm huggingface_hub   (torch with CUDA is expected to be installed on the GPU host)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${1:-${OUT:-benchmarks/out}/gpu_mfu}
WHEELS=${WHEELS:-.whl}
mkdir -p "$OUT_DIR"

if ! $PY -c "import torch, transformers, accelerate, tokenizers, zstandard, xxhash, yaml, tqdm" 2>/dev/null; then
  if [ -d "$WHEELS" ]; then
    $PY -m pip install --no-index --find-links "$WHEELS" transformers accelerate tokenizers zstandard xxhash pyyaml tqdm \
      || { echo "error: installing the carried wheels from $WHEELS failed" >&2; exit 1; }
  else
    echo "error: python packages missing and no wheels in $WHEELS; see the header of $0" >&2; exit 1
  fi
fi
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(), torch.__version__)" \
  || exit 1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>/dev/null || true

LAUNCH="$PY -m accelerate.commands.launch --config_file configs/accelerate/gpu-1.yaml"
START=$SECONDS
# 1. data (~1 min) + eager run
timeout 170 $LAUNCH benchmarks/gpu_mfu.py --out "$OUT_DIR" --steps 40 --micro 24 2>&1 | grep -v "Warning" | tail -n 20
# 2. torch.compile, with what is left of the 5 minutes
LEFT=$(( 290 - (SECONDS - START) ))
if [ "$LEFT" -gt 60 ]; then
  timeout "$LEFT" $LAUNCH benchmarks/gpu_mfu.py --out "$OUT_DIR" --steps 40 --micro 24 --compile 2>&1 | grep -v "Warning" | tail -n 20
fi
echo "--- results ($OUT_DIR/results.jsonl), $(( SECONDS - START )) s"
cat "$OUT_DIR/results.jsonl" 2>/dev/null || echo "no results"
