"""MQTT over TLS with username/password, against a mosquitto configured for both."""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from emomusic.config import parse_config
from emomusic.service.daemon import Daemon

from conftest import Broker
from fakes import factories


def secure_probe(port: int, ca: Path, topic: str) -> tuple[mqtt.Client, list[mqtt.MQTTMessage], threading.Event]:
    got: list[mqtt.MQTTMessage] = []
    ev = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2)
    c.username_pw_set("emomusic", "s3cret pass")
    c.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic)

    def on_message(cl: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        got.append(m)
        ev.set()

    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, got, ev


def test_daemon_publishes_over_tls_with_a_password_from_the_environment(tls_broker: Broker, tmp_path: Path) -> None:
    data = {"device": {"id": "tls", "state_dir": str(tmp_path / "state")},
            "camera": {"enabled": False}, "microphone": {"enabled": False}, "player": {"enabled": False},
            "mqtt": {"host": "localhost", "port": tls_broker.port, "username": "emomusic",
                     "tls": {"enabled": True, "ca_file": str(tmp_path / "ca.crt")},
                     "external_emotion_topics": ["room/emotion"]}}
    cfg = parse_config(data, env={"EMOMUSIC_MQTT_PASSWORD": "s3cret pass"})
    daemon = Daemon(cfg, analyzers=factories())
    daemon.start()
    client, got, ev = secure_probe(tls_broker.port, tmp_path / "ca.crt", "emomusic/tls/#")
    try:
        assert daemon.bridge.link.connected.wait(10), "the daemon did not connect over TLS"
        end = time.monotonic() + 10
        while time.monotonic() < end and not any(m.topic == "emomusic/tls/availability" for m in got):
            time.sleep(0.05)
        time.sleep(0.3)  # let the daemon's subscription settle
        client.publish("room/emotion", "happy", qos=1)
        end = time.monotonic() + 10
        while time.monotonic() < end and not any(m.topic == "emomusic/tls/state" and b'"happy"' in m.payload
                                                 for m in got):
            time.sleep(0.05)
        seen = [(m.topic, m.payload[:60]) for m in got]
        assert any(m.topic == "emomusic/tls/availability" and m.payload == b"online" for m in got), seen
        assert any(m.topic == "emomusic/tls/state" and b'"happy"' in m.payload for m in got)
    finally:
        client.loop_stop()
        client.disconnect()
        daemon.stop()


def test_wrong_password_is_refused_and_the_daemon_keeps_running(tls_broker: Broker, tmp_path: Path) -> None:
    data = {"device": {"id": "tls2", "state_dir": str(tmp_path / "state")},
            "camera": {"enabled": False}, "microphone": {"enabled": False}, "player": {"enabled": False},
            "mqtt": {"host": "localhost", "port": tls_broker.port, "username": "emomusic",
                     "tls": {"enabled": True, "ca_file": str(tmp_path / "ca.crt")}}}
    cfg = parse_config(data, env={"EMOMUSIC_MQTT_PASSWORD": "wrong"})
    daemon = Daemon(cfg, analyzers={})
    daemon.start()
    try:
        time.sleep(2.0)
        assert not daemon.bridge.connected  # never marked connected when the broker refused
        assert daemon.healthy()
    finally:
        daemon.stop()
