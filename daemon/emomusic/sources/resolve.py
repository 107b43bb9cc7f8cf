"""What 'auto' means for a source: the first camera or microphone found, else the generated sample media."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from emomusic.sources.samples import ensure_samples

log = logging.getLogger("emomusic.app")


def resolve_camera(spec: str, state_dir: Path, should_stop: Callable[[], bool] = lambda: False) -> str:
    """'auto' -> the first V4L2 device, else a Pi camera, else the generated sample video."""
    if spec != "auto":
        return spec
    devices = sorted(glob.glob("/dev/video[0-9]*"))
    if devices:
        return devices[0]
    try:
        import picamera2  # noqa: F401

        return "picamera2"
    except Exception:  # not a Pi, or picamera2 broken: fall through to the sample
        pass
    video, _ = ensure_samples(state_dir / "samples", should_stop)
    log.info("no camera found: using the sample video %s", video)
    return str(video)


def no_capture_device(pcm: Path = Path("/proc/asound/pcm"), env: Mapping[str, str] = os.environ) -> str | None:
    """Why no microphone can be here, or None when PortAudio must be asked: no ALSA capture device and no
    sound server (PulseAudio, PipeWire) that could bring one. Loading PortAudio and ALSA just to hear
    there is nothing costs a daemon on sample media 3 MB for as long as it runs."""
    try:
        if "capture" in pcm.read_text():
            return None
    except OSError:
        pass
    if env.get("PULSE_SERVER") or env.get("PIPEWIRE_REMOTE"):
        return None
    runtime = Path(env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
    if (runtime / "pulse" / "native").exists() or (runtime / "pipewire-0").exists():
        return None
    return "no ALSA capture device and no sound server"


def resolve_microphone(spec: str, state_dir: Path, should_stop: Callable[[], bool] = lambda: False) -> str:
    """'auto' -> the default input device if PortAudio has one, else the generated sample speech."""
    if spec != "auto":
        return spec
    why = no_capture_device()
    if why is None:
        try:
            import sounddevice as sd

            sd.query_devices(None, "input")
            return "default"
        except Exception as e:  # no PortAudio library, or no input device
            why = str(e).splitlines()[0][:80]
    _, audio = ensure_samples(state_dir / "samples", should_stop)
    log.info("no microphone (%s): using the sample speech %s", why, audio)
    return str(audio)
