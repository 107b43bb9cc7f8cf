"""The listener's controls: what was set over MQTT survives a restart of the daemon (issue #18, item 4)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from emomusic.commands import CONTROLS_FILE, Command, Controls
from emomusic.service.daemon import Daemon

from conftest import Broker, Probe, daemon_config

PREFIX = "emomusic/listener"


def run_until_stopped(cfg: object) -> tuple[Daemon, threading.Thread]:
    d = Daemon(cfg, analyzers={})  # type: ignore[arg-type]
    t = threading.Thread(target=d.run, daemon=True)
    t.start()
    return d, t


def test_controls_set_over_mqtt_are_restored_after_a_restart(
        broker: Broker, tmp_path: Path, probe_factory: Callable[..., Probe]) -> None:
    cfg = daemon_config(broker, tmp_path, "listener", camera={"enabled": False}, microphone={"enabled": False})
    first, thread = run_until_stopped(cfg)
    probe = probe_factory(broker.port, [f"{PREFIX}/#"])
    probe.wait_for(f"{PREFIX}/availability", lambda m: m.payload == b"online")
    probe.publish(f"{PREFIX}/volume/set", "35")
    probe.publish(f"{PREFIX}/mood/set", "sad")  # sets the mode to fixed as well
    probe.wait_for(f"{PREFIX}/mood", lambda m: m.payload == b"sad")
    probe.wait_for(f"{PREFIX}/volume", lambda m: m.payload == b"35")
    first.request_stop()
    thread.join(10)
    assert json.loads((tmp_path / "state" / CONTROLS_FILE).read_text()) == {"mode": "fixed", "volume": 35,
                                                                           "mood": "sad"}
    for topic in ("mode", "volume", "mood"):  # clear the retained values: the restarted daemon must say them
        probe.publish(f"{PREFIX}/{topic}", b"", retain=True)
    again = probe_factory(broker.port, [f"{PREFIX}/#"])
    second, thread = run_until_stopped(cfg)  # the config still says match / 60 / its default mood
    try:
        again.wait_for(f"{PREFIX}/volume", lambda m: m.payload == b"35")
        again.wait_for(f"{PREFIX}/mode", lambda m: m.payload == b"fixed")
        again.wait_for(f"{PREFIX}/mood", lambda m: m.payload == b"sad")
        assert (second.controls.mode, second.controls.volume, second.controls.mood) == ("fixed", 35, "sad")
    finally:
        second.request_stop()
        thread.join(10)


@pytest.mark.parametrize("content", ['{"volume": 500}', "{not json", '["match"]', '{"mode": "loud"}'])
def test_unusable_saved_controls_fall_back_to_the_config_in_one_line(
        tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / CONTROLS_FILE
    path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="emomusic.commands"):
        c = Controls.restore("match", 60, "calm", path)
    assert (c.mode, c.volume, c.mood) == ("match", 60, "calm")
    assert len(caplog.records) == 1 and str(path) in caplog.records[0].getMessage()


def test_only_a_change_is_saved_and_a_read_only_state_dir_is_survived(tmp_path: Path) -> None:
    path = tmp_path / "state" / CONTROLS_FILE
    c = Controls.restore("match", 60, "calm", path)
    assert c.apply(Command("player", "skip")) is False and not path.exists()  # not a control
    assert c.apply(Command("volume", 60)) and not path.exists()  # no change: nothing written
    c.apply(Command("mode", "regulate"))
    assert json.loads(path.read_text())["mode"] == "regulate"
    blocked = Controls("match", 60, "calm", tmp_path / "file" / CONTROLS_FILE)
    (tmp_path / "file").write_text("a file where the state dir should be")
    assert blocked.apply(Command("volume", 20)) and blocked.volume == 20  # works, just not saved
