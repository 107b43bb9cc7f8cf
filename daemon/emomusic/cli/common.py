"""What every command shares: finding and loading the config."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from emomusic.config import Config, load_config

DEFAULT_CONFIG_PATHS = ("config.toml", "/etc/emomusic/config.toml")


def find_config(path: str | None) -> str | None:
    """--config, else $EMOMUSIC_CONFIG, else ./config.toml, else /etc/emomusic/config.toml, else defaults."""
    if path:
        return path
    if os.environ.get("EMOMUSIC_CONFIG"):
        return os.environ["EMOMUSIC_CONFIG"]
    return next((p for p in DEFAULT_CONFIG_PATHS if Path(p).is_file()), None)


def config_from_args(args: argparse.Namespace) -> Config:
    return load_config(find_config(getattr(args, "config", None)))


def path_problems(cfg: Config) -> list[str]:
    """What the config names on this machine that is not there (or not readable), one line each
    naming the key: check-config and doctor report these, instead of the daemon finding out later."""
    from emomusic.sources.camera import describe_kind as camera_kind
    from emomusic.sources.microphone import describe_kind as microphone_kind

    out: list[str] = []

    def need(key: str, path: str | Path, kind: str = "file") -> None:
        p = Path(path).expanduser()
        if kind == "folder" and not p.is_dir():
            out.append(f"{key}: {p}: no such folder")
        elif kind == "file" and not p.is_file():
            out.append(f"{key}: {p}: no such file")
        elif not os.access(p, os.R_OK):
            out.append(f"{key}: {p}: not readable by this user (uid {os.getuid()})")

    models = cfg.models.path
    if not models.is_dir():
        out.append(f"models.dir: {models}: no such folder")
    else:
        ext = "onnx" if cfg.models.backend == "onnxruntime" else "tflite"
        q = "_int8" if cfg.models.precision == "int8" else ""
        for stem in (f"face_detector_{cfg.face.detector}", f"face_expression{q}"):
            need("models.dir", models / f"{stem}.{ext}")
        need("models.dir", models / "voice_encoder_int8.onnx")  # the voice path is onnxruntime only
        need("models.dir", models / "voice_head.json")
    # What the daemon will open as a file ('auto' resolves to a device or the generated sample).
    if cfg.camera.enabled and cfg.camera.source != "auto" and camera_kind(cfg.camera.source) == "file":
        need("camera.source", cfg.camera.source)
    if cfg.microphone.enabled and microphone_kind(cfg.microphone.source) == "file":
        need("microphone.source", cfg.microphone.source)
    for folder in cfg.library.folders:
        need("library.folders", folder, "folder")
    for playlist in cfg.library.playlists:
        need("library.playlists", playlist)
    if cfg.library.csv:
        need("library.csv", cfg.library.csv)
    tls = cfg.mqtt.tls
    if cfg.mqtt.enabled and tls.enabled:
        for key, path in (("mqtt.tls.ca_file", tls.ca_file), ("mqtt.tls.cert_file", tls.cert_file),
                          ("mqtt.tls.key_file", tls.key_file)):
            if path:
                need(key, path)
    return out
