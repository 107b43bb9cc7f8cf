"""Music: a real SQLite library over generated files, CSV imports, placement by analysis, the policies,
the controller's dwell and no-repeat rules, and the pygame player (dummy driver) driven over MQTT."""

from __future__ import annotations

import csv
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emomusic.commands import Command, Handover
from emomusic.config import parse_config
from emomusic.messages import FusedState, PlayerStatus, Quiet
from emomusic.music.controller import MusicController
from emomusic.music.demo import (
    DEMO_FOLDER,
    DEMO_PIECES,
    DEMO_RATE,
    forget_older_demos,
    make_demo_library,
    synth_music,
    write_tagged,
)
from emomusic.music.library import Library, Track
from emomusic.music.listing import read_m3u
from emomusic.music.moods import mood_to_va
from emomusic.music.policy import distance, iso_path, plan
from emomusic.music.scan import scan
from emomusic.music.settings import MusicSettings
from emomusic.service.daemon import Daemon

from conftest import Broker, Probe
from fakes import FakePlayer

QUADRANT = {"Sunrise Run": (1, 1), "Market Day": (1, 1), "Carnival": (1, 1), "Sunny Side": (1, 1),
            "Storm Front": (-1, 1), "Pressure": (-1, 1), "Undertow": (-1, 1), "Fever": (-1, 1),
            "Grey Harbour": (-1, -1), "Rain on Glass": (-1, -1), "Last Light": (-1, -1), "Long Winter": (-1, -1),
            "Still Water": (1, -1), "Evening Porch": (1, -1), "Lullaby": (1, -1), "Warm Kitchen": (1, -1)}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("music")
    make_demo_library(d, seconds=31.0)  # longer than library.min_track_s
    return d


def fresh_library(tmp_path: Path, demo_dir: Path) -> tuple[Library, Path]:
    music = tmp_path / "music"
    music.mkdir()
    for f in demo_dir.iterdir():
        (music / f.name).write_bytes(f.read_bytes())
    return Library(tmp_path / "lib.db"), music


def test_scan_places_every_demo_piece_in_its_quadrant(tmp_path: Path, demo_dir: Path) -> None:
    lib, music = fresh_library(tmp_path, demo_dir)
    (music / "broken.ogg").write_bytes(b"OggS" + bytes(200))  # corrupt: logged and skipped
    (music / "notes.txt").write_text("not music")
    report = scan(lib, [music], min_track_s=0)
    assert (report.seen, report.added, report.failed) == (21, 20, 1)
    tracks = {t.title: t for t in lib.tracks()}
    assert set(tracks) == {title for title, *_ in DEMO_PIECES} and len(QUADRANT) == 16
    for title, (sv, sa) in QUADRANT.items():
        t = tracks[title]
        assert t.valence * sv > 0 and t.arousal * sa > 0, f"{title} at ({t.valence:+.2f}, {t.arousal:+.2f})"
    assert {t.source for t in tracks.values()} == {"tag"}  # every demo piece carries its mood
    assert tracks["Storm Front"].mood == "aggressive"  # ID3v2.4 TMOO read from the MP3
    row = lib.db.execute("SELECT error FROM tracks WHERE path LIKE '%broken.ogg'").fetchone()
    assert row["error"]
    assert lib.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert lib.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"


def test_demo_pieces_are_at_the_mixers_rate_so_it_does_not_resample_them(demo_dir: Path) -> None:
    import soundfile as sf

    rates = {f.suffix: sf.info(str(f)).samplerate for f in demo_dir.iterdir()}
    assert set(rates) == {".ogg", ".flac", ".mp3"} and set(rates.values()) == {DEMO_RATE} == {44100}


