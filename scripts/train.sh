#!/usr/bin/env bash
# CAL on OWDFA-40, protocols P1, P2, P3, known number of novel classes.
#   DATASET_ROOT=/data/OWDFA40-Benchmark/data SEED=2025 bash scripts/train.sh [key=value ...]
#   NPROC=4 bash scripts/train.sh                      # 4 GPUs on this machine (torchrun)
#   PROTOCOLS="1" bash scripts/train.sh epochs=5       # one protocol, extra overrides
# Several machines: TORCHRUN_ARGS="--nnodes 2 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint HOST:29500"
set -euo pipefail
source "$(dirname "$0")/_launch.sh"
for P in ${PROTOCOLS:-1 2 3}; do
    launch "configs/owdfa40_p${P}.py" "$@"
done
