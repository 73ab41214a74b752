#!/usr/bin/env bash
# Issue 15 before/after on one GPU (about 5 minutes on an H200; every case in its own process
# with a timeout, the cases still waiting after GPU_BENCH_BUDGET_S=360 s are skipped):
#   bash scripts/bench/gpu_step_benchmark.sh [BEFORE_TREE] [--cases fused_gate]   # default .before (a checkout of 5133af9)
# Results: stdout, and $OUT/gpu_step_results.{md,jsonl} when OUT is set.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
nvidia-smi -L 2>/dev/null
exec "$PY" scripts/bench/gpu_step_benchmark.py --before "${1:-${BEFORE:-.before}}" ${OUT:+--out "$OUT"} "${@:2}"
