#!/usr/bin/env bash
# Sets up a fresh checkout: missing system packages, then a venv in .venv with emomusic installed.
# Usage: scripts/setup.sh [EXTRAS]   (default extras: dev)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
bash scripts/system-deps.sh
stamp=".venv/.installed-$extras"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[$extras]"
    touch "$stamp"
fi
