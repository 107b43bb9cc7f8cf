#!/usr/bin/env bash
# Installs emomusic as a service on a Raspberry Pi (64-bit Pi OS) or any Debian machine.
# Run from a checkout:  sudo scripts/install-pi.sh [--with-broker]
#   --with-broker  also install and enable a local mosquitto
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "run as root: sudo $0 $*" >&2; exit 1; }
src="$(cd "$(dirname "$0")/.." && pwd)"
prefix=/opt/emomusic
with_broker=0
[ "${1:-}" = "--with-broker" ] && with_broker=1

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
pkgs=(python3-venv python3-dev libportaudio2 libsndfile1 libglib2.0-0 espeak-ng)
[ $with_broker -eq 1 ] && pkgs+=(mosquitto mosquitto-clients)
apt-get install -y -qq --no-install-recommends "${pkgs[@]}"

id emomusic >/dev/null 2>&1 || useradd --system --home-dir /var/lib/emomusic --no-create-home \
    --shell /usr/sbin/nologin --groups audio,video emomusic

mkdir -p "$prefix"
cp -a "$src/daemon" "$src/models" "$src/pyproject.toml" "$src/README.md" "$src/config.toml" "$prefix/"
[ -x "$prefix/venv/bin/python" ] || python3 -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install -q --upgrade pip
"$prefix/venv/bin/pip" install -q "$prefix"

install -d -m 0755 /etc/emomusic
[ -f /etc/emomusic/config.toml ] || install -m 0644 "$src/config.toml" /etc/emomusic/config.toml
if [ ! -f /etc/emomusic/environment ]; then
    cat > /etc/emomusic/environment <<'ENV'
# Per-host settings and secrets for emomusic (read by systemd, never logged).
#EMOMUSIC_MQTT_HOST=homeassistant.local
#EMOMUSIC_MQTT_PORT=1883
#EMOMUSIC_MQTT_USERNAME=emomusic
#EMOMUSIC_MQTT_PASSWORD=change-me
ENV
    chown root:emomusic /etc/emomusic/environment
    chmod 0640 /etc/emomusic/environment
fi
"$prefix/venv/bin/emomusic" check-config /etc/emomusic/config.toml

install -m 0644 "$src/services/emomusic.service" /etc/systemd/system/emomusic.service
systemctl daemon-reload
[ $with_broker -eq 1 ] && systemctl enable --now mosquitto
systemctl enable --now emomusic
echo "installed. Follow it with: journalctl -u emomusic -f"
