#!/usr/bin/env bash
# CUDA smoke test and throughput on one GPU (what CI cannot run):
#   bash scripts/bench/cuda_check.sh OUT_DIR
# 1. NCCL process group (world size 1) through the project's reduce/gather helpers;
# 2. a 2-epoch unknown-K training of configs/demo.py on CUDA (bf16 autocast, pinned
#    memory, workers), then test.py must reproduce the last epoch exactly;
# 3. training-step throughput (bf16/fp32, channels_last, before/after rows).
set -uo pipefail
OUT="${1:-bench_results/cuda}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi -L; "$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"

echo "== 1. NCCL helpers"
MASTER_ADDR=127.0.0.1 MASTER_PORT=29533 RANK=0 WORLD_SIZE=1 "$PY" - <<'PY'
import torch, torch.distributed as dist
from utils.distributed import reduce_sum, gather_objects, broadcast_object
dist.init_process_group("nccl", device_id=torch.device("cuda:0"))
t = torch.arange(4, device="cuda", dtype=torch.float64)
assert torch.equal(reduce_sum(t), t) and gather_objects({"a": 1}) == [{"a": 1}] and broadcast_object("x") == "x"
print("nccl ok:", dist.get_backend())
dist.destroy_process_group()
PY

echo "== 2. training on CUDA"
"$PY" -m dataset.synthetic --out /tmp/mini --per_class 60 --size 64
"$PY" train.py configs/demo.py dataset_root=/tmp/mini run_dir=/tmp/run device=cuda epochs=2 \
    unknown_k=true num_workers=4 2>&1 | tail -12
"$PY" test.py --ckpt /tmp/run/checkpoints/last.pt --out "$OUT/eval_last.json"
cp /tmp/run/metrics.jsonl "$OUT/metrics.jsonl"
"$PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
last = [json.loads(l) for l in open(f"{out}/metrics.jsonl")][-1]
ev = json.load(open(f"{out}/eval_last.json"))
same = {k: (last[k], ev[k]) for k in ("all_acc", "known_acc", "novel_acc", "valid_prototypes")}
print("test.py reproduces the last epoch:", all(a == b for a, b in same.values()), same)
PY

echo "== 3. throughput"
"$PY" scripts/bench/throughput.py --devices cuda --models resnet50@256 --precisions bf16 \
    --channels_last off on --compare --out "$OUT/throughput_r50_bf16.md"
"$PY" scripts/bench/throughput.py --devices cuda --models resnet50@256 --precisions fp32 \
    --channels_last off --out "$OUT/throughput_r50_fp32.md"
"$PY" scripts/bench/throughput.py --devices cuda --models resnet18@64 --precisions bf16 \
    --channels_last off --out "$OUT/throughput_r18.md"
