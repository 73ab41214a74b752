#!/usr/bin/env bash
# CAL vs CPL vs SimGCD on the mini dataset, P1, the demo schedule, on one shared split,
# then the comparison table (scripts/compare.py); the demo's config, as scripts/demo.sh picks it.
# 9 runs of 6-7 minutes each on 2 CPU cores (58 minutes in all).
#   bash scripts/compare_mini.sh [key=value ...]        e.g. device=cuda
#   SEEDS="2025" METHODS="cal cpl" bash scripts/compare_mini.sh
#   DEMO_CONFIG=configs/demo.py bash scripts/compare_mini.sh   ResNet-18 from scratch
set -euo pipefail
source "$(dirname "$0")/_env.sh"
DATA="${DEMO_DATA:-data/mini}"
CONFIG="${DEMO_CONFIG:-configs/demo_lite0.py}"
OUT="${COMPARE_DIR:-exp/compare_mini}"
SEEDS="${SEEDS:-2025 2026 2027}"
METHODS="${METHODS:-cal cpl simgcd}"
if [ ! -d "$DATA" ]; then
    "$PYTHON" -m dataset.synthetic --out "$DATA"
fi
SPLIT=""
for seed in $SEEDS; do
    for method in $METHODS; do
        RUN="$OUT/${method}_seed${seed}"
        if [ -f "$RUN/summary.json" ]; then
            echo "$RUN is finished: kept"
        else
            # the first run draws the split; every other run trains on exactly that split
            "$PYTHON" train.py "$CONFIG" dataset_root="$DATA" run_dir="$RUN" method="$method" seed="$seed" \
                ${SPLIT:+split_file="$SPLIT"} "$@"
        fi
        SPLIT="${SPLIT:-$RUN/split.json}"
    done
done
"$PYTHON" scripts/compare.py "$OUT"/*/ --out "$OUT/compare.md"
echo "table: $OUT/compare.md"
