"""The house (#34): rooms in Home Assistant, the house view of every room's daemon on one broker, and the
house mood published by exactly one daemon, the next one taking over when it dies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emomusic.config import parse_config
from emomusic.house.view import HouseView
from emomusic.mqtt.discovery import discovery_messages
from emomusic.mqtt.link import MqttSettings

from conftest import Broker, Probe, daemon_config, free_port, wait
from fakes import factories

HERE = Path(__file__).resolve().parent
ROOMS = {"a-living": "Living room", "b-kitchen": "Kitchen", "c-upstairs": "Upstairs"}


def settings(device: str, room: str) -> MqttSettings:
    return MqttSettings.of(parse_config({"device": {"id": device, "room": room}}, env={}))


def test_each_room_is_its_own_device_and_area_in_home_assistant() -> None:
    by_room = {room: discovery_messages(settings(dev, room)) for dev, room in ROOMS.items()}
    ids: dict[str, set[str]] = {}
    for room, msgs in by_room.items():
        own = [p for t, p in msgs if "emomusic_house" not in t]
        assert {p["device"]["name"] for p in own} == {f"emomusic {room}"}
        assert {p["device"]["suggested_area"] for p in own} == {room}
        ids[room] = {p["unique_id"] for p in own}
    assert not set.intersection(*ids.values())  # no entity of one room is another's
    # one house mood sensor: the same retained config from every room, so Home Assistant shows it once
    moods = [[(t, p) for t, p in msgs if "emomusic_house" in t] for msgs in by_room.values()]
    assert all(len(m) == 1 for m in moods) and moods[0] == moods[1] == moods[2]
    assert moods[0][0][1]["state_topic"] == "emomusic/house/state"
    plain = discovery_messages(MqttSettings.of(parse_config({"device": {"id": "solo"}}, env={})))
    assert all("suggested_area" not in p["device"] for _, p in plain)  # no room: no area, the plain name


def test_the_house_view_reads_the_rooms_retained_topics() -> None:
    now = [1000.0]
    view = HouseView("emomusic", "b-kitchen", sure=0.5, room="Kitchen", clock=lambda: now[0])
    feed = [
        ("emomusic/a-living/availability", b"online"), ("emomusic/a-living/instance", b'{"room": "Living room"}'),
        ("emomusic/a-living/state", b'{"emotion": "happy", "confidence": 0.8, "valence": 0.8, "arousal": 0.5}'),
        ("emomusic/b-kitchen/availability", b"online"),
        ("emomusic/c-upstairs/availability", b"offline"),
        ("emomusic/c-upstairs/state", b"not json"),  # ignored, nothing breaks
    ]
    for topic, payload in feed:
        assert view.accepts(topic)
        view.on_message(topic, payload)
    assert not view.accepts("emomusic/house/state") and not view.accepts("emomusic/a-living/mode/set")
    rooms = {r["device"]: r for r in view.rooms()}
    assert rooms["a-living"]["room"] == "Living room" and rooms["a-living"]["emotion"] == "happy"
    assert not rooms["c-upstairs"]["online"] and rooms["c-upstairs"]["emotion"] is None
    assert rooms["b-kitchen"]["room"] == "Kitchen"  # our own room, known before any message
    assert view.leader() == "a-living"
    mood = view.mood()
    assert mood is not None and (mood["emotion"], mood["room"]) == ("happy", "Living room")
    now[0] += 5  # the kitchen's listener is seen later, surely; then someone unsure upstairs
    view.on_message("emomusic/b-kitchen/state", b'{"emotion": "sad", "confidence": 0.7}')
    view.on_message("emomusic/c-upstairs/availability", b"online")
    view.on_message("emomusic/c-upstairs/state", b'{"emotion": "angry", "confidence": 0.2}')
    assert view.mood()["emotion"] == "sad"  # type: ignore[index]
    view.on_message("emomusic/a-living/availability", b"offline")  # its last will
    assert view.leader() == "b-kitchen"


@pytest.fixture
def house(broker: Broker, tmp_path: Path) -> Iterator[tuple[dict[str, subprocess.Popen[str]], int]]:
    """Three daemons on sample media, one per room, against one real mosquitto (the kitchen serves the page)."""
    page = free_port()
    procs: dict[str, subprocess.Popen[str]] = {}
    logs = []
    for dev, room in ROOMS.items():
        web = "[web]\nenabled = true\n" if dev == "b-kitchen" else "[web]\nenabled = false\n"
        cfg = tmp_path / f"{dev}.toml"
        cfg.write_text(f'[device]\nid = "{dev}"\nroom = "{room}"\nstate_dir = "{tmp_path / dev}"\n'
                       f"[mqtt]\nheartbeat_s = 2.0\n[player]\nenabled = false\n{web}")
        logs.append(open(tmp_path / f"{dev}.log", "w"))  # noqa: SIM115 (closed below, after the process)
        procs[dev] = subprocess.Popen([sys.executable, str(HERE / "fakes.py"), "run", "--config", str(cfg)],
                                      env=os.environ | broker.env() | {"EMOMUSIC_WEB_PORT": str(page)},
                                      stdout=logs[-1],
                                      stderr=subprocess.STDOUT, text=True)
    yield procs, page
    stop_all(procs, logs)


def stop_all(procs: dict[str, subprocess.Popen[str]], logs: list[Any]) -> None:
    """SIGTERM to every daemon still running, SIGKILL to any not gone in 10 s; then their log files closed."""
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
    for p in procs.values():
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    for f in logs:
        f.close()


def api_house(port: int) -> dict[str, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/house", headers={"Host": f"127.0.0.1:{port}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def page_shows_the_house(port: int) -> None:
    """The kitchen's page, House tab, in a real Chromium: the three rooms and the house mood; the living
    room's mode set from the kitchen's page."""
    from playwright.sync_api import expect, sync_playwright
    from test_web import CHROMIUM, CHROMIUM_ARGS

    assert shutil.which(CHROMIUM), f"{CHROMIUM} is required (scripts/system-deps.sh dev installs Debian's chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = b.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.click("nav button[data-tab=house]")
            expect(page.locator("#rooms tbody tr")).to_have_count(3, timeout=10000)
            expect(page.locator("#house-mood")).to_have_text("happy", timeout=10000)
            for room in ROOMS.values():
                expect(page.locator("#rooms tbody")).to_contain_text(room)
            page.select_option("#rooms tr[data-device=a-living] select.room-mode", "regulate")
            expect(page.locator("#house-note")).to_contain_text("sent regulate to a-living", timeout=10000)
        finally:
            b.close()


def test_three_rooms_one_house_mood_and_the_next_daemon_takes_over_when_one_dies(
        broker: Broker, house: tuple[dict[str, subprocess.Popen[str]], int],
        probe_factory: Callable[..., Probe]) -> None:
    procs, page = house
    probe = probe_factory(broker.port, ["emomusic/house/state", "homeassistant/sensor/#", "emomusic/a-living/mode"])

    seen: list[Any] = []

    def view() -> dict[str, Any] | None:
        try:
            h = api_house(page)
        except OSError as e:
            seen[:] = [e]
            return None
        seen[:] = [h]
        rooms = h["rooms"]
        ok = len(rooms) == 3 and all(r["online"] and r["emotion"] == "happy" for r in rooms)
        return h if ok else None

    try:
        h = wait(view, 60, "the house view listing three rooms online")
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen: {seen}") from None
    assert {(r["device"], r["room"]) for r in h["rooms"]} == set(ROOMS.items())
    assert h["followed"] and h["published_by"] == "a-living"
    probe.wait_for("emomusic/house/state", lambda m: m.json()["published_by"] == "a-living", timeout=15)
    n = len(probe.messages)
    time.sleep(5)  # each daemon's heartbeat passes twice: only the lowest id speaks for the house
    moods = [m.json() for m in probe.messages[n:] if m.topic == "emomusic/house/state"]
    assert {m["published_by"] for m in moods} <= {"a-living"}
    assert all(m["emotion"] == "happy" and m["room"] in ROOMS.values() for m in moods)
    names = {m.json()["device"]["name"] for m in probe.messages if "/emotion/config" in m.topic}
    assert names == {f"emomusic {room}" for room in ROOMS.values()}
    page_shows_the_house(page)
    # the living room took the kitchen page's command (validated there as ever) and says its new mode
    probe.wait_for("emomusic/a-living/mode", lambda m: m.payload == b"regulate", timeout=10)
    from test_web import call

    def room_command(body: dict[str, Any]) -> tuple[int, Any]:
        return call(f"http://127.0.0.1:{page}/api/command", json.dumps(body).encode(),
                    {"Content-Type": "application/json"})

    status, answer = room_command({"device": "nowhere", "topic": "mode/set", "payload": "off"})
    assert status == 409 and "no room with the device id 'nowhere'" in answer["error"]
    status, answer = room_command({"device": "a-living", "topic": "volume/set", "payload": "loud"})
    assert status == 400 and answer["error"].startswith("volume/set:")

    procs["a-living"].kill()  # SIGKILL: no goodbye, the broker's last will says offline
    killed = time.monotonic()
    probe.wait_for("emomusic/house/state", lambda m: m.json()["published_by"] == "b-kitchen", timeout=15)
    assert time.monotonic() - killed < 15
    rooms = {r["device"]: r["online"] for r in api_house(page)["rooms"]}
    assert rooms == {"a-living": False, "b-kitchen": True, "c-upstairs": True}


def test_the_house_view_spans_two_brokers_joined_by_a_mosquitto_bridge(
        tmp_path: Path, supervised: Callable[..., Any]) -> None:
    """An outbuilding with its own broker, bridged to the house's (README: Several rooms): each side's
    daemon sees the other's room, and a room that stops is seen offline across the bridge."""
    main = Broker(tmp_path)
    out = Broker(tmp_path, extra_conf=(
        "allow_anonymous true\n"
        f"connection house\naddress 127.0.0.1:{main.port}\ntopic emomusic/# both 1\n"
        "cleansession true\nrestart_timeout 1\n"))
    try:
        living = supervised(daemon_config(main, tmp_path / "l", "a-living", device={"room": "Living room"},
                                          microphone={"enabled": False}), analyzers=factories(face="happy"))
        shed = supervised(daemon_config(out, tmp_path / "s", "b-shed", device={"room": "Shed"},
                                        microphone={"enabled": False}), analyzers=factories(face="sad"))

        def sees(daemon: Any, other: str, emotion: str) -> bool:
            rooms = {r["device"]: r for r in daemon.bridge.house.rooms()}
            return other in rooms and rooms[other]["online"] and rooms[other]["emotion"] == emotion

        wait(lambda: sees(living, "b-shed", "sad"), 30, "the living room's view of the shed, across the bridge")
        wait(lambda: sees(shed, "a-living", "happy"), 30, "the shed's view of the living room")
        assert {r["room"] for r in shed.bridge.house.rooms()} == {"Living room", "Shed"}
        shed.request_stop()  # a clean stop says offline; the bridge carries it over
        wait(lambda: not {r["device"]: r for r in living.bridge.house.rooms()}["b-shed"]["online"], 15,
             "the shed seen offline across the bridge")
    finally:
        out.kill()
        main.kill()