def test_an_earlier_demo_library_is_removed_but_what_a_person_put_there_stays(tmp_path: Path) -> None:
    older, oldest, current = (tmp_path / n for n in ("demo-music-v2", "demo-music", DEMO_FOLDER))
    for folder in (older, oldest, current):
        folder.mkdir()
        (folder / "01 Sunrise Run.ogg").write_bytes(b"piece")
    (older / ".tmp-02 Market Day.flac").write_bytes(b"half a piece")
    (older / "my notes.txt").write_text("mine")
    (tmp_path / "demo-music-old.ogg").write_bytes(b"a file, not a folder")
    gone = forget_older_demos(tmp_path)
    assert sorted(f.relative_to(tmp_path).as_posix() for f in gone) == [
        "demo-music-v2/.tmp-02 Market Day.flac", "demo-music-v2/01 Sunrise Run.ogg", "demo-music/01 Sunrise Run.ogg"]
    assert not oldest.exists() and [f.name for f in older.iterdir()] == ["my notes.txt"]
    assert (current / "01 Sunrise Run.ogg").exists() and (tmp_path / "demo-music-old.ogg").exists()
    assert forget_older_demos(tmp_path) == []  # nothing more to do on the next start


def test_rescan_is_incremental_and_marks_vanished_files(tmp_path: Path, demo_dir: Path) -> None:
    lib, music = fresh_library(tmp_path, demo_dir)
    scan(lib, [music], min_track_s=0)
    assert scan(lib, [music], min_track_s=0).unchanged == 20
    gone = next(music.glob("*Pressure*"))
    gone.unlink()
    retag = next(music.glob("*Market Day*"))
    audio = np.zeros(DEMO_RATE * 3, np.float32) + 0.01
    write_tagged(retag, audio, "Market Day", "sad")
    r = scan(lib, [music], min_track_s=0)
    assert (r.missing, r.updated, r.unchanged) == (1, 1, 18)
    titles = {t.title: t for t in lib.tracks()}
    assert "Pressure" not in titles and titles["Market Day"].source == "tag" and titles["Market Day"].valence < 0
    assert len(lib.tracks(playable_only=False)) == 20  # kept, only marked missing


def test_m3u_playlists_add_their_entries(tmp_path: Path, demo_dir: Path) -> None:
    lib, music = fresh_library(tmp_path, demo_dir)
    pl = tmp_path / "evening.m3u8"
    names = sorted(p.name for p in music.iterdir())[:2]
    pl.write_text("#EXTM3U\n#EXTINF:12,x\nmusic/" + names[0] + "\n" + str(music / names[1]) + "\nhttp://radio/x\n")
    assert [p.name for p in read_m3u(pl)] == names
    assert scan(lib, [], [pl], min_track_s=0).added == 2


def test_csv_imports_seed_format_and_plain_format(tmp_path: Path, demo_dir: Path) -> None:
    lib, music = fresh_library(tmp_path, demo_dir)
    scan(lib, [music], min_track_s=0)
    seed = tmp_path / "seed.csv"
    with open(seed, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Song", "Artist", "Title", "MoodsStrSplit", "SampleURL"])
        w.writerow(["Sunrise Run by x", "Emomusic Demo", "Sunrise Run", "Sad,Gloomy", "http://example/x"])
        w.writerow(["Unknown", "Nobody", "Nothing Here", "Happy", ""])
        w.writerow(["Weird", "Nobody", "Nada", "Zorgonian", ""])
    imported, rejected = lib.import_csv(seed)
    assert (imported, rejected) == (2, 1)
    sunrise = next(t for t in lib.tracks() if t.title == "Sunrise Run")
    assert sunrise.source == "csv" and sunrise.valence < 0  # the CSV outranks the file's own tag
    plain = tmp_path / "moods.csv"
    still = next(music.glob("*Still Water*"))
    plain.write_text(f"path_or_title,artist,mood\n{still},,aggressive\nEvening Porch,emomusic demo,angry\n")
    assert lib.import_csv(plain) == (2, 0)
    t = {x.title: x for x in lib.tracks()}
    assert t["Still Water"].arousal > 0.5 and t["Evening Porch"].source == "csv"
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="expected columns"):
        lib.import_csv(bad)


