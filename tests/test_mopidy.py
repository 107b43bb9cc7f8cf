"""The MPD backend against a real Mopidy (Debian's mopidy, mopidy-mpd and mopidy-local; `scripts/test.sh`
installs them): the file and local backends over a generated music folder, GStreamer's fakesink in real
time, the software mixer, on a free port. Mopidy's MPD frontend differs from MPD where it matters:
`listallinfo` is disabled, there are no song priorities, songs are named by URIs (`local:track:…`,
`file:///…`), and its refusals carry an error code python-mpd2 cannot parse."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mpd
import pytest

from emomusic.music.players import backend
from emomusic.music.players.mpd_client import MpdAddress, list_songs
from emomusic.music.scan import open_library
from emomusic.music.settings import MusicSettings
from emomusic.service.daemon import Daemon

from conftest import Broker, Probe, daemon_config, free_port, titles, wait, wait_port

PREFIX = "emomusic/mopidy"
# (file, title, mood): the daemon plays "calm" (fixed mood); the user's own queue holds the happy ones.
SONGS = [("calm1.ogg", "Calm One", "calm"), ("more calm/calm2.ogg", "Calm Two", "calm"),
         ("calm3.ogg", "Calm Three", "calm"), ("happy1.ogg", "Happy One", "happy"),
         ("happy2.ogg", "Happy Two", "happy"), ("happy3.ogg", "Happy Three", "happy")]


class Mopidy:
    """A mopidy process of the test's own, its local library scanned; stopped and started again on the
    same port with its queue kept (``core.restore_state``, as a user who wants that sets it)."""

    def __init__(self, workdir: Path, music: Path) -> None:
        exe = shutil.which("mopidy")
        if exe is None:
            pytest.fail("mopidy is not installed (scripts/test.sh installs mopidy, mopidy-mpd, mopidy-local)")
        self.exe, self.port, self.music = exe, free_port(), music
        self.conf = workdir / "mopidy.conf"
        self.conf.write_text(
            f"[core]\ncache_dir = {workdir / 'cache'}\nconfig_dir = {workdir / 'config'}\n"
            f"data_dir = {workdir / 'data'}\nrestore_state = true\n"
            "[audio]\noutput = fakesink sync=true\nmixer = software\n"
            f"[mpd]\nenabled = true\nhostname = 127.0.0.1\nport = {self.port}\n"
            "[http]\nenabled = false\n[m3u]\nenabled = false\n[stream]\nenabled = false\n"
            f"[file]\nenabled = true\nmedia_dirs = {music}\n"
            f"[local]\nenabled = true\nmedia_dir = {music}\n")
        self.log = workdir / "mopidy.log"
        subprocess.run([exe, "--config", str(self.conf), "local", "scan"], check=True, capture_output=True,
                       timeout=60)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([self.exe, "--config", str(self.conf)], stdout=logf, stderr=logf)
        wait_port(self.port, timeout=30)
        c = self.client()
        end = time.monotonic() + 20
        while len([s for s in c.lsinfo("Local media/Tracks") if "file" in s]) < len(SONGS):
            assert time.monotonic() < end, self.log.read_text()[-2000:]
            time.sleep(0.2)
        c.disconnect()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: with restore_state, Mopidy saves its queue
            self.proc.wait(15)

    def client(self) -> Any:
        c = mpd.MPDClient()
        c.timeout = 10
        c.connect("127.0.0.1", self.port)
        return c


def uri(name: str) -> str:
    return "local:track:" + name.replace(" ", "%20")


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emomusic.music.demo import synth_music, write_tagged

    folder = tmp_path_factory.mktemp("mopidy-music")
    for i, (name, title, mood) in enumerate(SONGS):
        (folder / name).parent.mkdir(exist_ok=True)
        write_tagged(folder / name, synth_music(12.0, 100, mood == "happy", 0.5, seed=i), title, mood, rate=16000)
    return folder


@pytest.fixture
def server(tmp_path: Path, music: Path) -> Iterator[Mopidy]:
    work = tmp_path / "mopidy"
    work.mkdir()
    m = Mopidy(work, music)
    yield m
    m.stop()


def mopidy_config(broker: Broker | None, tmp_path: Path, server: Mopidy, **player: Any) -> Any:
    return daemon_config(broker, tmp_path, "mopidy", camera={"enabled": False}, microphone={"enabled": False},
                         library={"min_track_s": 1},
                         player={"enabled": True, "backend": "mpd", "mode": "fixed", "fixed_mood": "calm",
                                 "queue_length": 2, "dwell_s": 30,
                                 "mpd": {"host": "127.0.0.1", "port": server.port,
                                         "music_directory": str(server.music)} | player})


def test_the_library_is_walked_with_lsinfo_where_listallinfo_is_disabled(
        tmp_path: Path, server: Mopidy, caplog: pytest.LogCaptureFixture) -> None:
    addr = MpdAddress("127.0.0.1", server.port, None)
    caplog.set_level(logging.INFO)
    songs = list_songs(addr)
    # Each song once, though Mopidy shows it under both backends and in several of its browse views.
    assert sorted(s["title"] for s in songs) == sorted(t for _, t, _ in SONGS)
    said = [r.getMessage() for r in caplog.records if "listallinfo" in r.getMessage()]
    assert len(said) == 1 and "does not allow listallinfo" in said[0] and "lsinfo" in said[0], said
    assert not any("FailureResponseCode" in r.getMessage() for r in caplog.records)

    cfg = mopidy_config(None, tmp_path, server)
    lib, report = open_library(MusicSettings.of(cfg), rescan=True, listing=backend("mpd").scan_library)
    assert report is not None and report.seen == len(SONGS)
    placed = {t.title: (t.source, t.path) for t in lib.tracks()}
    assert {s for s, _ in placed.values()} == {"tag"}  # the files themselves were read, by their mood tags
    assert placed["Calm Two"][1] == str(server.music / "more calm" / "calm2.ogg")
    lib.close()

    from emomusic.cli.doctor import check_mpd

    ok, line = check_mpd(cfg)
    assert ok and "Mopidy" in line and "no song priorities" in line, line


def test_picks_play_commands_reach_mopidy_and_a_hand_pick_is_respected(
        broker: Broker, tmp_path: Path, server: Mopidy, supervised: Callable[..., Daemon],
        probe_factory: Callable[..., Probe], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    user = server.client()
    for name in ("happy1.ogg", "happy2.ogg"):
        user.add(uri(name))
    user.play(0)  # the user is listening to their own queue when the daemon starts
    playing = wait(lambda: user.currentsong().get("id"), what="Mopidy playing the user's song")
    probe = probe_factory(broker.port, [f"{PREFIX}/#"])
    daemon = supervised(mopidy_config(broker, tmp_path, server), analyzers={})

    # No priorities in Mopidy: the picks still go right after the user's song, and the daemon says what it cannot do.
    q = wait(lambda: t[1:3] if len(t := titles(user)) == 4 else None, what="the picks in Mopidy's queue")
    assert all(title.startswith("Calm") for title in q), titles(user)
    assert titles(user)[0] == "Happy One" and titles(user)[3] == "Happy Two"
    assert user.currentsong()["id"] == playing  # never cut
    shown = probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["title"] == "Happy One", timeout=10).json()
    assert shown["state"] == "playing" and shown["track_valence"] is not None  # a library track, placed by its tag
    said = [r.getMessage() for r in caplog.records if "priorit" in r.getMessage()]
    assert len(said) == 1 and "prioid" in said[0], said

    # A song chosen by hand is respected and the picks move after it.
    happy2 = next(s["id"] for s in user.playlistinfo() if s["title"] == "Happy Two")
    user.playid(happy2)
    probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["title"] == "Happy Two", timeout=10)
    wait(lambda: any("chosen by hand" in d for d in daemon.player.decisions), what="the hand pick noticed")

    def picks_after_happy_two() -> bool:
        t = titles(user)
        after = t[t.index("Happy Two") + 1:]
        return len(after) == 2 and all(title.startswith("Calm") for title in after)

    wait(picks_after_happy_two, what="the picks moved after the hand-picked song")
    assert titles(user)[0] == "Happy One"
    time.sleep(3)
    assert user.currentsong()["id"] == happy2

    # skip and volume through MQTT reach Mopidy; a volume set on Mopidy shows on …/player.
    probe.publish(f"{PREFIX}/player/set", "skip")
    wait(lambda: user.currentsong().get("title", "").startswith("Calm"), what="the skip")
    probe.publish(f"{PREFIX}/volume/set", "35")
    wait(lambda: user.status()["volume"] == "35", what="the volume")
    user.setvol(55)
    probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["volume"] == 55, timeout=10)
    probe.publish(f"{PREFIX}/player/set", "pause")
    wait(lambda: user.status()["state"] == "pause", what="the pause")
    user.disconnect()


def test_mopidy_restarted_mid_run_is_reconnected_and_the_users_queue_kept(
        broker: Broker, tmp_path: Path, server: Mopidy, supervised: Callable[..., Daemon],
        probe_factory: Callable[..., Probe]) -> None:
    user = server.client()
    user.add(uri("happy3.ogg"))  # the user's queue, not playing
    user.disconnect()
    probe = probe_factory(broker.port, [f"{PREFIX}/#"])
    supervised(mopidy_config(broker, tmp_path, server), analyzers={})
    probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["state"] == "playing", timeout=20)
    server.stop()
    error = probe.wait_for(f"{PREFIX}/error", lambda m: b"connection lost" in m.payload, timeout=10).json()["error"]
    assert f"MPD at 127.0.0.1:{server.port}" in error
    n = len(probe.messages)
    server.start()
    probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["state"] == "playing", timeout=30, after=n)
    user = server.client()
    # Mopidy restored its queue, the daemon's old picks with it: told apart by what this daemon queued
    # (Mopidy has no priorities to mark them), they are not doubled.
    wait(lambda: "Happy Three" in titles(user) and sum(t.startswith("Calm") for t in titles(user)) >= 2,
         what="the user's song and the picks after a restart")
    time.sleep(3)
    t = titles(user)
    assert t.count("Happy Three") == 1 and sum(x.startswith("Calm") for x in t) <= 3, t
    user.disconnect()


def test_python_mpd2_says_nothing_below_warning_unless_debug() -> None:
    """Its 'Calling MPD connect(…)' lines at INFO on every (re)connection are noise in a service's journal."""
    from emomusic.service.logs import setup_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("INFO")
        assert logging.getLogger("mpd").getEffectiveLevel() == logging.WARNING
        setup_logging("debug")
        assert logging.getLogger("mpd").getEffectiveLevel() == logging.DEBUG
    finally:
        root.handlers[:], root.level = handlers, level
        logging.getLogger("mpd").setLevel(logging.NOTSET)
