"""The daemon's settings: one pydantic model per concern (a module each), loaded from one TOML file.

This package imports nothing else from emomusic on purpose (so scripts and tests can read a
config without pulling in the pipeline). Secrets are read in :func:`load_config`, never at import.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator

from emomusic.config.base import Section
from emomusic.config.fusion import FusionConfig
from emomusic.config.mqtt import PASSWORD_ENV, MqttConfig
from emomusic.config.music import MPD_PASSWORD_ENV, LibraryConfig, PlayerConfig
from emomusic.config.perception import FaceConfig, ModelsConfig, VoiceConfig
from emomusic.config.sources import CameraConfig, MicrophoneConfig
from emomusic.config.web import WEB_PASSWORD_ENV, WebConfig

# Environment variables that override a key, for what differs per host (systemd EnvironmentFile=).
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "EMOMUSIC_MQTT_HOST": ("mqtt", "host"),
    "EMOMUSIC_MQTT_PORT": ("mqtt", "port"),
    "EMOMUSIC_MQTT_USERNAME": ("mqtt", "username"),
    "EMOMUSIC_DEVICE_ID": ("device", "id"),
    "EMOMUSIC_STATE_DIR": ("device", "state_dir"),
    "EMOMUSIC_WEB_HOST": ("web", "host"),
    "EMOMUSIC_WEB_PORT": ("web", "port"),
}


class ConfigError(Exception):
    """A config problem, already phrased as one line per problem naming the key."""


class DeviceConfig(Section):
    id: str = Field("", description="Device id used in topics and HA unique ids; empty = hostname.")
    name: str = Field("emomusic", min_length=1, description="Friendly name shown in Home Assistant.")
    room: str = Field("", max_length=64, description="The room this daemon is in (e.g. 'Living room'): Home "
                      "Assistant's area and the device name 'emomusic <room>'; the house view shows it.")
    state_dir: str = Field(
        "", description="Where the library index lives; empty = $STATE_DIRECTORY or ~/.local/state/emomusic."
    )

    @field_validator("id")
    @classmethod
    def _id_chars(cls, v: str) -> str:
        if v and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v):
            raise ValueError("expected 1-64 characters of letters, digits, '_' or '-'")
        if v == "house":
            raise ValueError("'house' is taken: <base>/house/state is the house mood")
        return v


class HouseConfig(Section):
    enabled: bool = Field(True, description="Follow the other rooms' daemons under the same topic base (the "
                          "house view, the house mood).")
    sure: float = Field(0.5, ge=0, le=1, description="A room's state counts for the house mood from this "
                        "confidence on.")
    follow: bool = Field(False, description="Music follows the listener: when they leave a room while its music "
                         "plays and a face appears here soon after, this room takes the music over.")
    left_after_s: float = Field(20.0, gt=0, description="No face for this long: the listener has left the room.")
    follow_window_s: float = Field(60.0, gt=0, description="A face appearing here this soon after the listener "
                                   "left another room takes that room's music over.")


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v  # "debug" works as it does for --log-level


class Config(Section):
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    microphone: MicrophoneConfig = Field(default_factory=MicrophoneConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    face: FaceConfig = Field(default_factory=FaceConfig)
    voice: VoiceConfig = Field(default_factory=VoiceConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    library: LibraryConfig = Field(default_factory=LibraryConfig)
    player: PlayerConfig = Field(default_factory=PlayerConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    house: HouseConfig = Field(default_factory=HouseConfig)

    # Resolved at load time, not part of the file.
    _mqtt_password: str | None = PrivateAttr(None)
    _web_password: str | None = PrivateAttr(None)
    _mpd_password: str | None = PrivateAttr(None)
    _origin: str = PrivateAttr("defaults")

    @property
    def mqtt_password(self) -> str | None:
        return self._mqtt_password

    @property
    def web_password(self) -> str | None:
        return self._web_password

    @property
    def mpd_password(self) -> str | None:
        return self._mpd_password

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def device_id(self) -> str:
        if self.device.id:
            return self.device.id
        host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:64]
        return host or "emomusic"

    @property
    def topic_prefix(self) -> str:
        return self.mqtt.topic_prefix or f"emomusic/{self.device_id}"

    @property
    def library_path(self) -> Path:
        """The SQLite library index: library.database, else <state_dir>/library.db."""
        return Path(self.library.database).expanduser() if self.library.database else self.state_dir / "library.db"

    @property
    def state_dir(self) -> Path:
        if self.device.state_dir:
            return Path(self.device.state_dir).expanduser()
        if os.environ.get("STATE_DIRECTORY"):  # set by systemd's StateDirectory=
            return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
        return Path.home() / ".local" / "state" / "emomusic"


def _format_errors(origin: str, err: ValidationError, env_keys: dict[tuple[str, ...], str]) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"])
        key = ".".join(loc) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif "input" in e and not isinstance(e["input"], dict | list):
            msg = f"{msg} (got {e['input']!r})"
        src = f" (from {env_keys[loc[:2]]})" if loc[:2] in env_keys else ""
        lines.append(f"{origin}: {key}{src}: {msg}")
    return "\n".join(lines)


def _read_secret(path: str, key: str = "mqtt.password_file") -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except PermissionError as e:
        raise ConfigError(
            f"{key}: {path} is not readable by this user (uid {os.getuid()}): {e.strerror}"
        ) from e
    except OSError as e:
        raise ConfigError(f"{key}: cannot read {path}: {e.strerror or e}") from e


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_config(data: dict[str, Any], origin: str = "config", env: dict[str, str] | None = None) -> Config:
    """Validate a config mapping, apply environment overrides and resolve secrets."""
    env = dict(os.environ) if env is None else env
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    used: dict[tuple[str, ...], str] = {}
    for var, (section, key) in ENV_OVERRIDES.items():
        if var in env:
            sec = data.setdefault(section, {})
            if isinstance(sec, dict):
                sec[key] = env[var]
                used[(section, key)] = var
    problems = []
    mqtt = data.get("mqtt")
    if isinstance(mqtt, dict) and "password" in mqtt:
        del mqtt["password"]  # reported with every other problem, not instead of them
        problems.append(f"{origin}: mqtt.password: not allowed inline; "
                        f"put it in {PASSWORD_ENV} or a file named by mqtt.password_file")
    mpd = data.get("player", {}).get("mpd") if isinstance(data.get("player"), dict) else None
    if isinstance(mpd, dict) and "password" in mpd:
        data["player"] = {**data["player"], "mpd": {k: v for k, v in mpd.items() if k != "password"}}
        problems.append(f"{origin}: player.mpd.password: not allowed inline; "
                        f"put it in {MPD_PASSWORD_ENV} or a file named by player.mpd.password_file")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        problems.append(_format_errors(origin, e, used))
    if problems:
        raise ConfigError("\n".join(problems))
    password = env.get(PASSWORD_ENV) or (_read_secret(cfg.mqtt.password_file) if cfg.mqtt.password_file else None)
    cfg._mqtt_password = password
    cfg._web_password = env.get(WEB_PASSWORD_ENV) or (
        _read_secret(cfg.web.password_file, "web.password_file") if cfg.web.password_file else None)
    mpd_file = cfg.player.mpd.password_file
    cfg._mpd_password = env.get(MPD_PASSWORD_ENV) or (
        _read_secret(mpd_file, "player.mpd.password_file") if mpd_file else None)
    if cfg.web.enabled and not cfg.web_password and not _loopback(cfg.web.host):
        src = f" (from {used[('web', 'host')]})" if ("web", "host") in used else ""
        raise ConfigError(f"{origin}: web.host{src}: {cfg.web.host} is reachable from other machines, so the page "
                          f"needs a password: set {WEB_PASSWORD_ENV} or web.password_file (or keep the host 127.0.0.1)")
    cfg._origin = origin
    return cfg


def load_config(path: str | os.PathLike[str] | None, env: dict[str, str] | None = None) -> Config:
    """Read and validate a TOML config; ``None`` gives the built-in defaults."""
    if path is None:
        return parse_config({}, "defaults", env)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except PermissionError as e:
        raise ConfigError(f"{p}: not readable by this user (uid {os.getuid()}): {e.strerror}") from e
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror or e}") from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from None
    return parse_config(data, str(p), env)
