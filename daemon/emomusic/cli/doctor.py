"""``emomusic doctor``: what this machine offers the daemon, in one screen."""

from __future__ import annotations

import argparse
import glob
import socket

from emomusic.cli.common import config_from_args
from emomusic.config import Config


def _line(ok: bool | None, what: str, detail: str) -> None:
    mark = {True: "ok  ", False: "FAIL", None: "--  "}[ok]
    print(f"[{mark}] {what}: {detail}")


def run_doctor(cfg: Config) -> int:
    problems = 0
    print(f"config: {cfg.origin}; device id {cfg.device_id}; state dir {cfg.state_dir}")
    devices = sorted(glob.glob("/dev/video[0-9]*"))
    _line(bool(devices) or None, "cameras", ", ".join(devices) or "none (the sample video will be used)")
    try:
        import picamera2  # noqa: F401

        _line(True, "picamera2", "installed")
    except Exception:
        _line(None, "picamera2", "not installed (only needed for a Pi camera)")
    try:
        import sounddevice as sd

        inputs = [f"{i}: {d['name']} ({int(d['default_samplerate'])} Hz)"
                  for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]
        outputs = [d["name"] for d in sd.query_devices() if d["max_output_channels"] > 0]
        _line(bool(inputs) or None, "microphones", "; ".join(inputs) or "none (the sample speech will be used)")
        _line(bool(outputs) or None, "audio outputs", "; ".join(outputs) or "none (SDL's dummy driver will be used)")
    except Exception as e:
        _line(None, "audio devices", f"PortAudio unavailable ({str(e).splitlines()[0]}); install libportaudio2")
    models_dir = cfg.models.path
    models = sorted(p.name for p in models_dir.glob("*.onnx")) if models_dir.is_dir() else []
    _line(bool(models) or None, "models", f"{models_dir}: {', '.join(models) or 'none'}")
    try:
        with socket.create_connection((cfg.mqtt.host, cfg.mqtt.port), timeout=2):
            _line(True, "broker", f"{cfg.mqtt.host}:{cfg.mqtt.port} reachable")
    except OSError as e:
        problems += cfg.mqtt.enabled
        _line(False if cfg.mqtt.enabled else None, "broker", f"{cfg.mqtt.host}:{cfg.mqtt.port} not reachable ({e})")
    return 1 if problems else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from emomusic.cli.doctor import run_doctor

    cfg = config_from_args(args)
    return run_doctor(cfg)
