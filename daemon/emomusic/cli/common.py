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
    return [*_model_problems(cfg), *_source_problems(cfg), *_library_problems(cfg), *_player_problems(cfg),
            *_tls_problems(cfg)]


def _need(key: str, path: str | Path, kind: str = "file") -> list[str]:
    p = Path(path).expanduser()
    if kind == "folder" and not p.is_dir():
        return [f"{key}: {p}: no such folder"]
    if kind == "file" and not p.is_file():
        return [f"{key}: {p}: no such file"]
    if not os.access(p, os.R_OK):
        return [f"{key}: {p}: not readable by this user (uid {os.getuid()})"]
    return []


def _model_problems(cfg: Config) -> list[str]:
    models = cfg.models.path
    if not models.is_dir():
        return [f"models.dir: {models}: no such folder"]
    ext = "onnx" if cfg.models.backend == "onnxruntime" else "tflite"
    q = "_int8" if cfg.models.precision == "int8" else ""
    ranges = ("full", "short") if cfg.face.detector == "both" else (cfg.face.detector,)
    from emomusic.face.analyzer import STEMS, chosen_classifier

    stem = STEMS[chosen_classifier(cfg.face.classifier)]
    files = [*(models / f"face_detector_{r}.{ext}" for r in ranges), models / f"{stem}{q}.{ext}",
             models / "voice_encoder_int8.onnx", models / "voice_head.json"]  # the voice path is onnxruntime only
    return [line for f in files for line in _need("models.dir", f)]


def _source_problems(cfg: Config) -> list[str]:
    """What the daemon will open as a file ('auto' resolves to a device or the generated sample)."""
    from emomusic.sources.camera import describe_kind as camera_kind
    from emomusic.sources.microphone import describe_kind as microphone_kind

    out = []
    if cfg.camera.enabled and cfg.camera.source != "auto" and camera_kind(cfg.camera.source) == "file":
        out += _need("camera.source", cfg.camera.source)
    if cfg.microphone.enabled and microphone_kind(cfg.microphone.source) == "file":
        out += _need("microphone.source", cfg.microphone.source)
    return out


def _library_problems(cfg: Config) -> list[str]:
    lc = cfg.library
    out = [line for f in lc.folders for line in _need("library.folders", f, "folder")]
    out += [line for p in lc.playlists for line in _need("library.playlists", p)]
    return out + (_need("library.csv", lc.csv) if lc.csv else [])


def _player_problems(cfg: Config) -> list[str]:
    from emomusic.config import ConfigError
    from emomusic.music.players import backend

    try:
        backend(cfg.player.backend)
    except ConfigError as e:
        return [str(e)]
    return []


def _tls_problems(cfg: Config) -> list[str]:
    tls = cfg.mqtt.tls
    if not (cfg.mqtt.enabled and tls.enabled):
        return []
    return [line for key, path in (("mqtt.tls.ca_file", tls.ca_file), ("mqtt.tls.cert_file", tls.cert_file),
                                   ("mqtt.tls.key_file", tls.key_file)) if path for line in _need(key, path)]
