#!/usr/bin/env bash
# The test suite (CPU, about 5 minutes on 2 cores): bash scripts/test.sh [pytest args]
# It runs on TEST_WORKERS processes (pytest-xdist; default: one per core, at most 4; 0: one process),
# one thread each, so the workers and the training runs they start share the cores without oversubscribing.
# Test files or folders among the arguments (tests/test_abstain.py, tests/test_k_estimation.py::test_x)
# replace the whole tests/ folder.
set -euo pipefail
source "$(dirname "$0")/_env.sh"
CORES='import os; print(min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))'
WORKERS="${TEST_WORKERS:-$("$PYTHON" -c "$CORES")}"
TARGETS=(tests)
for arg in "$@"; do
    if [ -e "${arg%%::*}" ]; then TARGETS=(); break; fi
done
OMP_NUM_THREADS=1 "$PYTHON" -m pytest -q -n "$WORKERS" "${TARGETS[@]}" "$@"
