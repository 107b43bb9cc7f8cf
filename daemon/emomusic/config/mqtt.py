"""Settings of the MQTT link: broker, auth, TLS, topics, Home Assistant discovery."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from emomusic.config.base import Section

PASSWORD_ENV = "EMOMUSIC_MQTT_PASSWORD"


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
    state_deadband: float = Field(
        0.25, ge=0, le=2, description="The state is sent when the label changes or valence/arousal move this much "
        "(and at every heartbeat).")
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