def test_library_survives_a_kill_during_a_scan(tmp_path: Path, demo_dir: Path) -> None:
    """A scan killed mid-way (here: an exception after some files) leaves a consistent index."""
    lib, music = fresh_library(tmp_path, demo_dir)
    seen = 0

    def boom(path: Path) -> None:
        nonlocal seen
        seen += 1
        if seen == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan(lib, [music], min_track_s=0, on_file=boom)
    lib.close()
    again = Library(tmp_path / "lib.db")
    assert scan(again, [music], min_track_s=0).seen == 20 and len(again.tracks()) == 20
    assert sqlite3.connect(tmp_path / "lib.db").execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_mood_words() -> None:
    assert mood_to_va("Happy") == pytest.approx((0.8, 0.5))
    v, a = mood_to_va("Tense/Anxious, Brooding") or (0, 0)
    assert v < 0 and a > 0
    assert mood_to_va("laid back") is not None and mood_to_va("qwerty") is None


def T(i: int, v: float, a: float) -> Track:
    return Track(i, f"/m/{i}.ogg", f"t{i}", "a", 10.0, v, a, "tag", "")


GRID = [T(i, v, a) for i, (v, a) in enumerate([(x / 2, y / 2) for x in range(-2, 3) for y in range(-2, 3)])]


def test_match_picks_the_nearest_tracks_without_repeats() -> None:
    p = plan("match", (0.9, 0.9), GRID, set(), n=3, target=(0, 0), step=0.3, fixed=(0, 0))
    assert [(t.valence, t.arousal) for t in p.tracks][0] == (1.0, 1.0)
    assert len({t.id for t in p.tracks}) == 3
    assert all(distance((t.valence, t.arousal), (0.9, 0.9)) < 0.7 for t in p.tracks)
    best = p.tracks[0].id
    p2 = plan("match", (0.9, 0.9), GRID, {best}, n=3, target=(0, 0), step=0.3, fixed=(0, 0))
    assert best not in {t.id for t in p2.tracks}


def test_regulate_starts_at_the_listener_and_steps_toward_the_target() -> None:
    path = iso_path((-0.8, 0.8), (0.5, -0.4), 0.3, 8)
    assert path[0] == (-0.8, 0.8) and path[-1] == pytest.approx((0.5, -0.4))
    assert all(distance(a, b) <= 0.3 + 1e-9 for a, b in zip(path, path[1:], strict=False))
    p = plan("regulate", (-1.0, 1.0), GRID, set(), n=9, target=(0.5, -0.5), step=0.5, fixed=(0, 0))
    pts = [(t.valence, t.arousal) for t in p.tracks]
    assert pts[0] == (-1.0, 1.0)
    # each track within a step of where the listener is expected to be (the previous waypoint)
    assert all(distance(x, w) <= 0.5 + 1e-9 for x, w in zip(pts[1:], p.waypoints, strict=False))
    dists = [distance(x, (0.5, -0.5)) for x in pts]
    reached = dists.index(min(dists))
    assert min(dists) < 0.3 and dists[: reached + 1] == sorted(dists[: reached + 1], reverse=True)
    # once the target is reached, the queue stays near it (no track twice)
    assert all(d <= 0.5 + 1e-9 for d in dists[reached:]) and len({t.id for t in p.tracks}) == 9
    # A re-plan after a track has played steps on: the listener has been met already (else every
    # re-plan would queue the track nearest the listener again and never lead anywhere).
    on = plan("regulate", (-1.0, 1.0), GRID, set(), n=6, target=(0.5, -0.5), step=0.5, fixed=(0, 0), continuing=True)
    assert on.tracks[0].id == p.tracks[1].id and on.waypoints[0] == pytest.approx(p.waypoints[1])


def test_fixed_and_off() -> None:
    p = plan("fixed", (1, 1), GRID, set(), n=2, target=(0, 0), step=0.3, fixed=(-1.0, -1.0))
    assert (p.tracks[0].valence, p.tracks[0].arousal) == (-1.0, -1.0)
    assert plan("off", (0, 0), GRID, set(), n=3, target=(0, 0), step=0.3, fixed=(0, 0)).tracks == []


