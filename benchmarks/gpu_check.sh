#!/usr/bin/env bash
# GPU check of the speed goals (docs/benchmarks.md), for a session lent a GPU machine; about
# 5-8 minutes on one H100 / H200. From the repository root:
#
#   bash benchmarks/gpu_check.sh              (the device tool: run(command="bash
#                                              benchmarks/gpu_check.sh", timeout_s=560))
#
# Uses .venv/bin/python where it exists, else python3 with PYTHONPATH=src (the GPU image's own
# PyTorch). Two files go to $OUT (set by the device tool; it returns at most 8) or runs/gpu_check:
# gpu_check.log (every run's full output) and results.jsonl (the JSON line of every benchmark).
# Runs are skipped once BUDGET seconds (default 450) are spent.
set -u
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DEST=${OUT:-runs/gpu_check}
BUDGET=${BUDGET:-450}
POOL=${POOL:-80000000}
mkdir -p "$DEST"

LOG="$DEST/gpu_check.log"
TMP=$(mktemp)
: >"$LOG"

run() {  # run NAME TIMEOUT CMD...: output appended to $LOG; skipped once the budget is spent
  local name=$1 limit=$2 rc
  shift 2
  if [ "$SECONDS" -ge "$BUDGET" ]; then
    echo "== $name: skipped ($SECONDS s spent of $BUDGET)" | tee -a "$LOG"
    return
  fi
  echo "== $name ($SECONDS s): $*" | tee -a "$LOG"
  timeout "$limit" "$@" >"$TMP" 2>&1
  rc=$?
  cat "$TMP" >>"$LOG"
  echo "   exit $rc after $SECONDS s" | tee -a "$LOG"
  grep -v '^{' "$TMP" | grep -v Warning | tail -n 12
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'
} 2>&1 | tee -a "$LOG"

# Correctness on the GPU: same draws as on the CPU; fused / compiled weight step == CPU.
run tests 150 $PY -m pytest -q -p no:cacheprovider -m "slow or not slow" \
  tests/resampling/test_sampler_blocks.py tests/resampling/test_fast_update.py

# Sampler and weight step at 80M: refresh, draw, bytes per item, eager / compiled / plain step.
run sampler 150 $PY benchmarks/sampler.py --pool-size "$POOL" --device cuda --compile

# Training steps: fp32, then bf16 + channels_last (+ torch.compile of the model).
for m in wrn40_2 wrn40_4; do
  run "step_${m}_fp32" 90 $PY benchmarks/step.py --model "$m" --device cuda --pool-size "$POOL"
  run "step_${m}_bf16_cl" 90 $PY benchmarks/step.py --model "$m" --device cuda \
    --pool-size "$POOL" --amp --channels-last --compile-weights
  run "step_${m}_bf16_cl_compile" 180 $PY benchmarks/step.py --model "$m" --device cuda \
    --pool-size "$POOL" --amp --channels-last --compile --compile-weights
done

run eval 60 $PY benchmarks/eval.py --device cuda --amp --channels-last

grep '^{' "$LOG" >"$DEST/results.jsonl"
rm -f "$TMP"
echo "done in $SECONDS s; $(wc -l <"$DEST/results.jsonl") results in $DEST/results.jsonl"