def test_the_music_follows_the_listener_from_the_room_they_leave_to_the_room_they_enter(
        broker: Broker, tmp_path: Path, probe_factory: Callable[..., Probe]) -> None:
    """Two daemon processes, each with real pygame playback of one shared library: the listener's face is
    in the living room, then gone (its file removed), then in the kitchen, before the living room offers
    its music (as with a walk shorter than left_after_s). The kitchen takes over the living room's music
    (its mode and its next track), the living room pauses."""
    from emomusic.music.demo import synth_music, write_tagged

    music = tmp_path / "music"
    music.mkdir()
    for i in range(5):
        write_tagged(music / f"{i}.ogg", synth_music(40.0, 100, False, 0.5, seed=i), f"Song {i}", "calm", rate=16000)
    procs, logs = {}, []
    for dev, room in (("a-living", "Living room"), ("b-kitchen", "Kitchen")):
        cfg = tmp_path / f"{dev}.toml"
        cfg.write_text(
            f'[device]\nid = "{dev}"\nroom = "{room}"\nstate_dir = "{tmp_path / dev}"\n'
            f'[camera]\nenabled = true\n[microphone]\nenabled = false\n[mqtt]\nheartbeat_s = 2.0\n'
            f'[player]\nenabled = true\nfade_ms = 0\nmode = "{"regulate" if dev == "a-living" else "match"}"\n'
            f'[library]\nfolders = ["{music}"]\nmin_track_s = 0\n'
            f"[house]\nfollow = true\nleft_after_s = 2.0\nfollow_window_s = 30.0\n[web]\nenabled = false\n")
        logs.append(open(tmp_path / f"{dev}.log", "w"))  # noqa: SIM115 (closed below)
        env = os.environ | broker.env() | {"EMOMUSIC_TEST_FACE_FILE": str(tmp_path / f"{dev}.here"),
                                           "SDL_AUDIODRIVER": "dummy"}
        procs[dev] = subprocess.Popen([sys.executable, str(HERE / "fakes.py"), "run", "--config", str(cfg)],
                                      env=env, stdout=logs[-1], stderr=subprocess.STDOUT, text=True)
    probe = probe_factory(broker.port, ["emomusic/+/player", "emomusic/+/handoff"])
    try:
        (tmp_path / "a-living.here").touch()  # the listener is in the living room
        probe.wait_for("emomusic/a-living/player", lambda m: m.json()["state"] == "playing", timeout=90)
        time.sleep(3)
        n = len(probe.messages)
        (tmp_path / "a-living.here").unlink()  # …leaves it
        time.sleep(0.5)
        (tmp_path / "b-kitchen.here").touch()  # …and enters the kitchen before the living room offers
        offer = probe.wait_for("emomusic/a-living/handoff", lambda m: "next" in m.json(), timeout=30).json()
        assert offer["mode"] == "regulate" and offer["history"] and offer["room"] == "Living room"
        nxt = Path(offer["next"]).stem
        took = probe.wait_for("emomusic/b-kitchen/player", lambda m: m.json()["state"] == "playing"
                              and m.json()["mode"] == "regulate", timeout=30, after=n).json()
        assert took["title"] == f"Song {nxt}"  # the living room's next track, in its mode
        probe.wait_for("emomusic/a-living/player", lambda m: m.json()["state"] == "paused", timeout=15, after=n)
        probe.wait_for("emomusic/a-living/handoff", lambda m: m.json().get("taken_by") == "b-kitchen", timeout=5)
    finally:
        stop_all(procs, logs)
    living = (tmp_path / "a-living.log").read_text()
    kitchen = (tmp_path / "b-kitchen.log").read_text()
    assert "the listener left Living room" in living and "the listener went to Kitchen: pausing here" in living
    assert "the listener came from Living room: taking over its music" in kitchen


