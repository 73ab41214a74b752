# Sourced by the other scripts: sets PYTHON to an interpreter that satisfies
# requirements.txt. The active environment (conda, venv) is used as is when it
# already does; otherwise .venv is created (or updated when requirements.txt
# changed) with pip. Override the interpreter with PYTHON=/path/to/python.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
if [ -z "${PYTHON:-}" ]; then
    if command -v python >/dev/null 2>&1 && python scripts/check_env.py 2>/dev/null; then
        PYTHON=python
    else
        VENV="$REPO_ROOT/.venv"
        STAMP="$VENV/.requirements.sha256"
        WANT="$(sha256sum requirements.txt | cut -d' ' -f1)"
        if [ ! -x "$VENV/bin/python" ]; then
            echo "creating $VENV (python3 -m venv) ..."
            python3 -m venv "$VENV"
        fi
        if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
            echo "installing requirements.txt into $VENV (first time: a few minutes) ..."
            "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
            echo "$WANT" > "$STAMP"
        fi
        PYTHON="$VENV/bin/python"
    fi
fi
export PYTHON
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
