"""``emomusic doctor``: what this machine offers the daemon, in one screen."""

from __future__ import annotations

import argparse
import glob
import os
import threading
from typing import Any

from emomusic.cli.common import config_from_args, path_problems
from emomusic.config import Config


def _line(ok: bool | None, what: str, detail: str) -> None:
    mark = {True: "ok  ", False: "FAIL", None: "--  "}[ok]
    print(f"[{mark}] {what}: {detail}")


def check_broker(cfg: Config, timeout: float = 5.0) -> tuple[bool, str]:
    """A real MQTT connect with the daemon's credentials and TLS settings, not just a TCP probe."""
    import paho.mqtt.client as mqtt

    from emomusic.mqtt.link import MqttSettings, diagnose_connection, make_client

    how = ("over TLS" if cfg.mqtt.tls.enabled else "without TLS") + f" as {cfg.mqtt.username or 'anonymous'}"
    try:
        client = make_client(MqttSettings.of(cfg), f"emomusic-doctor-{os.getpid()}")
    except (OSError, ValueError) as e:  # a CA or client certificate file that cannot be loaded
        return False, f"TLS settings unusable: {e}"
    answer: list[Any] = []
    done = threading.Event()

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        answer.append(rc)
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(cfg.mqtt.host, cfg.mqtt.port, keepalive=10)
    except OSError:
        return False, f"cannot connect {how}: {diagnose_connection(cfg.mqtt) or 'the connection failed'}"
    client.loop_start()
    done.wait(timeout)
    client.disconnect()
    client.loop_stop()
    if not answer:
        return False, f"no answer within {timeout:.0f} s {how}"
    if answer[0].is_failure:
        return False, f"refused the connection {how}: {answer[0]}"
    return True, f"connected {how}"


def check_mpd(cfg: Config) -> tuple[bool, str]:
    """The player MPD: reachable, accepting the password, and how many songs it knows."""
    from emomusic.music.players.mpd_client import MpdAddress, MpdError, close, connect, uri_style

    addr = MpdAddress.from_settings(cfg.player.mpd, cfg.mpd_password)
    try:
        client = connect(addr)
    except MpdError as e:
        return False, str(e)
    try:
        style, state = uri_style(client), client.status().get("state", "?")
        if style != "mpd":  # Mopidy's stats count no songs; its library is walked with lsinfo
            return True, f"{addr}: Mopidy (MPD protocol {client.mpd_version}), songs as {style} URIs, " \
                         f"no song priorities, {state}"
        return True, f"{addr}: MPD {client.mpd_version}, {client.stats().get('songs', '?')} songs, {state}"
    except Exception as e:  # noqa: BLE001 - anything MPD answers here is a diagnosis
        return False, f"{addr}: {e}"
    finally:
        close(client)


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
    paths = path_problems(cfg)
    problems += len(paths)
    for problem in paths:
        key, _, detail = problem.partition(": ")
        _line(False, key, detail)
    if not paths:
        _line(True, "paths", "every file and folder the config names is there")
    if cfg.player.enabled and cfg.player.backend == "mpd":
        ok, detail = check_mpd(cfg)
        problems += not ok
        _line(ok, "MPD", detail)
    ok, detail = check_broker(cfg)
    if not ok:
        problems += cfg.mqtt.enabled
    _line(ok if ok or cfg.mqtt.enabled else None, "broker", f"{cfg.mqtt.host}:{cfg.mqtt.port} {detail}")
    return 1 if problems else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    return run_doctor(cfg)
