"""The daemon's settings: one pydantic model per concern, loaded from one TOML file.

This module imports nothing else from the package on purpose (so scripts and tests can read a
config without pulling in the pipeline). Secrets are read in :func:`load_config`, never at import.
"""

from __future__ import annotations

import math
import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

MODES = ("match", "regulate", "fixed", "off")

# Environment variables that override a key, for what differs per host (systemd EnvironmentFile=).
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "EMOMUSIC_MQTT_HOST": ("mqtt", "host"),
    "EMOMUSIC_MQTT_PORT": ("mqtt", "port"),
    "EMOMUSIC_MQTT_USERNAME": ("mqtt", "username"),
    "EMOMUSIC_DEVICE_ID": ("device", "id"),
    "EMOMUSIC_STATE_DIR": ("device", "state_dir"),
}
PASSWORD_ENV = "EMOMUSIC_MQTT_PASSWORD"


class ConfigError(Exception):
    """A config problem, already phrased as one line per problem naming the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceConfig(Section):
    id: str = Field("", description="Device id used in topics and HA unique ids; empty = hostname.")
    name: str = Field("emomusic", min_length=1, description="Friendly name shown in Home Assistant.")
    state_dir: str = Field(
        "", description="Where the library index lives; empty = $STATE_DIRECTORY or ~/.local/state/emomusic."
    )

    @field_validator("id")
    @classmethod
    def _id_chars(cls, v: str) -> str:
        if v and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v):
            raise ValueError("expected 1-64 characters of letters, digits, '_' or '-'")
        return v


class CameraConfig(Section):
    enabled: bool = True
    source: str = Field(
        "auto",
        description="'auto' (first camera, else the sample video), a device index, /dev/videoN, "
        "an rtsp:// or http:// URL, a video file, or 'picamera2'.",
    )
    loop: bool = Field(True, description="Restart a video file at its end.")
    width: int = Field(640, ge=64, le=4096)
    height: int = Field(480, ge=48, le=4096)
    analysis_fps: float = Field(5.0, gt=0, le=60, description="Frames per second handed to analysis.")
    stall_s: float = Field(5.0, gt=0, description="No frame for this long = the camera is reopened.")
    queue_size: int = Field(4, ge=1, le=1000)


class MicrophoneConfig(Section):
    enabled: bool = True
    source: str = Field(
        "auto", description="'auto' (default input, else the sample audio), a device name/index, or a WAV/FLAC file."
    )
    loop: bool = True
    block_ms: int = Field(300, ge=30, le=5000, description="Audio chunk length; a multiple of 30 ms.")
    queue_size: int = Field(100, ge=1, le=10000)
    stall_s: float = Field(5.0, gt=0)

    @field_validator("block_ms")
    @classmethod
    def _multiple_of_vad_frame(cls, v: int) -> int:
        if v % 30:
            raise ValueError("expected a multiple of 30 (the VAD frame length)")
        return v


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("expected a finite number")
    return v


VA = Annotated[tuple[float, float], Field(description="(valence, arousal), each in [-1, 1]")]

DEFAULT_CIRCUMPLEX: dict[str, tuple[float, float]] = {
    # Positions after Russell (1980) and Posner et al. (2005): valence left-right, arousal bottom-top.
    "neutral": (0.0, 0.0),
    "calm": (0.5, -0.6),
    "happy": (0.8, 0.5),
    "surprised": (0.3, 0.8),
    "sad": (-0.7, -0.5),
    "angry": (-0.6, 0.8),
    "fearful": (-0.7, 0.7),
    "disgust": (-0.7, 0.3),
    "contempt": (-0.5, 0.2),
}


DEFAULT_TAU_S = 4.0


class FusionConfig(Section):
    tau_s: dict[str, float] = Field(
        default_factory=lambda: {"face": 1.0, "voice": 1.5, "external": 10.0},
        description="Per-modality time constant of the exponential evidence decay (one number = all modalities).",
    )
    stale_after_s: float = Field(10.0, gt=0, description="A modality silent this long contributes nothing.")
    margin: float = Field(0.1, ge=0, le=1, description="A new leader must beat the current label by this much...")
    hold_s: float = Field(0.5, ge=0, description="...for this long before the published label changes.")
    reliability: dict[str, float] = Field(
        default_factory=lambda: {"face": 0.82, "voice": 0.57, "external": 0.5},
        description="Per-modality weight; defaults are the models' measured accuracy (models/README.md).",
    )
    circumplex: dict[str, VA] = Field(default_factory=lambda: dict(DEFAULT_CIRCUMPLEX))

    @field_validator("tau_s", mode="before")
    @classmethod
    def _tau_number(cls, v: Any) -> Any:
        if isinstance(v, int | float) and not isinstance(v, bool):
            return {"face": v, "voice": v, "external": v}
        return v

    @field_validator("tau_s")
    @classmethod
    def _tau_positive(cls, v: dict[str, float]) -> dict[str, float]:
        for name, tau in v.items():
            if not (math.isfinite(tau) and tau > 0):
                raise ValueError(f"tau of '{name}' must be a finite number > 0, got {tau}")
        return v

    def tau(self, modality: str) -> float:
        """The decay time constant of ``modality`` (unlisted ones decay like the slowest listed)."""
        return self.tau_s.get(modality, max(self.tau_s.values(), default=DEFAULT_TAU_S))

    @field_validator("reliability")
    @classmethod
    def _reliability_range(cls, v: dict[str, float]) -> dict[str, float]:
        for name, w in v.items():
            if not (math.isfinite(w) and 0 <= w <= 1):
                raise ValueError(f"reliability of '{name}' must be in [0, 1], got {w}")
        return v

    @field_validator("circumplex")
    @classmethod
    def _circumplex_range(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        missing = sorted(set(DEFAULT_CIRCUMPLEX) - set(v))
        if missing:
            raise ValueError(f"missing labels {missing}")
        unknown = sorted(set(v) - set(DEFAULT_CIRCUMPLEX))
        if unknown:
            raise ValueError(f"unknown labels {unknown}; expected {sorted(DEFAULT_CIRCUMPLEX)}")
        for name, (val, aro) in v.items():
            if not (-1 <= val <= 1 and -1 <= aro <= 1):
                raise ValueError(f"'{name}' must lie in [-1, 1] x [-1, 1], got {(val, aro)}")
        return v


class TlsConfig(Section):
    enabled: bool = False
    ca_file: str = Field("", description="CA bundle; empty = the system's.")
    cert_file: str = Field("", description="Client certificate, optional.")
    key_file: str = Field("", description="Client key, with cert_file.")
    insecure: bool = Field(False, description="Skip the host name check (self-signed test brokers only).")

    @model_validator(mode="after")
    def _cert_and_key(self) -> TlsConfig:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttConfig(Section):
    enabled: bool = True
    host: str = Field("localhost", min_length=1)
    port: int = Field(1883, ge=1, le=65535)
    username: str = ""
    password_file: str = Field(
        "", description=f"File holding the password; or set {PASSWORD_ENV}. Never inline."
    )
    client_id: str = Field("", description="Empty = emomusic-<device id>.")
    keepalive_s: int = Field(30, ge=5, le=3600)
    topic_prefix: str = Field("", description="Empty = emomusic/<device id>.")
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    external_emotion_topics: list[str] = Field(
        default_factory=list, description="Topics where other devices publish an emotion (third modality)."
    )
    max_payload_bytes: int = Field(1024, ge=16, le=1_000_000)
    heartbeat_s: float = Field(30.0, gt=0, description="The state is republished at least this often.")
    min_interval_s: float = Field(1.0, ge=0, description="State updates are sent at most this often.")
    tls: TlsConfig = Field(default_factory=TlsConfig)

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _topic_chars(cls, v: str) -> str:
        if any(c in v for c in "#+\0") or v.endswith("/"):
            raise ValueError("expected a topic without wildcards or a trailing '/'")
        return v

    @field_validator("external_emotion_topics")
    @classmethod
    def _topics(cls, v: list[str]) -> list[str]:
        for t in v:
            if not t or "\0" in t:
                raise ValueError(f"invalid topic {t!r}")
        return v


class ModelsConfig(Section):
    dir: str = Field("", description="Where the model files are; empty = the models/ folder beside the package "
                     "(a checkout), else /opt/emomusic/models.")
    backend: Literal["onnxruntime", "tflite"] = "onnxruntime"
    precision: Literal["int8", "fp32"] = Field("int8", description="Which classifier files to load.")
    threads: int = Field(1, ge=1, le=8, description="Threads per model.")

    @property
    def path(self) -> Path:
        if self.dir:
            return Path(self.dir).expanduser()
        here = Path(__file__).resolve().parents[2] / "models"
        return here if here.is_dir() else Path("/opt/emomusic/models")


class FaceConfig(Section):
    detector: Literal["full", "short"] = Field(
        "full", description="BlazeFace full range (room distance) or short range (within ~2 m, cheaper)."
    )
    score_threshold: float = Field(0.6, gt=0, lt=1, description="Minimum detector score.")
    min_face_px: int = Field(32, ge=8, le=2000, description="Smaller faces are ignored.")
    window_s: float = Field(2.0, gt=0, le=30, description="Sliding window over which a face's expression is pooled.")
    detect_every: int = Field(
        5, ge=1, le=30,
        description="Run the detector on every n-th analysed frame (sooner when a face can no longer be followed); "
        "in between, faces are followed by template matching and classified on every frame.",
    )
    faces: Literal["largest", "all"] = Field("largest", description="Report the largest face, or average all.")


class VoiceConfig(Section):
    vad_aggressiveness: int = Field(2, ge=0, le=3, description="WebRTC VAD mode: 0 lenient ... 3 strict.")
    window_s: float = Field(2.0, ge=1.0, le=4.0, description="Analysis window (the model was trained on 2 s).")
    hop_s: float = Field(1.0, gt=0, le=4.0)
    min_speech_s: float = Field(0.8, gt=0, le=4.0, description="Shorter utterances are ignored.")
    music_margin_db: float = Field(
        10.0, ge=0, le=40, description="While music plays, voice must be this much louder than the music."
    )

    @model_validator(mode="after")
    def _lengths(self) -> VoiceConfig:
        if self.min_speech_s > self.window_s or self.hop_s > self.window_s:
            raise ValueError("min_speech_s and hop_s must not exceed window_s")
        return self


class LibraryConfig(Section):
    folders: list[str] = Field(
        default_factory=list, description="Music folders; empty = the generated demo library in the state dir."
    )
    playlists: list[str] = Field(default_factory=list, description="M3U/M3U8 playlists whose entries are added.")
    csv: str = Field("", description="Mood CSV (path_or_title,artist,mood or the seed list format), imported at scan.")
    analyze: bool = Field(True, description="Place untagged tracks by audio analysis.")
    database: str = Field("", description="SQLite index; empty = <state_dir>/library.db.")
    scan_on_start: bool = Field(True, description="Incremental rescan when the daemon starts.")


class PlayerConfig(Section):
    enabled: bool = Field(True, description="Play music (SDL's dummy driver is used when there is no sound card).")
    mode: Literal["match", "regulate", "fixed", "off"] = "match"
    volume: int = Field(60, ge=0, le=100, description="Percent.")
    fixed_mood: str = Field("calm", description="The mood played in 'fixed' mode (a canonical emotion label).")
    regulate_target: VA = Field((0.5, -0.4), description="Where 'regulate' leads: calm-positive by default.")
    regulate_step: float = Field(0.3, gt=0, le=2, description="Largest valence/arousal step from track to track.")
    queue_length: int = Field(4, ge=1, le=50)
    dwell_s: float = Field(30.0, ge=0, description="The state must hold a new position this long to re-plan.")
    replan_distance: float = Field(0.25, gt=0, le=2, description="How far the state must move to count as new.")
    history: int = Field(20, ge=0, le=1000, description="Recently played tracks are not repeated.")
    fade_ms: int = Field(1500, ge=0, le=10000)

    @field_validator("fixed_mood")
    @classmethod
    def _mood(cls, v: str) -> str:
        if v not in DEFAULT_CIRCUMPLEX:
            raise ValueError(f"expected one of {sorted(DEFAULT_CIRCUMPLEX)}")
        return v

    @field_validator("regulate_target")
    @classmethod
    def _target(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(-1 <= x <= 1 for x in v):
            raise ValueError("expected [valence, arousal] in [-1, 1]")
        return v


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


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

    # Resolved at load time, not part of the file.
    _mqtt_password: str | None = PrivateAttr(None)
    _origin: str = PrivateAttr("defaults")

    @property
    def mqtt_password(self) -> str | None:
        return self._mqtt_password

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


def _read_secret(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except PermissionError as e:
        raise ConfigError(
            f"mqtt.password_file: {path} is not readable by this user (uid {os.getuid()}): {e.strerror}"
        ) from e
    except OSError as e:
        raise ConfigError(f"mqtt.password_file: cannot read {path}: {e.strerror or e}") from e


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
    mqtt = data.get("mqtt")
    if isinstance(mqtt, dict) and "password" in mqtt:
        raise ConfigError(
            f"{origin}: mqtt.password: not allowed inline; "
            f"put it in {PASSWORD_ENV} or a file named by mqtt.password_file"
        )
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(origin, e, used)) from None
    password = env.get(PASSWORD_ENV) or (_read_secret(cfg.mqtt.password_file) if cfg.mqtt.password_file else None)
    cfg._mqtt_password = password
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