def state(v: float, a: float) -> FusedState:
    return FusedState(0.0, "happy" if v > 0 else "sad", 0.8, v, a, {}, {})


def test_controller_dwell_no_cut_and_no_repeat(tmp_path: Path, demo_dir: Path) -> None:
    now = [0.0]
    cfg = parse_config({"device": {"state_dir": str(tmp_path)}, "library": {"folders": [str(demo_dir)]},
                        "player": {"dwell_s": 30, "queue_length": 2, "history": 3}}, env={})
    mc = MusicController(MusicSettings.of(cfg), clock=lambda: now[0])
    mc.library = mc._open_library()
    mc.player = FakePlayer()
    mc.on_state(state(0.7, 0.6))
    mc.step()
    first = mc.current
    assert first is not None and first.valence > 0 and first.arousal > 0  # matches the happy listener
    # The listener turns sad: nothing changes before the dwell time, and the track is never cut.
    mc.on_state(state(-0.6, -0.5))
    for t in range(1, 30):
        now[0] = t
        mc.step()
        assert mc.current == first
        assert all(q.valence > 0 for q in mc.queue)
    now[0] = 31
    mc.step()
    assert mc.current == first and mc.queue and all(q.valence < 0 for q in mc.queue)
    assert "held it for 30 s" in mc.decisions[-1]
    # At the end of the track the next one follows the new mood; recent tracks are not repeated.
    played = [first.id]
    for _ in range(4):
        mc.player.done = True
        mc.step()
        assert mc.current is not None and mc.current.id not in played[-3:]
        played.append(mc.current.id)


def send(mc: MusicController, cmd: Command) -> None:
    """What the daemon does with a command: set the controls, then let the music stage act."""
    mc.controls.apply(cmd)
    mc.apply(cmd)


def test_controller_commands(tmp_path: Path, demo_dir: Path) -> None:
    cfg = parse_config({"device": {"state_dir": str(tmp_path)}, "library": {"folders": [str(demo_dir)]}}, env={})
    mc = MusicController(MusicSettings.of(cfg))
    mc.library = mc._open_library()
    mc.player = FakePlayer()
    mc.step()
    first = mc.current
    send(mc, Command("player", "skip"))
    mc.step()
    assert mc.current != first
    send(mc, Command("player", "pause"))
    mc.step()
    assert mc.status().state == "paused"
    send(mc, Command("mood", "sad"))
    send(mc, Command("player", "skip"))
    mc.step()
    assert mc.mode == "fixed" and mc.current is not None and mc.current.valence < 0
    send(mc, Command("volume", 25))
    send(mc, Command("mode", "off"))
    mc.step()
    assert mc.player.volume == 0.25 and mc.status().state == "idle" and mc.current is None


class Heard(Quiet):
    """The player statuses and controls the music stage publishes."""

    def __init__(self) -> None:
        self.statuses: list[PlayerStatus] = []
        self.controls: list[tuple[str, int, str]] = []

    def on_player(self, status: PlayerStatus) -> None:
        self.statuses.append(status)

    def on_controls(self, mode: str, volume: int, mood: str) -> None:
        self.controls.append((mode, volume, mood))


def test_a_takeover_adopts_the_other_rooms_controls_and_track_in_one_step(tmp_path: Path, demo_dir: Path) -> None:
    """The listener came from another room: its mode, volume and next track arrive as one command, and no
    status in between shows that room's mode with this room's own music (a race the two-room test hit)."""
    cfg = parse_config({"device": {"state_dir": str(tmp_path)}, "library": {"folders": [str(demo_dir)]},
                        "player": {"mode": "match", "volume": 70}}, env={})
    heard = Heard()
    mc = MusicController(MusicSettings.of(cfg), out=heard)
    mc.library = mc._open_library()
    mc.player = FakePlayer()
    mc.on_state(state(0.7, 0.6))
    mc.step()
    own = mc.current
    assert own is not None and mc.status().mode == "match"
    nxt = next(t for t in mc.library.tracks() if t.id != own.id and t.valence < 0)  # not what match would pick
    mc.apply(Command("takeover", "Living room", nxt.path, (own.path,), Handover("regulate", "calm", 30)))
    assert mc.mode == "match"  # the daemon leaves a takeover's controls to the music stage
    heard.statuses.clear()
    mc.step()
    assert mc.mode == "regulate" and mc.volume == 30 and mc.player.volume == 0.3
    assert mc.current is not None and mc.current.path == nxt.path
    assert [(s.mode, s.title) for s in heard.statuses] == [("regulate", nxt.title)]
    assert heard.controls[-1] == ("regulate", 30, mc.fixed_mood)
    assert any("Living room" in d for d in mc.decisions[-2:])


