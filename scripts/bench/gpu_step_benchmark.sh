#!/usr/bin/env bash
# GPU training-step benchmark of this tree's settings (every case in its own process with a
# timeout; the cases still waiting after GPU_BENCH_BUDGET_S seconds, default 360, are skipped):
#   bash scripts/bench/gpu_step_benchmark.sh [--cases fused_gate] [--method cal|cpl|simgcd]
# Results: stdout, and $OUT/gpu_step_results.{md,jsonl} when OUT is set.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
nvidia-smi -L 2>/dev/null
exec "$PY" scripts/bench/gpu_step_benchmark.py ${OUT:+--out "$OUT"} "$@"
