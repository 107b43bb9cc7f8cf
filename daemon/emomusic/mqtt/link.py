"""The MQTT connection: availability with last will, auth/TLS, reconnect, re-subscribe.

paho-mqtt 2.x runs its own network thread (``loop_start``) and reconnects by itself after
``connect_async``; this class only keeps the list of subscriptions and re-establishes them,
and the birth message, in ``on_connect`` — a broker restart loses both.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from emomusic.config import Config

log = logging.getLogger("emomusic.mqtt")

ONLINE = "online"
OFFLINE = "offline"


def make_client(cfg: Config, client_id: str) -> mqtt.Client:
    """A paho client with the configured credentials and TLS (used by the daemon and the CLI)."""
    m = cfg.mqtt
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    if m.username:
        client.username_pw_set(m.username, cfg.mqtt_password)
    if m.tls.enabled:
        client.tls_set(
            ca_certs=m.tls.ca_file or None,
            certfile=m.tls.cert_file or None,
            keyfile=m.tls.key_file or None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(m.tls.insecure)
    return client


class MqttLink:
    """Owns one paho client. Callbacks run on paho's thread: keep them short."""

    def __init__(
        self,
        cfg: Config,
        on_message: Callable[[str, bytes], None],
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.prefix = cfg.topic_prefix
        self.availability_topic = f"{self.prefix}/availability"
        self.on_message_cb = on_message
        self.on_connected_cb = on_connected
        self.subscriptions: list[str] = []
        self.connected = threading.Event()
        self.connect_count = 0
        self.stopping = False
        self.client = make_client(cfg, cfg.mqtt.client_id or f"emomusic-{cfg.device_id}")
        self.client.will_set(self.availability_topic, OFFLINE, qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_queued_messages_set(1000)  # bounded while the broker is away
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_socket_open = self._on_socket_open

    def subscribe(self, topic: str) -> None:
        """Subscribe now if connected, and again after every reconnect."""
        if topic not in self.subscriptions:
            self.subscriptions.append(topic)
            if self.connected.is_set():
                self.client.subscribe(topic, qos=1)

    def start(self) -> None:
        m = self.cfg.mqtt
        log.info("connecting to %s:%d%s as %s", m.host, m.port, " (TLS)" if m.tls.enabled else "",
                 m.username or "anonymous")
        self.client.connect_async(m.host, m.port, keepalive=m.keepalive_s)
        self.client.loop_start()

    def publish(self, topic: str, payload: str | bytes, retain: bool = False, qos: int = 0) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.debug("publish to %s not queued: %s", topic, mqtt.error_string(info.rc))

    def stop(self, timeout: float = 2.0) -> None:
        """Say ``offline`` (retained) and disconnect; a clean stop must not leave ``online`` behind."""
        self.stopping = True
        if self.connected.is_set():
            info = self.client.publish(self.availability_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                log.warning("could not confirm the offline message")
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    # -- paho callbacks -----------------------------------------------------------------------
    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        try:
            raw = sock if isinstance(sock, socket.socket) else getattr(sock, "_socket", sock)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        self.connect_count += 1
        log.info("connected to the broker")
        client.publish(self.availability_topic, ONLINE, qos=1, retain=True)
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        self.connected.set()
        if self.on_connected_cb:
            self.on_connected_cb()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if self.connected.is_set() and not self.stopping:
            log.warning("disconnected from the broker (%s); reconnecting", reason_code)
        self.connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.on_message_cb(msg.topic, bytes(msg.payload))
        except Exception:  # a handler bug must not kill paho's network thread
            log.exception("handling a message on %s failed", msg.topic)
