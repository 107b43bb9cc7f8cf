#!/usr/bin/env bash
# The README's first command on arm64 (a Raspberry Pi's architecture), without a Pi: a Debian bookworm
# arm64 root run under qemu-user-static, a copy of this checkout's HEAD (as a fresh clone has it) in it,
# then inside it
#   1. scripts/run.sh on its defaults, until the daemon has told the sample story's first scene and
#      played a track (or RUN_LIMIT_S), then SIGTERM: it must stop cleanly (exit 0);
#   2. the sample story replayed through the real models (emomusic replay --fast), each scene's lead
#      over its runner-up printed (scripts/evaluate.py story).
# Emulation is some 10-30x slower than the real thing: this takes the better part of an hour and is not
# part of CI; the README's Pi section gives its last result and date. Run as root (debootstrap, chroot):
#   sudo scripts/check-arm64.sh [ROOT]        ROOT default /var/tmp/emomusic-arm64 (kept for the next run)
# Last line: "arm64 check: run ok|FAILED, story ok|FAILED (...)"; exit 0 when both passed.
#   sudo scripts/check-arm64.sh --instructions [ROOT] > docs/arm64-instructions.json
# instead sets up the runtime install (plus LiteRT) and prints, as JSON, the instructions each stage executes
# on aarch64 kernels, a Pi 4's and a Pi 5's (scripts/count_instructions.py; some 10 minutes once the root is
# set up). Timings under
# qemu cannot rank stages or backends (it computes floating point in software: fp32 stages ran 20-60x slower
# against int8 ones than on real CPUs, 2026-12-03), but the instructions the real kernels execute can: the
# stages run under a dynamically linked qemu-aarch64 emulating a Cortex-A72 (a Pi 4's core: no SDOT, so the
# kernels a Pi 4 gets), then a Cortex-A76 (a Pi 5's), with a plugin that counts them (scripts/insn_count_plugin.c). docs/PERFORMANCE.md's
# Pi 4 estimate rests on them.
set -euo pipefail
count=0
if [ "${1:-}" = "--instructions" ]; then count=1; shift; fi
root="${1:-/var/tmp/emomusic-arm64}"
src="$(cd "$(dirname "$0")/.." && pwd)"
RUN_LIMIT_S="${RUN_LIMIT_S:-3600}"
[ "$(id -u)" -eq 0 ] || { echo "run as root (debootstrap, mounts, chroot): sudo $0 $*" >&2; exit 1; }

missing=()
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v update-binfmts >/dev/null || missing+=(binfmt-support)
if [ "$count" -eq 1 ]; then command -v qemu-aarch64 >/dev/null || missing+=(qemu-user); fi
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
fi
# aarch64 programs run through qemu (binfmt_misc), in containers too
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64

if [ ! -x "$root/usr/bin/python3" ]; then
    echo "arm64 check: building a Debian bookworm arm64 root in $root (some minutes)" >&2
    debootstrap --arch=arm64 --include=python3,python3-venv,ca-certificates,git bookworm "$root" \
        http://deb.debian.org/debian >/dev/null
fi

mounts=()
cleanup() { for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done; }
trap cleanup EXIT
bind() { mount --bind "$1" "$2"; mounts+=("$2"); }
bind /proc "$root/proc"
bind /sys "$root/sys"
bind /dev "$root/dev"
bind /dev/pts "$root/dev/pts"
# onnxruntime reads /proc/cpuinfo at import and crashes on an x86 one under qemu-user: show it a Pi 4's
# (an emulator artifact, not a Pi problem).
# pi_cpuinfo FILE FEATURES VARIANT PART REVISION TAIL: four cores of a Pi's /proc/cpuinfo
pi_cpuinfo() {
    : > "$1"
    for cpu in 0 1 2 3; do
        printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
            "$cpu" "$2" "$3" "$4" "$5" >> "$1"
    done
    printf '%b' "$6" >> "$1"
}
cpuinfo="$root/etc/pi4-cpuinfo"
pi_cpuinfo "$cpuinfo" "fp asimd evtstrm crc32 cpuid" 0x0 0xd08 3 \
    'Hardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n'
bind "$cpuinfo" "$root/proc/cpuinfo"
# name resolution, and the host's CA bundle and pip settings (a proxy with its own CA stays trusted)
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"

# the checkout as a fresh clone has it: tracked files at HEAD, a new state dir
rm -rf "$root/opt/emomusic" "$root/var/tmp/emomusic-state"
mkdir -p "$root/opt/emomusic"
git -C "$src" archive HEAD | tar -x -C "$root/opt/emomusic"
commit="$(git -C "$src" rev-parse --short HEAD)"