def test_a_listener_back_before_anyone_took_the_music_withdraws_the_offer() -> None:
    """Stepping out for longer than left_after_s and coming back: the offer goes, nobody else takes it."""
    from emomusic.house.follow import Follower
    from emomusic.messages import FusedState, ModalityEstimate, PlayerStatus

    offers: list[dict[str, Any] | None] = []
    f = Follower("a-living", "Living room", 0.05, 60.0, lambda: (("/m/0.ogg",), "/m/1.ogg"), offers.append,
                 lambda device: None, lambda: [], lambda cmd: None)
    f.on_player(PlayerStatus("playing", "Song 0", "x", 0.5, -0.6, "tag", "regulate", "calm", 60, None, None))
    face = {"face": ModalityEstimate("face", "happy", {"happy": 1.0}, 0.6, 0.1)}

    def state(seen: bool) -> FusedState:
        return FusedState(0.0, "happy", 0.8, 0.5, 0.5, {"happy": 1.0}, face if seen else {})

    f.on_state(state(True))
    f.on_state(state(False))
    time.sleep(0.1)
    f.on_state(state(False))  # gone for longer than left_after_s: offered
    assert len(offers) == 1 and offers[0] is not None and offers[0]["next"] == "/m/1.ogg"
    f.on_state(state(True))  # back: withdrawn
    assert offers[1:] == [None] and not f.offered


