#!/usr/bin/env bash
# Installs the system packages emomusic and its tests need, only those that are missing.
#   python3-venv   - Debian splits venv/ensurepip out of python3
#   mosquitto      - the MQTT broker the tests start (and the daemon can use locally)
#   mosquitto-clients - mosquitto_sub/mosquitto_pub, to watch the daemon as the README shows
#   libportaudio2  - PortAudio, for sounddevice (microphone)
#   libglib2.0-0   - GLib's libgthread, which pygame's mixer loads on aarch64 (found by check-arm64.sh)
#   espeak-ng      - generated speech for the sample media and the voice tests
#   chromium       - only with "dev": the browser the page's tests drive (Playwright, no browser download)
#   mpd            - only with "dev": the real MPD the MPD backend's tests start
#   mopidy mopidy-mpd mopidy-local - only with "dev": the real Mopidy the same backend's tests start on a
#                    free port (Debian may also enable its own mopidy service on 6600:
#                    `sudo systemctl disable --now mopidy` where that is not wanted)
# Usage: scripts/system-deps.sh [EXTRAS]
set -euo pipefail
missing=()
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || missing+=(mosquitto-clients)
# grep reads the whole listing (no -q): with pipefail, a grep that quits at its first match would kill
# ldconfig with SIGPIPE on a long listing, and the package would be "missing" and reinstalled.
ldconfig -p 2>/dev/null | grep 'libportaudio.so.2' >/dev/null || missing+=(libportaudio2)
ldconfig -p 2>/dev/null | grep 'libgthread-2.0.so.0' >/dev/null || missing+=(libglib2.0-0)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
if [ "${1:-}" = dev ]; then
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v mpd >/dev/null 2>&1 || [ -x /usr/bin/mpd ] || missing+=(mpd)
    [ -x /usr/bin/mopidy ] || missing+=(mopidy)
    [ -d /usr/lib/python3/dist-packages/mopidy_mpd ] || missing+=(mopidy-mpd)
    [ -d /usr/lib/python3/dist-packages/mopidy_local ] || missing+=(mopidy-local)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing system packages: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
