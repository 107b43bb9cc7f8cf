#!/usr/bin/env bash
# Sets up a fresh checkout: missing system packages, then a venv in .venv with emomusic installed.
# Usage: scripts/setup.sh [EXTRAS]   (default: dev; "runtime" installs the daemon alone, as on a Pi)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
bash scripts/system-deps.sh "$extras"
stamp=".venv/.installed-$extras"
target=".[$extras]"
[ "$extras" = runtime ] && target="."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e "$target"
    touch "$stamp"
fi
