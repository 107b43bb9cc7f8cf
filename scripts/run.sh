#!/usr/bin/env bash
# The first README command: set up, then run the daemon on its defaults (config.toml).
# No camera or microphone? It runs on generated sample media. No sound card? SDL's dummy driver.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh runtime  # the daemon's own dependencies only; scripts/test.sh adds the dev tools
if ! ls /dev/snd/pcmC*p >/dev/null 2>&1; then
    export SDL_AUDIODRIVER="${SDL_AUDIODRIVER:-dummy}"
fi
exec .venv/bin/emomusic run --config config.toml "$@"
