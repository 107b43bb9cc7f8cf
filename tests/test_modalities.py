"""The modality registry (config.modalities): a modality is one analyzer module and one registry line,
and everything else reads the registry. Shown with a test-only modality, "loudness", that reads the
microphone beside the voice."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from emomusic.cli.replay import run_replay
from emomusic.commands import Command
from emomusic.config import parse_config
from emomusic.config.fusion import FusionConfig
from emomusic.config.modalities import MODALITIES, Modality, register
from emomusic.service.daemon import Daemon
from emomusic.sources.samples import ensure_samples

from conftest import Broker, Probe, daemon_config

PREFIX = "emomusic/modal"


@pytest.fixture
def loudness() -> Iterator[Modality]:
    before = dict(MODALITIES)
    yield register(Modality("loudness", "Loudness", "microphone", "fakes:loudness", tau_s=2.0, reliability=0.4,
                            calibrated=True))  # the one line a new modality needs (and fakes.loudness)
    MODALITIES.clear()
    MODALITIES.update(before)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_samples(tmp_path_factory.mktemp("s"))[1]


def test_fusion_takes_its_defaults_from_the_registry(loudness: Modality) -> None:
    f = FusionConfig()
    assert f.tau("loudness") == 2.0 and f.weight("loudness", 0.0) == 0.4
    assert FusionConfig(tau_s=5.0).tau("loudness") == 5.0  # one number sets every modality, this one too


def test_a_new_modality_is_analysed_fused_published_and_calibrated(
        loudness: Modality, speech: Path, broker: Broker, tmp_path: Path, supervised: Callable[..., Daemon],
        probe_factory: Callable[..., Probe]) -> None:
    cfg = daemon_config(broker, tmp_path, "modal", camera={"enabled": False})
    probe = probe_factory(broker.port, [f"{PREFIX}/#", "homeassistant/#"])
    daemon = supervised(cfg, microphone=str(speech))
    assert {w.analyzer_name for w in daemon.workers} == {"voice", "loudness"}  # one microphone feeds both
    assert set(daemon.drops()) >= {"microphone/voice", "microphone/loudness"}
    reading = probe.wait_for(f"{PREFIX}/modality/loudness", lambda m: m.json().get("emotion") in ("angry", "calm"),
                             timeout=20).json()
    assert 0 < reading["weight"] <= 0.4
    state = probe.wait_for(f"{PREFIX}/state", lambda m: "loudness" in m.json()["modalities"], timeout=20).json()
    assert set(state["modalities"]) >= {"loudness"}
    sensor = probe.wait_for("homeassistant/sensor/emomusic_modal/loudness_emotion/config").json()
    assert sensor["name"] == "Loudness emotion" and sensor["state_topic"] == f"{PREFIX}/modality/loudness"
    daemon.submit_command(Command("feedback", "calm"))  # the listener's word pairs with its recent readings
    end = time.monotonic() + 10
    while "loudness" not in daemon.profile.pairs and time.monotonic() < end:
        time.sleep(0.05)
    assert len(daemon.profile.pairs["loudness"].truth) == 1 and "loudness" in daemon.profile.calibration


def test_the_replay_writes_it_too(loudness: Modality, speech: Path, tmp_path: Path) -> None:
    cfg = parse_config({"device": {"state_dir": str(tmp_path)}}, env={})
    out = tmp_path / "r.jsonl"
    run_replay(cfg, None, str(speech), out, fast=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert any("loudness" in r["modalities"] for r in rows) and any("voice" in r["modalities"] for r in rows)
