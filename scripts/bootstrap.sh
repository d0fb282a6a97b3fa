#!/usr/bin/env bash
# Idempotent environment setup: .venv with f8hw installed editable (+ dev
# extras), and Icarus Verilog when missing.  Re-running is cheap: the pip step
# is skipped while the stamp file is newer than pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
STAMP=.venv/.f8hw-bootstrap-stamp

if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv"
    "$PY" -m venv .venv
fi

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ scripts/bootstrap.sh -nt "$STAMP" ]; then
    echo "bootstrap: pip install -e .[dev]"
    .venv/bin/python -m pip install -q -e ".[dev]"
    touch "$STAMP"
fi

if ! command -v iverilog >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: installing iverilog (apt-get)"
        apt-get update -qq && apt-get install -y -qq iverilog
    else
        echo "bootstrap: iverilog not found and cannot apt-get install it (need root and apt-get);"
        echo "           install Icarus Verilog yourself to run the Icarus simulations."
    fi
fi
