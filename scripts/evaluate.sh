#!/usr/bin/env bash
# Evaluate a checkpoint (known or unknown K) on its protocol's test split:
#   bash scripts/evaluate.sh exp/owdfa40_p1/<stamp>/checkpoints/last.pt [--dataset_root DIR]
# Writes <checkpoint>.eval.json beside the checkpoint.
set -euo pipefail
if [ $# -lt 1 ] || [ ! -f "$1" ]; then
    echo "usage: bash scripts/evaluate.sh CHECKPOINT.pt [--dataset_root DIR] [--device cpu]" >&2
    echo "(a run writes exp/<experiment>/<timestamp>/checkpoints/last.pt and best.pt)" >&2
    exit 2
fi
source "$(dirname "$0")/_env.sh"
CKPT="$1"; shift
"$PYTHON" test.py --ckpt "$CKPT" --out "${CKPT%.pt}.eval.json" "$@"
