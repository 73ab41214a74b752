# Sourced by train.sh / train_wok.sh: `run_grid SUFFIX [key=value ...]` trains configs/owdfa40_p<P><SUFFIX>.py
# for every seed in SEEDS (default: SEED, default 2025) and protocol in PROTOCOLS (default 1 2 3), each
# through `launch`: under torchrun when NPROC > 1 (TORCHRUN_ARGS replaces the default --standalone with
# rendezvous flags for several machines), with DATASET_ROOT from the environment.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
SEEDS="${SEEDS:-${SEED:-2025}}"
PROTOCOLS="${PROTOCOLS:-1 2 3}"
NPROC="${NPROC:-1}"

require_dataset() {
    local root
    root="$("$PYTHON" -c 'import sys; from utils.config import ConfigError, load_config
try:
    print(load_config(sys.argv[1], [a for a in sys.argv[2:] if "=" in a]).dataset_root)
except ConfigError as err:
    sys.exit(f"error: {err}")' "$@")" || exit 2
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
    local config="$1" seed="$2"; shift 2
    if [ "$NPROC" -gt 1 ]; then
        # shellcheck disable=SC2086
        "$PYTHON" -m torch.distributed.run --nproc_per_node "$NPROC" ${TORCHRUN_ARGS:---standalone} \
            train.py "$config" seed="$seed" "$@"
    else
        "$PYTHON" train.py "$config" seed="$seed" "$@"
    fi
}

run_grid() {
    local suffix="$1" p seed; shift
    for p in $PROTOCOLS; do  # check every name before the first (long) run starts
        if [ ! -f "configs/owdfa40_p${p}${suffix}.py" ]; then
            echo "error: unknown protocol '$p' in PROTOCOLS='$PROTOCOLS'; OWDFA-40 has 1, 2 and 3" \
                 "(e.g. PROTOCOLS=\"1 3\"); a custom class table runs with python train.py CONFIG classes_file=..." >&2
            exit 2
        fi
    done
    for seed in $SEEDS; do
        if ! [[ "$seed" =~ ^[0-9]+$ ]]; then
            echo "error: seed '$seed' in SEEDS='$SEEDS' is not an integer (e.g. SEEDS=\"2025 2026 2027\")" >&2
            exit 2
        fi
    done
    require_dataset "configs/owdfa40_p${PROTOCOLS%% *}${suffix}.py" "$@"
    for seed in $SEEDS; do
        for p in $PROTOCOLS; do
            launch "configs/owdfa40_p${p}${suffix}.py" "$seed" "$@"
        done
    done
}
