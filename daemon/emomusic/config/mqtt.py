"""Settings of the MQTT link: broker, auth, TLS, topics, Home Assistant discovery."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, field

from emomusic.config.base import Section

PASSWORD_ENV = "EMOMUSIC_MQTT_PASSWORD"


class TlsConfig(Section, frozen=True):
    enabled: bool = False
    ca_file: Annotated[str, Meta(description="CA bundle; empty = the system's.")] = ""
    cert_file: Annotated[str, Meta(description="Client certificate, optional.")] = ""
    key_file: Annotated[str, Meta(description="Client key, with cert_file.")] = ""
    insecure: Annotated[bool, Meta(description="Skip the host name check (self-signed test brokers only).")] = False

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together")


class MqttConfig(Section, frozen=True):
    enabled: bool = True
    host: Annotated[str, Meta(min_length=1)] = "localhost"
    port: Annotated[int, Meta(ge=1, le=65535)] = 1883
    username: str = ""
    password_file: Annotated[
        str, Meta(description=f"File holding the password; or set {PASSWORD_ENV}. Never inline.")
    ] = ""
    client_id: Annotated[str, Meta(description="Empty = emomusic-<device id>.")] = ""
    keepalive_s: Annotated[int, Meta(ge=5, le=3600)] = 30
    topic_prefix: Annotated[str, Meta(description="Empty = emomusic/<device id>.")] = ""
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    external_emotion_topics: Annotated[
        list[str], Meta(description="Topics where other devices publish an emotion (third modality).")
    ] = field(default_factory=list)
    max_payload_bytes: Annotated[int, Meta(ge=16, le=1_000_000)] = 1024
    heartbeat_s: Annotated[float, Meta(gt=0, description="The state is republished at least this often.")] = 30.0
    min_interval_s: Annotated[float, Meta(ge=0, description="State updates are sent at most this often.")] = 1.0
    state_deadband: Annotated[
        float,
        Meta(
            ge=0,
            le=2,
            description="The state is sent when the label changes or valence/arousal move this much "
            "(and at every heartbeat).",
        ),
    ] = 0.25
    tls: TlsConfig = field(default_factory=TlsConfig)

    def __post_init__(self) -> None:
        for name in ("topic_prefix", "discovery_prefix"):
            v = getattr(self, name)
            if any(c in v for c in "#+\0") or v.endswith("/"):
                raise ValueError(f"{name}: expected a topic without wildcards or a trailing '/'")
        for t in self.external_emotion_topics:
            if not t or "\0" in t:
                raise ValueError(f"external_emotion_topics: invalid topic {t!r}")
