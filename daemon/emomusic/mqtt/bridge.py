"""The daemon's MQTT face: a state sink outward, commands and other devices' emotions inward.

Outward, the fused state is retained on ``…/state``, sent when it changes noticeably (at most every
``min_interval_s``) and at least every ``heartbeat_s``; per-modality estimates go to
``…/modality/<name>``. Inward, every payload is validated (:mod:`emomusic.commands`); a rejected one
is answered on ``…/error`` and logged, and never reaches the pipeline.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from emomusic.commands import COMMAND_TOPICS, Command, PayloadError, parse_command, parse_external_emotion
from emomusic.house.view import HouseView
from emomusic.messages import FusedState, Observation, PlayerStatus, Quiet
from emomusic.mqtt.discovery import discovery_messages
from emomusic.mqtt.link import MqttLink, MqttSettings
from emomusic.queues import RateLimiter

log = logging.getLogger("emomusic.mqtt")

HA_STATUS_SUFFIX = "/status"
STAGES = ("music",)  # parts whose faults are {"stage", "error"}; any other part is a modality
ERROR_BURST, ERROR_INTERVAL_S = 5, 10.0  # rejected messages answered per topic per interval
HOUSE_SETTLE_S = 3.0  # after a (re)connect, the other rooms' retained availability is heard before leading


def _significant(a: dict[str, Any] | None, b: dict[str, Any], deadband: float) -> bool:
    """Whether a new state differs enough from the last one sent to be worth a message: another
    label, or valence/arousal moved by ``deadband``. Confidence alone jitters with every frame and
    would cost Home Assistant a recorder row each time; it rides along with the heartbeat."""
    if a is None or a["emotion"] != b["emotion"]:
        return True
    if a["valence"] is None or b["valence"] is None:  # one side unknown: significant unless both are
        return (a["valence"] is None) != (b["valence"] is None)
    return any(abs(a[k] - b[k]) >= deadband for k in ("valence", "arousal"))


class MqttBridge(Quiet):
    """Publishes states and controls; routes validated inbound messages to callbacks."""

    def __init__(
        self,
        ms: MqttSettings,
        on_command: Callable[[Command], None],
        on_observation: Callable[[Observation], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ms = ms
        self.prefix = ms.prefix
        self.on_command = on_command
        self.on_observation = on_observation
        self.clock = clock
        self.link = MqttLink(ms, self._on_message, self._on_connected)
        self._lock = threading.Lock()
        self._last_sent: dict[str, Any] | None = None
        self._last_sent_at = -math.inf
        self._last_state: dict[str, Any] | None = None
        self._retained: dict[str, str] = {}  # topic -> payload, re-sent after a reconnect
        self._pending_faults: list[str] = []  # faults seen while not connected, sent on connect
        self._modality_status: dict[str, dict[str, str]] = {}
        self.rejected = 0
        self._errors = RateLimiter(burst=ERROR_BURST, interval_s=ERROR_INTERVAL_S, clock=clock)
        self.ha_status_topic = f"{ms.mqtt.discovery_prefix}{HA_STATUS_SUFFIX}"
        for sub in COMMAND_TOPICS:
            self.link.subscribe(f"{self.prefix}/{sub}")
        for topic in ms.mqtt.external_emotion_topics:
            self.link.subscribe(topic)
        if ms.mqtt.discovery:
            self.link.subscribe(self.ha_status_topic)
        # the other rooms' daemons under the same base (house/view.py); this one's own topics come back too
        self.house: HouseView | None = None
        self._mood_sent: tuple[str, float] | None = None  # (what, when) of the house mood we last published
        self._house_since = math.inf  # when we (re)connected: no mood before the house has been heard
        if ms.house_base is not None and ms.house is not None:
            self.house = HouseView(ms.house_base, ms.device_id, ms.house.sure, ms.room)
            for topic in self.house.topics():
                self.link.subscribe(topic)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.link.start()

    def stop(self) -> None:
        self.link.stop()

    @property
    def connected(self) -> bool:
        return self.link.connected.is_set()

    # -- outward --------------------------------------------------------------------------------
    def on_state(self, state: FusedState) -> None:
        """Sink interface: decide whether this state goes out now."""
        payload = state.to_json()
        now = self.clock()
        with self._lock:
            self._last_state = payload
            m = self.ms.mqtt
            due = now - self._last_sent_at >= m.heartbeat_s
            if not due and (now - self._last_sent_at < m.min_interval_s
                            or not _significant(self._last_sent, payload, m.state_deadband)):
                return
            self._last_sent, self._last_sent_at = payload, now
        self._publish_state(payload)
        for name, est in state.modalities.items():
            status = self._modality_status.get(name, {"status": "running", "detail": ""})
            self.link.publish(f"{self.prefix}/modality/{name}", json.dumps(est.to_json() | status))

    def heartbeat(self) -> None:
        """Resend the latest state if nothing went out for ``heartbeat_s``; report suppressed rejections;
        publish the house mood while this daemon is the house's lowest online id."""
        self.report_suppressed()
        self._house_mood()
        with self._lock:
            stale = self._last_state is not None and self.clock() - self._last_sent_at >= self.ms.mqtt.heartbeat_s
            payload = self._last_state
            if stale:
                self._last_sent, self._last_sent_at = payload, self.clock()
        if stale and payload is not None:
            self._publish_state(payload)

    def send_to_room(self, device: str, subtopic: str, payload: str) -> str | None:
        """A command (already validated by the caller) for another room's daemon, which validates it again.
        Only rooms the house view knows; returns why it was not sent, or None."""
        if self.house is None:
            return "this daemon does not follow the house (house.enabled = false)"
        if device not in {r["device"] for r in self.house.rooms()}:
            return f"no room with the device id {device[:64]!r} on this broker"
        if not self.connected:
            return "not connected to the broker"
        self.link.publish(f"{self.house.base}/{device}/{subtopic}", payload, qos=1)
        return None

    def offer_handoff(self, payload: dict[str, Any] | None) -> None:
        """This room's music, offered to the house (retained on …/handoff; house/follow.py); None clears it."""
        self._publish_retained(f"{self.prefix}/handoff", "" if payload is None else json.dumps(payload))

    def take_handoff(self, device: str) -> None:
        """Mark another room's offer taken by this one (retained on its …/handoff)."""
        if self.house is not None:
            self.link.publish(f"{self.house.base}/{device}/handoff",
                              json.dumps({"taken_by": self.ms.device_id, "taken_room": self.ms.room}),
                              retain=True, qos=1)

    def _house_mood(self) -> None:
        settled = self.clock() - self._house_since >= HOUSE_SETTLE_S  # else a lower id may not be heard yet
        if self.house is None or not self.connected or not settled or self.house.leader() != self.ms.device_id:
            self._mood_sent = None  # not ours (now): when it becomes ours again, say it at once
            return
        mood = self.house.mood()
        if mood is None:
            return
        what = json.dumps({k: v for k, v in mood.items() if k != "seen"})  # a change, not merely a newer time
        now = self.clock()
        sent = self._mood_sent
        if sent is None or sent[0] != what or now - sent[1] >= self.ms.mqtt.heartbeat_s:
            self._mood_sent = (what, now)
            self.link.publish(self.house.mood_topic, json.dumps(mood | {"published_by": self.ms.device_id}),
                              retain=True, qos=1)

    def _publish_state(self, payload: dict[str, Any]) -> None:
        """The retained state, stamped with the wall time it was sent (UTC): after the daemon is gone
        it tells since when nothing was heard (``emomusic status``)."""
        sent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._publish_retained(f"{self.prefix}/state", json.dumps(payload | {"time": sent}))

    def on_controls(self, mode: str, volume: int, mood: str) -> None:
        self._publish_retained(f"{self.prefix}/mode", mode)
        self._publish_retained(f"{self.prefix}/volume", str(volume))
        self._publish_retained(f"{self.prefix}/mood", mood)

    def on_player(self, status: PlayerStatus) -> None:
        """Now playing, queue length, mode and target mood (retained)."""
        self._publish_retained(f"{self.prefix}/player", json.dumps(status.to_json()))

    def on_modality_status(self, name: str, status: str, detail: str) -> None:
        """Health of a modality's source or analyzer (e.g. the camera failed), on ``…/modality/<name>``."""
        self._modality_status[name] = {"status": status, "detail": detail}
        payload = {"modality": name, "emotion": None, "status": status, "detail": detail}
        self._publish_retained(f"{self.prefix}/modality/{name}", json.dumps(payload))

    def on_fault(self, part: str, error: str) -> None:
        """A part of the daemon stopped working (not a rejected message) on ``…/error``: a modality
        (``{"modality", "error"}``) or another stage such as music (``{"stage", "error"}``)."""
        key = "stage" if part in STAGES else "modality"
        payload = json.dumps({key: part, "error": error})
        # Held here until the broker has accepted our connection: paho may put a message that is
        # published while it connects ahead of the CONNECT packet, and the broker then drops both.
        with self._lock:
            if not self.link.connected.is_set():
                self._pending_faults.append(payload)
                return
        self.link.publish(f"{self.prefix}/error", payload, qos=1)

    def on_refusal(self, topic: str, error: str) -> None:
        """A valid command that cannot act now, answered on ``…/error`` (the log says it too)."""
        self._answer(f"{self.prefix}/{topic}", error)

    def publish_error(self, topic: str, error: str) -> None:
        """Answer a rejected message on ``…/error`` and in the log."""
        if self._answer(topic, error):
            log.warning("rejected message on %s: %s", topic, error)

    def _answer(self, topic: str, error: str) -> bool:
        """On ``…/error``, within the rate limit: a flood of bad messages costs a few answers per interval
        and one summary, not one answer each. False when it was held back."""
        self.rejected += 1
        if not self._errors.allow(topic):
            return False
        self.link.publish(f"{self.prefix}/error", json.dumps({"topic": topic, "error": error}))
        return True

    def report_suppressed(self) -> None:
        """Say how many rejections went unanswered in each finished interval (called by the heartbeat)."""
        for topic, n in self._errors.drain().items():
            error = f"{n} more rejected messages in {ERROR_INTERVAL_S:.0f} s were not answered one by one"
            log.warning("rejected messages on %s: %s", topic, error)
            # QoS 1: after a flood the broker may still be draining a subscriber's queue, and drops QoS 0
            self.link.publish(f"{self.prefix}/error", json.dumps({"topic": topic, "error": error, "suppressed": n}),
                              qos=1)

    def publish_discovery(self) -> None:
        if not self.ms.mqtt.discovery:
            return
        for topic, payload in discovery_messages(self.ms):
            self.link.publish(topic, json.dumps(payload), retain=True, qos=1)

    def _publish_retained(self, topic: str, payload: str) -> None:
        """Send now if connected; remember it either way so a (re)connect sends the latest value."""
        with self._lock:
            self._retained[topic] = payload
        if self.connected:
            self.link.publish(topic, payload, retain=True, qos=1)

    def _on_connected(self) -> None:
        self._house_since = self.clock()  # the rooms' retained topics arrive in the next moments
        self.publish_discovery()
        with self._lock:
            retained = dict(self._retained)
            faults, self._pending_faults = self._pending_faults[-20:], []
        for topic, payload in retained.items():
            self.link.publish(topic, payload, retain=True, qos=1)
        for payload in faults:
            self.link.publish(f"{self.prefix}/error", payload, qos=1)

    # -- inward ---------------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes) -> None:
        limit = self.ms.mqtt.max_payload_bytes
        if topic == self.ha_status_topic:
            if payload[:16].strip().lower() == b"online":
                log.info("Home Assistant is online: re-sending discovery")
                self.publish_discovery()
            return
        if self.house is not None and (self.house.accepts(topic) or topic == self.house.mood_topic):
            if topic != self.house.mood_topic:  # (the mood is ours to send, not to read)
                self.house.on_message(topic, payload)
            return
        try:
            if topic.startswith(self.prefix + "/"):
                sub = topic[len(self.prefix) + 1 :]
                if sub in COMMAND_TOPICS:
                    self.on_command(parse_command(sub, payload, limit))
                    return
            if any(mqtt.topic_matches_sub(sub, topic) for sub in self.ms.mqtt.external_emotion_topics):
                self.on_observation(parse_external_emotion(payload, limit, self.clock()))
                return
            raise PayloadError("not a topic this daemon accepts")
        except PayloadError as e:
            self.publish_error(topic, str(e))
        except Exception as e:  # a parser bug must still answer, never escape into paho's thread
            log.debug("unexpected failure parsing a message on %s", topic, exc_info=True)
            self.publish_error(topic, f"could not parse the payload ({type(e).__name__})")
