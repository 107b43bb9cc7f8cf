#!/usr/bin/env bash
# The second README command (and what CI runs): set up, lint, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check daemon scripts tests
.venv/bin/mypy daemon/emomusic
SDL_AUDIODRIVER=dummy SDL_VIDEODRIVER=dummy .venv/bin/python -m pytest -q "$@"