def test_an_offer_that_lands_after_the_face_appeared_is_still_taken_over() -> None:
    """The room left waits left_after_s before it offers (and the broker delivers when it does), so the
    face usually appears here first: the offer is looked for while it may still come, and taken once;
    an offer from a listener who left long before the face appeared is not."""
    from emomusic.house.follow import Follower, Handoff
    from emomusic.messages import FusedState, ModalityEstimate

    house: list[dict[str, Any]] = []
    taken: list[str] = []
    cmds: list[Any] = []
    f = Follower("b-kitchen", "Kitchen", 0.5, 60.0, lambda: None, lambda offer: None, taken.append,
                 lambda: house, cmds.append)
    face = {"face": ModalityEstimate("face", "happy", {"happy": 1.0}, 0.6, 0.1)}
    here = FusedState(0.0, "happy", 0.8, 0.5, 0.5, {"happy": 1.0}, face)
    now = time.time()
    stale = Handoff("c-hall", "Hall", "match", "", 40, ("/m/9.ogg",), "/m/8.ogg", now - 600.0)
    house.append(stale.to_json())
    f.on_state(here)  # the face appears here; only a stale offer so far
    assert not cmds and not taken
    offer = Handoff("a-living", "Living room", "regulate", "", 55, ("/m/0.ogg",), "/m/1.ogg", now - 2.0)
    house.append(offer.to_json())  # …the living room's offer arrives a moment later
    f.on_state(here)
    assert taken == ["a-living"] and len(cmds) == 1
    cmd = cmds[0]
    assert cmd.kind == "takeover" and cmd.target == "/m/1.ogg" and cmd.handover.mode == "regulate"
    f.on_state(here)
    assert len(cmds) == 1  # taken once


def test_no_offer_is_taken_once_the_face_has_been_here_longer_than_an_offer_takes() -> None:
    """Someone who has sat in the kitchen for a while does not take the music of a room someone else left."""
    from emomusic.house.follow import SLACK_S, Follower, Handoff
    from emomusic.messages import FusedState, ModalityEstimate

    house: list[dict[str, Any]] = []
    cmds: list[Any] = []
    wall = [1000.0]
    f = Follower("b-kitchen", "Kitchen", 0.5, 60.0, lambda: None, lambda offer: None, lambda device: None,
                 lambda: house, cmds.append, wall=lambda: wall[0])
    face = {"face": ModalityEstimate("face", "happy", {"happy": 1.0}, 0.6, 0.1)}
    here = FusedState(0.0, "happy", 0.8, 0.5, 0.5, {"happy": 1.0}, face)
    f.on_state(here)
    wall[0] += 0.5 + SLACK_S + 1.0
    f.on_state(here)  # waited long enough: no longer looking
    house.append(Handoff("a-living", "Living room", "match", "", 55, (), "", wall[0] - 0.5).to_json())
    f.on_state(here)
    assert not cmds
