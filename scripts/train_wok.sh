#!/usr/bin/env bash
# CAL on OWDFA-40, protocols P1, P2, P3, unknown number of novel classes (the post-hoc estimate of K;
# the paper's Dynamic Prototype Pruning with cal_novel_prototypes=paper).
#   DATASET_ROOT=/data/OWDFA40-Benchmark/data SEED=2025 bash scripts/train_wok.sh [key=value ...]
#   SEEDS="2025 2026 2027" bash scripts/train_wok.sh       # the paper's grid: 3 seeds x 3 protocols
#   NPROC=4 bash scripts/train_wok.sh                      # 4 GPUs on this machine (torchrun)
#   PROTOCOLS="1" bash scripts/train_wok.sh epochs=5       # one protocol, extra overrides
#   bash scripts/train_wok.sh cal_novel_prototypes=paper           # the paper's DPP, to reproduce its Table 2
# Several machines: TORCHRUN_ARGS="--nnodes 2 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint HOST:29500"
# Then: python scripts/aggregate.py exp/owdfa40_p?_wok/*/ --out results.md --latex results.tex
set -euo pipefail
source "$(dirname "$0")/_launch.sh"
run_grid "_wok" "$@"
