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
