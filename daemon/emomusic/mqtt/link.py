"""The MQTT connection: availability with last will, auth/TLS, reconnect, re-subscribe.

paho-mqtt 2.x runs its own network thread (``loop_start``) and reconnects by itself after
``connect_async``; this class only keeps the list of subscriptions and re-establishes them,
and the birth message, in ``on_connect`` — a broker restart loses both.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from emomusic.config import Config, HouseConfig
from emomusic.config.mqtt import MqttConfig, TlsConfig

log = logging.getLogger("emomusic.mqtt")

ONLINE = "online"
OFFLINE = "offline"
# paho backs off 1, 2, 4 s... between reconnect attempts; capped here so that a broker that comes
# back after a long outage is found within 5 s (README, docs/RELIABILITY.md).
RECONNECT_MAX_S = 4


@dataclass(frozen=True)
class MqttSettings:
    """What the MQTT side is given of the config: its own section and who this device is."""

    mqtt: MqttConfig
    device_id: str
    device_name: str
    prefix: str  # <base_topic>/<device_id>
    password: str | None
    room: str = ""
    house: HouseConfig | None = None  # follow the house (None: this daemon keeps to itself)

    @classmethod
    def of(cls, cfg: Config) -> MqttSettings:
        return cls(cfg.mqtt, cfg.device_id, cfg.device.name, cfg.topic_prefix, cfg.mqtt_password, cfg.device.room,
                   cfg.house if cfg.house.enabled else None)

    @property
    def house_base(self) -> str | None:
        """The topic base shared by the house's daemons (``emomusic`` of ``emomusic/<device>``), when the
        house is followed; None for a one-level prefix."""
        base, _, _ = self.prefix.rpartition("/")
        return base if base and self.house is not None else None


def tls_context(t: TlsConfig) -> ssl.SSLContext:
    """The TLS settings as one context, shared by the client and the diagnosis of a failed connect."""
    ctx = ssl.create_default_context(cafile=t.ca_file or None)
    if t.cert_file:
        ctx.load_cert_chain(t.cert_file, t.key_file or None)
    ctx.check_hostname = not t.insecure
    return ctx


def make_client(ms: MqttSettings, client_id: str) -> mqtt.Client:
    """A paho client with the configured credentials and TLS (used by the daemon and the CLI)."""
    m = ms.mqtt
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    if m.username:
        client.username_pw_set(m.username, ms.password)
    if m.tls.enabled:
        client.tls_set_context(tls_context(m.tls))
        client.tls_insecure_set(m.tls.insecure)
    return client


def diagnose_connection(m: MqttConfig, timeout: float = 3.0) -> str | None:
    """Why a connection to the broker fails below MQTT (refused, unreachable, a TLS handshake error
    such as an unknown CA, an expired certificate or the wrong host name), or None if TCP and TLS
    work. paho only says that it failed; this says why."""
    try:
        with socket.create_connection((m.host, m.port), timeout=timeout) as sock:
            if m.tls.enabled:
                with tls_context(m.tls).wrap_socket(sock, server_hostname=m.host):
                    pass
    except ssl.SSLCertVerificationError as e:
        return (f"TLS: certificate verify failed: {e.verify_message or e.reason} "
                "(check mqtt.tls.ca_file and the broker's certificate)")
    except ssl.SSLError as e:
        return f"TLS handshake failed: {e.reason or e}"
    except OSError as e:
        return f"{e.strerror or e}"
    return None


class MqttLink:
    """Owns one paho client. Callbacks run on paho's thread: keep them short."""

    def __init__(
        self,
        ms: MqttSettings,
        on_message: Callable[[str, bytes], None],
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.ms = ms
        self.prefix = ms.prefix
        self.availability_topic = f"{self.prefix}/availability"
        self.on_message_cb = on_message
        self.on_connected_cb = on_connected
        self.subscriptions: list[str] = []
        # Who this daemon is, retained on …/instance: a second daemon with the same device id (two Pis
        # both called "raspberrypi") would take this one's client id over and over; the marker tells them apart.
        self.instance_topic = f"{self.prefix}/instance"
        self.instance = {"instance": uuid.uuid4().hex, "started": round(time.time(), 3),
                         "host": socket.gethostname(), "pid": os.getpid(), "room": ms.room}
        self.conflict: str | None = None  # set when a newer daemon with our id was seen: MQTT given up
        self.connected = threading.Event()
        self.connect_count = 0
        self.stopping = False
        self.client = make_client(ms, ms.mqtt.client_id or f"emomusic-{ms.device_id}")
        self.client.will_set(self.availability_topic, OFFLINE, qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
        self.last_error: str | None = None  # why the broker cannot be reached now; logged when it changes
        self.client.max_queued_messages_set(1000)  # bounded while the broker is away
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
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
        m = self.ms.mqtt
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
        if self.conflict is not None:
            return  # already disconnected; the twin's availability is not ours to change
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

    def _report(self, error: str) -> None:
        """Log why connecting fails: once per distinct reason, again when the reason changes."""
        if error == self.last_error:
            log.debug("still cannot connect: %s", error)
            return
        self.last_error = error
        m = self.ms.mqtt
        log.error("cannot connect to the broker %s:%d%s: %s; retrying every %d s", m.host, m.port,
                  " (TLS)" if m.tls.enabled else "", error, RECONNECT_MAX_S)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._report(diagnose_connection(self.ms.mqtt) or "the connection failed")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._report(f"the broker refused the connection: {reason_code}")
            return
        self.connect_count += 1
        log.info("connected to the broker%s", f" (after: {self.last_error})" if self.last_error else "")
        self.last_error = None
        # Subscriptions first: a command sent the moment someone sees "online" must find them in place
        # (the broker handles one connection's packets in order).
        client.subscribe(self.instance_topic, qos=1)
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        client.publish(self.availability_topic, ONLINE, qos=1, retain=True)
        client.publish(self.instance_topic, json.dumps(self.instance), qos=1, retain=True)
        self.connected.set()
        if self.on_connected_cb:
            self.on_connected_cb()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if self.connected.is_set() and not self.stopping:
            log.warning("disconnected from the broker (%s); reconnecting", reason_code)
        self.connected.clear()

    def _on_instance(self, payload: bytes) -> None:
        """Another daemon's marker on our topic. The one started later keeps the id; an older marker
        (this device's previous run, or an older twin that will see ours) is overwritten by ours."""
        try:
            other = json.loads(payload)
            newer = (float(other["started"]), str(other["instance"])) > (self.instance["started"],
                                                                        self.instance["instance"])
        except (ValueError, KeyError, TypeError):
            return
        if other["instance"] == self.instance["instance"] or not newer or self.conflict is not None:
            return
        self.conflict = (f"another emomusic daemon uses device id '{self.ms.device_id}' (host {other.get('host')}, "
                         f"pid {other.get('pid')}), so the two take each other's MQTT connection")
        log.error("%s: giving up MQTT here (the newer daemon keeps the id); give each device its own "
                  "device.id or EMOMUSIC_DEVICE_ID, then restart this one", self.conflict)
        threading.Thread(target=self._give_up, name="mqtt-give-up", daemon=True).start()

    def _give_up(self) -> None:
        """Disconnect for good without saying offline: the twin is online under these topics."""
        self.stopping = True
        self.connected.clear()
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.instance_topic:
            self._on_instance(bytes(msg.payload))
            return
        try:
            self.on_message_cb(msg.topic, bytes(msg.payload))
        except Exception:  # a handler bug must not kill paho's network thread
            log.exception("handling a message on %s failed", msg.topic)
