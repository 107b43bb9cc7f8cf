"""What 'auto' means for a source: the first camera or microphone found, else the generated sample media."""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable
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


def resolve_microphone(spec: str, state_dir: Path, should_stop: Callable[[], bool] = lambda: False) -> str:
    """'auto' -> the default input device if PortAudio has one, else the generated sample speech."""
    if spec != "auto":
        return spec
    try:
        import sounddevice as sd

        sd.query_devices(None, "input")
        return "default"
    except Exception as e:  # no PortAudio library, or no input device
        _, audio = ensure_samples(state_dir / "samples", should_stop)
        log.info("no microphone (%s): using the sample speech %s", str(e).splitlines()[0][:80], audio)
        return str(audio)