# QEMU_CPU: qemu emulates a Pi 4's core (Cortex-A72: no SDOT), not its default "max" (SDOT, SVE, ...): the
# instructions numpy, onnxruntime and the daemon find are those a Pi 4 reports, not only its /proc/cpuinfo
# (under "max" `face.classifier` auto took the large model and onnxruntime its SDOT kernels, as on a Pi 5)
inside() {
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        QEMU_CPU=cortex-a72 EMOMUSIC_STATE_DIR=/var/tmp/emomusic-state EMOMUSIC_WEB_PORT=8097 \
        bash -c "cd /opt/emomusic && $1"
}

if [ "$count" -eq 1 ]; then
    inside "bash scripts/setup.sh runtime && .venv/bin/python -m pip install -q 'ai-edge-litert>=1.0'" >&2
    work="$(mktemp -d)"
    cc -O2 -shared -fPIC -o "$work/insn_count.so" "$src/scripts/insn_count_plugin.c"
    # A Pi 5's core too (Cortex-A76: SDOT, the int8 dot product), with a Pi 5's /proc/cpuinfo, so that the
    # daemon chooses as it would there.
    pi5="$root/etc/pi5-cpuinfo"
    pi_cpuinfo "$pi5" "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" \
        0x4 0xd0b 1 'Revision\t: d04170\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n'
    for core in cortex-a72:"$cpuinfo" cortex-a76:"$pi5"; do
        bind "${core#*:}" "$root/proc/cpuinfo"
        # outside the root, its files seen through qemu's -L prefix (this qemu is an x86_64 program with its
        # own libraries); argv[0] names the venv's python so that Python finds the venv. The counts file lies
        # outside the root, where the plugin writes and the guest reads it.
        env -i HOME=/root LANG=C.UTF-8 PATH=/usr/bin:/bin EMOMUSIC_INSN_FILE="$work/counts" \
            qemu-aarch64 -cpu "${core%%:*}" -L "$root" -0 /opt/emomusic/.venv/bin/python \
            -plugin "$work/insn_count.so,out=$work/counts" "$root/usr/bin/python3" \
            /opt/emomusic/scripts/count_instructions.py > "$work/${core%%:*}.json"
        echo "arm64 instructions: ${core%%:*} done" >&2
    done
    printf '{"code": "%s", "date": "%s", "method": "sudo scripts/check-arm64.sh --instructions", ' \
        "$commit" "$(date -u +%Y-%m-%d)"
    printf '"Cortex-A72 (Pi 4)": %s, "Cortex-A76 (Pi 5)": %s}\n' "$(cat "$work/cortex-a72.json")" \
        "$(cat "$work/cortex-a76.json")"
    rm -rf "$work"
    exit 0
fi

# 1. the README's first command, until it has played a track; then SIGTERM
log="$root/var/tmp/run.log"
start=$(date +%s)
: > "$log"
inside "exec scripts/run.sh" >"$log" 2>&1 &
runner=$!
while kill -0 "$runner" 2>/dev/null && ! grep -q "playing '" "$log" && [ $(( $(date +%s) - start )) -lt "$RUN_LIMIT_S" ]; do
    sleep 10
done
played=$(grep -c "playing '" "$log" || true)
emotions=$(grep -c "emotion: " "$log" || true)
pkill -TERM -f "emomusic run --config config.toml" || true
run_rc=0
wait "$runner" || run_rc=$?
run_s=$(( $(date +%s) - start ))
run="FAILED"
if [ "$run_rc" -eq 0 ] && [ "$played" -gt 0 ] && [ "$emotions" -gt 0 ]; then run="ok"; fi
echo "arm64 check: run.sh took ${run_s} s to a played track (exit $run_rc after SIGTERM); log: $log" >&2
grep -E "face classifier|emotion: |playing '|ERROR|Traceback" "$log" | head -20 >&2 || true

# 2. the sample story through the real models
story="FAILED"
# the sample media the run made, by the names this version of the package gives them
samples="/var/tmp/emomusic-state/samples"
names='from emomusic.sources.samples import VIDEO_NAME, AUDIO_NAME; print(VIDEO_NAME, AUDIO_NAME)'
if inside "read -r video audio < <(.venv/bin/python -c '$names') \
        && .venv/bin/emomusic replay --fast --video $samples/\$video --audio $samples/\$audio \
            --jsonl /var/tmp/story.jsonl >/dev/null \
        && .venv/bin/python scripts/evaluate.py story /var/tmp/story.jsonl" > "$root/var/tmp/story.json" 2>&1; then
    story="ok"
fi
cat "$root/var/tmp/story.json" >&2
echo "arm64 check ($commit, $(date -u +%Y-%m-%d)): run ${run}, story ${story}"
[ "$run" = ok ] && [ "$story" = ok ]