def test_player_advances_through_real_files_and_obeys_mqtt(tmp_path: Path, broker: Broker,
                                                          probe_factory: Callable[..., Probe]) -> None:
    music = tmp_path / "short"
    music.mkdir()
    for i, (title, bpm, major, bright, mood, ext) in enumerate(DEMO_PIECES[:4]):
        write_tagged(music / f"{i}.{ext}", synth_music(1.5, bpm, major, bright, seed=i), title, mood, rate=16000)
    (music / "zz-corrupt.ogg").write_bytes(b"OggS" + bytes(300))
    cfg = parse_config({
        "device": {"id": "mus", "state_dir": str(tmp_path / "state")},
        "library": {"folders": [str(music)], "min_track_s": 0},  # 1.5 s pieces keep the test short
        "player": {"fade_ms": 0, "queue_length": 3, "history": 2, "mode": "fixed", "fixed_mood": "happy"},
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
    }, env={})
    daemon = Daemon(cfg, analyzers={})
    p = probe_factory(broker.port, ["emomusic/mus/#"])
    daemon.start()
    try:
        assert daemon.player.ready.wait(20)
        titles: list[str] = []

        def collect(m: Any) -> bool:
            st = m.json()
            if st.get("title") and (not titles or titles[-1] != st["title"]):
                titles.append(st["title"])
            return len(titles) >= 3

        p.wait_for("emomusic/mus/player", collect, timeout=20)
        assert len(set(titles)) >= 2  # really advanced from track to track at real-time pace
        n = len(p.messages)
        p.publish("emomusic/mus/player/set", "pause")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            daemon.supervise_once()
            if daemon.player.status().state == "paused":
                break
            time.sleep(0.05)
        p.wait_for("emomusic/mus/player", lambda m: m.json()["state"] == "paused", after=n)
        p.publish("emomusic/mus/volume/set", "20")
        p.publish("emomusic/mus/mode/set", "off")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and daemon.player.status().state != "idle":
            daemon.supervise_once()
            time.sleep(0.05)
        idle = p.wait_for("emomusic/mus/player", lambda m: m.json()["state"] == "idle")
        assert idle.json()["volume"] == 20 and idle.json()["mode"] == "off"
        late = probe_factory(broker.port, ["emomusic/mus/mode", "emomusic/mus/player"])
        assert late.wait_for("emomusic/mus/mode").payload == b"off"
        assert late.wait_for("emomusic/mus/player").json()["state"] == "idle"
    finally:
        daemon.stop()


def test_the_pygame_player_mixes_in_large_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """SDL's mixer wakes once per block: the player asks for MIXER_BUFFER samples (4096) rather than
    pygame's 512, which cost 2-3x the CPU for the same track (scripts/bench.py, docs/PERFORMANCE.md)."""
    from emomusic.music.players import pygame_player

    pygame = pygame_player.import_pygame()
    asked: list[dict[str, int]] = []
    real_init = pygame.mixer.init

    def init(**kwargs: int) -> None:
        asked.append(kwargs)
        real_init(**kwargs)

    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    monkeypatch.setattr(pygame.mixer, "init", init)
    pygame_player.PygamePlayer()
    assert pygame_player.MIXER_BUFFER >= 2048
    assert asked and all(a.get("buffer") == pygame_player.MIXER_BUFFER for a in asked)
