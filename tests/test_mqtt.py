"""The daemon against a real mosquitto: retained state, discovery, commands, external emotions,
and recovery after the broker is killed and restarted."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emomusic.config import Config, parse_config
from emomusic.mqtt.discovery import REQUIRED_KEYS
from emomusic.service.daemon import Daemon
from emomusic.sources.samples import ensure_samples

from conftest import Broker, Probe, wait
from fakes import factories

PREFIX = "emomusic/testdev"


def config(broker: Broker, tmp_path: Path, **sections: Any) -> Config:
    data: dict[str, Any] = {
        "device": {"id": "testdev", "state_dir": str(tmp_path / "state")},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "heartbeat_s": 2.0, "min_interval_s": 0.2},
    }
    for key, value in sections.items():
        data[key] = data.get(key, {}) | value
    return parse_config(data, env={})


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return ensure_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture
def running(broker: Broker, tmp_path: Path, samples: tuple[Path, Path]) -> Iterator[Callable[..., Daemon]]:
    daemons: list[Daemon] = []

    def start(cfg: Config | None = None, analyzers: dict | None = None) -> Daemon:
        d = Daemon(
            cfg or config(broker, tmp_path), camera=str(samples[0]), microphone=str(samples[1]),
            analyzers=factories() if analyzers is None else analyzers,
        )
        d.start()
        daemons.append(d)
        return d

    yield start
    for d in daemons:
        d.stop()


def test_state_availability_and_discovery(broker: Broker, running: Callable[..., Daemon],
                                          probe_factory: Callable[..., Probe]) -> None:
    running()
    live = probe_factory(broker.port, [f"{PREFIX}/#"])
    state = live.wait_for(f"{PREFIX}/state", lambda m: m.json()["emotion"] == "happy").json()
    assert {"emotion", "confidence", "valence", "arousal", "probabilities", "modalities"} <= state.keys()
    assert state["valence"] > 0.3 and 0 < state["confidence"] <= 1
    assert set(state["modalities"]) == {"face", "voice"} or set(state["modalities"]) == {"face"}
    face = live.wait_for(f"{PREFIX}/modality/face", lambda m: m.json().get("emotion") == "happy").json()
    assert face["status"] == "running"
    live.wait_for(f"{PREFIX}/modality/voice", lambda m: m.json().get("emotion") == "happy")

    # A late subscriber gets everything that matters as retained messages.
    late = probe_factory(broker.port, [f"{PREFIX}/#", "homeassistant/#"])
    for topic, expected in [("availability", b"online"), ("mode", b"match"), ("volume", b"60")]:
        m = late.wait_for(f"{PREFIX}/{topic}")
        assert m.retain and m.payload == expected
    assert late.wait_for(f"{PREFIX}/state").retain
    configs = []
    end = time.monotonic() + 5
    while len(configs) < 17 and time.monotonic() < end:
        configs = [m for m in late.messages if m.topic.endswith("/config")]
        time.sleep(0.05)
    house = [m for m in configs if "/emomusic_house_" in m.topic]  # the house's mood sensor (test_house.py)
    configs = [m for m in configs if m not in house]
    assert len(house) == 1 and len(configs) == 16  # 14, and a sensor per sensed modality (config.modalities)
    devices = set()
    for m in configs:
        assert m.retain
        component = m.topic.split("/")[1]
        payload = m.json()
        for key in REQUIRED_KEYS[component]:
            assert key in payload, f"{m.topic} lacks {key}"
        assert payload["availability_topic"] == f"{PREFIX}/availability"
        devices.add(json.dumps(payload["device"], sort_keys=True))
        if payload["unique_id"].endswith("_feeling"):  # "I feel …": a statement sent once, no state
            assert payload["command_topic"] == f"{PREFIX}/feedback/set" and "state_topic" not in payload
        if component == "button" and payload["payload_press"] in ("like", "dislike"):
            assert payload["command_topic"] == f"{PREFIX}/player/set"
        if component == "sensor" and payload["unique_id"].endswith("_emotion"):
            if payload["unique_id"].endswith(("_face_emotion", "_voice_emotion")):
                assert payload["state_topic"].startswith(f"{PREFIX}/modality/")
            else:
                assert payload["device_class"] == "enum" and "happy" in payload["options"]
                assert payload["json_attributes_topic"] == f"{PREFIX}/state"
    assert len(devices) == 1  # one shared device block


def test_commands_are_validated_and_applied(broker: Broker, running: Callable[..., Daemon],
                                            probe_factory: Callable[..., Probe]) -> None:
    daemon = running()
    p = probe_factory(broker.port, [f"{PREFIX}/#"])
    p.wait_for(f"{PREFIX}/availability", lambda m: m.payload == b"online")
    for _ in range(20):  # the supervisor applies commands; drive it as run() would
        daemon.supervise_once()
    n = len(p.messages)
    p.publish(f"{PREFIX}/mode/set", "party")
    err = p.wait_for(f"{PREFIX}/error", after=n).json()
    assert err == {"topic": f"{PREFIX}/mode/set", "error": "expected one of match, regulate, fixed, off, got 'party'"}
    p.publish(f"{PREFIX}/volume/set", b"x" * 5000)
    assert "exceeds the limit" in p.wait_for(f"{PREFIX}/error", lambda m: b"exceeds" in m.payload).json()["error"]
    p.publish(f"{PREFIX}/player/set", b"\xff")
    p.wait_for(f"{PREFIX}/error", lambda m: b"UTF-8" in m.payload)

    p.publish(f"{PREFIX}/mode/set", "regulate")
    p.publish(f"{PREFIX}/volume/set", "35")
    end = time.monotonic() + 5
    while (daemon.controls.mode, daemon.controls.volume) != ("regulate", 35) and time.monotonic() < end:
        daemon.supervise_once()
        time.sleep(0.05)
    p.wait_for(f"{PREFIX}/mode", lambda m: m.payload == b"regulate")
    p.wait_for(f"{PREFIX}/volume", lambda m: m.payload == b"35")
    assert daemon.bridge.rejected == 3
    assert daemon.healthy()


def test_external_emotion_topic_is_a_third_modality(broker: Broker, tmp_path: Path, running: Callable[..., Daemon],
                                                    probe_factory: Callable[..., Probe]) -> None:
    cfg = config(broker, tmp_path, mqtt={"external_emotion_topics": ["home/+/emotion"]},
                 camera={"enabled": False}, microphone={"enabled": False})
    running(cfg, analyzers={})
    p = probe_factory(broker.port, [f"{PREFIX}/#"])
    p.wait_for(f"{PREFIX}/availability", lambda m: m.payload == b"online")
    time.sleep(0.3)  # let the daemon's subscription settle
    p.publish("home/kitchen/emotion", json.dumps({"emotion": "sadness", "confidence": 0.9}))
    state = p.wait_for(f"{PREFIX}/state", lambda m: m.json()["emotion"] == "sad").json()
    assert list(state["modalities"]) == ["external"]
    assert state["valence"] < 0
    p.publish("home/kitchen/emotion", json.dumps({"emotion": "sad", "confidence": float("nan")}))
    err = p.wait_for(f"{PREFIX}/error").json()
    assert err["topic"] == "home/kitchen/emotion" and "confidence must be in [0, 1]" in err["error"]


def test_home_assistant_restart_gets_discovery_again(broker: Broker, running: Callable[..., Daemon],
                                                     probe_factory: Callable[..., Probe]) -> None:
    running()
    p = probe_factory(broker.port, ["homeassistant/+/+/+/config", f"{PREFIX}/availability"])
    p.wait_for(f"{PREFIX}/availability", lambda m: m.payload == b"online")
    p.wait_for("homeassistant/sensor/+/emotion/config")
    n = len(p.messages)
    p.publish("homeassistant/status", "online")
    m = p.wait_for("homeassistant/sensor/+/emotion/config", after=n)
    assert not m.retain  # a fresh publish, not the retained copy


def test_broker_restart_restores_everything(broker: Broker, running: Callable[..., Daemon],
                                            probe_factory: Callable[..., Probe]) -> None:
    daemon = running()
    first = probe_factory(broker.port, [f"{PREFIX}/state"])
    first.wait_for(f"{PREFIX}/state")
    broker.kill()  # retained messages die with it (persistence off)
    time.sleep(1.0)
    processed = sum(w.processed for w in daemon.workers)
    broker.start()
    t0 = time.monotonic()
    p = probe_factory(broker.port, [f"{PREFIX}/#", "homeassistant/+/+/+/config"])
    p.wait_for(f"{PREFIX}/availability", lambda m: m.payload == b"online", timeout=10)
    assert time.monotonic() - t0 < 5.0
    p.wait_for(f"{PREFIX}/state", timeout=5)
    p.wait_for("homeassistant/select/+/mode/config", timeout=5)
    # Analysis never stopped. The reconnect can be done within a few hundred ms of the count above, less
    # than a camera frame's interval at times (seen once in a full run: 9 > 9), so give it a few frames.
    wait(lambda: sum(w.processed for w in daemon.workers) > processed, timeout=5, what="analysis to go on")
    # Subscriptions are back: a command works again.
    p.publish(f"{PREFIX}/mode/set", "off")
    end = time.monotonic() + 5
    while daemon.controls.mode != "off" and time.monotonic() < end:
        daemon.supervise_once()
        time.sleep(0.05)
    assert daemon.controls.mode == "off"


def test_the_readme_watch_command_is_installed_and_works(broker: Broker, probe_factory: Callable[..., Probe]) -> None:
    """README: `mosquitto_sub -t 'emomusic/#' -v` (Debian's mosquitto-clients, which set-up installs)."""
    import shutil
    import subprocess

    exe = shutil.which("mosquitto_sub")
    assert exe, "mosquitto_sub is missing: scripts/system-deps.sh installs mosquitto-clients"
    probe_factory(broker.port, []).publish("emomusic/watch/state", '{"emotion": "happy"}', retain=True)
    out = subprocess.run([exe, "-h", "127.0.0.1", "-p", str(broker.port), "-t", "emomusic/#", "-v", "-C", "1",
                          "-W", "10"], capture_output=True, text=True, timeout=20)
    assert out.stdout.strip() == 'emomusic/watch/state {"emotion": "happy"}', out.stderr
