"""The daemon's settings: one msgspec struct per concern (a module each), loaded from one TOML file.

This package imports nothing else from emomusic on purpose (so scripts and tests can read a
config without pulling in the pipeline). Secrets are read in :func:`load_config`, never at import.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import tomllib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from emomusic.config.base import KINDS, Section, meant
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


class DeviceConfig(Section, frozen=True):
    id: Annotated[str, Meta(description="Device id used in topics and HA unique ids; empty = hostname.")] = ""
    name: Annotated[str, Meta(min_length=1, description="Friendly name shown in Home Assistant.")] = "emomusic"
    room: Annotated[
        str,
        Meta(
            max_length=64,
            description="The room this daemon is in (e.g. 'Living room'): Home "
            "Assistant's area and the device name 'emomusic <room>'; the house view shows it.",
        ),
    ] = ""
    state_dir: Annotated[
        str, Meta(description="Where the library index lives; empty = $STATE_DIRECTORY or ~/.local/state/emomusic.")
    ] = ""

    def __post_init__(self) -> None:
        if self.id and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.id):
            raise ValueError("id: expected 1-64 characters of letters, digits, '_' or '-'")
        if self.id == "house":
            raise ValueError("id: 'house' is taken: <base>/house/state is the house mood")


class HouseConfig(Section, frozen=True):
    enabled: Annotated[
        bool,
        Meta(description="Follow the other rooms' daemons under the same topic base (the house view, the house mood)."),
    ] = True
    sure: Annotated[
        float, Meta(ge=0, le=1, description="A room's state counts for the house mood from this confidence on.")
    ] = 0.5
    follow: Annotated[
        bool,
        Meta(
            description="Music follows the listener: when they leave a room while its music "
            "plays and a face appears here soon after, this room takes the music over."
        ),
    ] = False
    left_after_s: Annotated[float, Meta(gt=0, description="No face for this long: the listener has left the room.")] = (
        20.0
    )
    follow_window_s: Annotated[
        float,
        Meta(
            gt=0,
            description="A face appearing here this soon after the listener "
            "left another room takes that room's music over.",
        ),
    ] = 60.0


class LoggingConfig(Section, frozen=True):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def prepare(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("level"), str):
            return {**raw, "level": raw["level"].upper()}  # "debug" works as it does for --log-level
        return raw


@dataclasses.dataclass(frozen=True)
class Config:
    """Every section; the secrets and where the settings came from are resolved at load time."""

    device: DeviceConfig = dataclasses.field(default_factory=DeviceConfig)
    camera: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    microphone: MicrophoneConfig = dataclasses.field(default_factory=MicrophoneConfig)
    models: ModelsConfig = dataclasses.field(default_factory=ModelsConfig)
    face: FaceConfig = dataclasses.field(default_factory=FaceConfig)
    voice: VoiceConfig = dataclasses.field(default_factory=VoiceConfig)
    fusion: FusionConfig = dataclasses.field(default_factory=FusionConfig)
    mqtt: MqttConfig = dataclasses.field(default_factory=MqttConfig)
    library: LibraryConfig = dataclasses.field(default_factory=LibraryConfig)
    player: PlayerConfig = dataclasses.field(default_factory=PlayerConfig)
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)
    web: WebConfig = dataclasses.field(default_factory=WebConfig)
    house: HouseConfig = dataclasses.field(default_factory=HouseConfig)
    # Resolved at load time, not part of the file.
    _mqtt_password: str | None = dataclasses.field(default=None, repr=False)
    _web_password: str | None = dataclasses.field(default=None, repr=False)
    _mpd_password: str | None = dataclasses.field(default=None, repr=False)
    _origin: str = "defaults"

    def model_copy(self, update: dict[str, Any]) -> Config:
        """A copy with some sections replaced (for code; a user's input goes through parse_config)."""
        return dataclasses.replace(self, **update)

    def model_dump(self) -> dict[str, Any]:
        return {name: getattr(self, name).model_dump() for name in SECTIONS}

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


# The file's sections, by name: Config's public fields (tests swap one for a variant).
SECTIONS: dict[str, type[Section]] = {
    f.name: f.default_factory for f in dataclasses.fields(Config) if not f.name.startswith("_")  # type: ignore[misc]
}


def _type_at(section: type[Section], path: list[str]) -> Any:
    """The type of the field at ``path`` inside ``section`` (``Annotated`` taken off; None if there is none)."""
    tp: Any = section
    for name in path:
        tp = typing.get_type_hints(tp).get(name) if isinstance(tp, type) else None
    return tp


def _choices(section: type[Section], path: list[str]) -> list[str]:
    """The allowed values of a Literal field at ``path`` inside ``section`` (empty if it is not one)."""
    tp = _type_at(section, path)
    return [repr(v) for v in typing.get_args(tp)] if typing.get_origin(tp) is Literal else []


def _unknown(section: type[Section], path: list[str], key: str) -> str:
    """"unknown key" with the likely meant one, or the keys that table has (a typo, or a key put under
    the wrong table, is the usual cause)."""
    tp = _type_at(section, path)
    if not (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
        return "unknown key"
    return f"unknown key ({meant(key, [f.encode_name for f in msgspec.structs.fields(tp)])})"


def _number(text: str) -> str:
    return text[:-2] if text.endswith(".0") else text


COMPARED = {">=": "greater than or equal to", ">": "greater than", "<=": "less than or equal to", "<": "less than"}


def _in_words(msg: str, section: type[Section], path: list[str]) -> str:
    """One msgspec message in a config file's words (the kind of value, the bound, the choices)."""
    if m := re.fullmatch(r"Expected `(\w+)`, got `(\w+)`", msg):
        return f"Input should be a valid {KINDS.get(m.group(1), m.group(1))}"
    if m := re.fullmatch(r"Expected `\w+` (>=|>|<=|<) (\S+)", msg):
        return f"Input should be {COMPARED[m.group(1)]} {_number(m.group(2))}"
    if m := re.fullmatch(r"Expected `str` of length >= (\d+)", msg):
        return f"String should have at least {m.group(1)} character{'s' if m.group(1) != '1' else ''}"
    if msg.startswith("Invalid enum value") and (choices := _choices(section, path)):
        return "Input should be " + (", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1 else choices[0])
    return msg


def _explain(section: type[Section], raw: Any, err: ValueError) -> tuple[list[str], str]:
    """One error as (key path inside the section, what was expected): msgspec's, or a section's own check,
    which names its field first ("id: expected ...")."""
    text = str(err)
    if not isinstance(err, msgspec.ValidationError):
        head, _, rest = text.partition(": ")
        return head.split("."), rest
    msg, found, where = text.rpartition(" - at `")
    if not found:
        msg, where = text, "$`"
    path = [p for p in where.rstrip("`").removeprefix("$").replace("[...]", "").split(".") if p]
    if m := re.fullmatch(r"Object contains unknown field `(.+)`", msg):
        return [*path, m.group(1)], _unknown(section, path, m.group(1))
    head, sep, rest = msg.partition(": ")
    if sep and all(part.isidentifier() for part in head.split(".")):  # a section's own check: "key.sub: what"
        path, msg = [*path, *head.split(".")], rest
    else:
        msg = _in_words(msg, section, path)
    value = raw
    for p in path:
        value = value.get(p) if isinstance(value, dict) else None
    if value is not None and not isinstance(value, dict | list):
        msg = f"{msg} (got {value!r})"
    return path, msg


def _validate(
    data: dict[str, Any], origin: str, env_keys: dict[tuple[str, ...], str]
) -> tuple[Config | None, list[str]]:
    """Each section on its own (every section's first problem is reported, one line each)."""
    problems = [f"{origin}: {key}: unknown section ({meant(key, list(SECTIONS))})" for key in data
                if key not in SECTIONS]
    sections: dict[str, Section] = {}
    for name, section in SECTIONS.items():
        raw = data.get(name, {})
        try:
            raw = section.prepare(raw)
            sections[name] = msgspec.convert(raw, section, strict=False)
        except ValueError as e:  # msgspec's ValidationError is one, prepare's own ("key.path: what") too
            path, msg = _explain(section, raw, e)
            loc = (name, *path)
            src = f" (from {env_keys[loc[:2]]})" if loc[:2] in env_keys else ""
            problems.append(f"{origin}: {'.'.join(loc)}{src}: {msg}")
    return (None if problems else Config(**sections)), problems  # type: ignore[arg-type]


def _read_secret(path: str, key: str = "mqtt.password_file") -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except PermissionError as e:
        raise ConfigError(f"{key}: {path} is not readable by this user (uid {os.getuid()}): {e.strerror}") from e
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
        problems.append(
            f"{origin}: mqtt.password: not allowed inline; "
            f"put it in {PASSWORD_ENV} or a file named by mqtt.password_file"
        )
    mpd = data.get("player", {}).get("mpd") if isinstance(data.get("player"), dict) else None
    if isinstance(mpd, dict) and "password" in mpd:
        data["player"] = {**data["player"], "mpd": {k: v for k, v in mpd.items() if k != "password"}}
        problems.append(
            f"{origin}: player.mpd.password: not allowed inline; "
            f"put it in {MPD_PASSWORD_ENV} or a file named by player.mpd.password_file"
        )
    cfg, invalid = _validate(data, origin, used)
    problems += invalid
    if problems or cfg is None:
        raise ConfigError("\n".join(problems))
    mpd_file = cfg.player.mpd.password_file
    cfg = dataclasses.replace(
        cfg,
        _origin=origin,
        _mqtt_password=env.get(PASSWORD_ENV)
        or (_read_secret(cfg.mqtt.password_file) if cfg.mqtt.password_file else None),
        _web_password=env.get(WEB_PASSWORD_ENV)
        or (_read_secret(cfg.web.password_file, "web.password_file") if cfg.web.password_file else None),
        _mpd_password=env.get(MPD_PASSWORD_ENV)
        or (_read_secret(mpd_file, "player.mpd.password_file") if mpd_file else None),
    )
    if cfg.web.enabled and not cfg.web_password and not _loopback(cfg.web.host):
        src = f" (from {used[('web', 'host')]})" if ("web", "host") in used else ""
        raise ConfigError(
            f"{origin}: web.host{src}: {cfg.web.host} is reachable from other machines, so the page "
            f"needs a password: set {WEB_PASSWORD_ENV} or web.password_file (or keep the host 127.0.0.1)"
        )
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
