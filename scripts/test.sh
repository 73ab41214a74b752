#!/usr/bin/env bash
# The test suite (CPU, < 10 minutes): bash scripts/test.sh [pytest args]
set -euo pipefail
source "$(dirname "$0")/_env.sh"
"$PYTHON" -m pytest -q tests "$@"
