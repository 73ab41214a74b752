# Sourced by train.sh / train_wok.sh: `launch CONFIG [key=value ...]` runs one
# training, under torchrun when NPROC > 1 (TORCHRUN_ARGS replaces the default --standalone with rendezvous flags
# for several machines), with SEED and DATASET_ROOT from the environment.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
SEED="${SEED:-2025}"
NPROC="${NPROC:-1}"

require_dataset() {
    local root
    root="$("$PYTHON" -c 'import sys; from utils.config import load_config
print(load_config(sys.argv[1], [a for a in sys.argv[2:] if "=" in a]).dataset_root)' "$@")"
    if [ -z "$root" ] || [ ! -d "$root" ]; then
        cat >&2 <<MSG
error: no dataset at dataset_root='$root'.
Get OWDFA-40 from the Hugging Face hub and crop its faces once:
    python dataset/get_data.py --dataset_root /your_path/OWDFA40-Benchmark --extract
    python dataset/prepare.py --dataset_root /your_path/OWDFA40-Benchmark/data
then run again with DATASET_ROOT=/your_path/OWDFA40-Benchmark/data (or set dataset_root in configs/base.py).
MSG
        exit 2
    fi
}

launch() {
    local config="$1"; shift
    require_dataset "$config" "$@"
    if [ "$NPROC" -gt 1 ]; then
        # shellcheck disable=SC2086
        "$PYTHON" -m torch.distributed.run --nproc_per_node "$NPROC" ${TORCHRUN_ARGS:---standalone} \
            train.py "$config" seed="$SEED" "$@"
    else
        "$PYTHON" train.py "$config" seed="$SEED" "$@"
    fi
}
