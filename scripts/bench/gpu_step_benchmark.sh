#!/usr/bin/env bash
# GPU training-step benchmark (about 5 minutes on an H200; every case in its own process with a
# timeout, the cases still waiting after GPU_BENCH_BUDGET_S=360 s are skipped):
#   bash scripts/bench/gpu_step_benchmark.sh [REF_TREE] [--cases fused_gate]   # REF_TREE default .before
# REF_TREE: another checkout run through the same cases for comparison (skipped when absent).
# Results: stdout, and $OUT/gpu_step_results.{md,jsonl} when OUT is set.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
nvidia-smi -L 2>/dev/null
exec "$PY" scripts/bench/gpu_step_benchmark.py --before "${1:-${BEFORE:-.before}}" ${OUT:+--out "$OUT"} "${@:2}"
