"""The MPD backend against a real mpd (Debian's package; .ci/run installs it): a generated music
folder, the null output (real-time, silent) and the software mixer, on a free port."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mpd
import pytest

from emomusic.config import parse_config
from emomusic.music.controller import MusicController
from emomusic.music.players import backend
from emomusic.music.scan import open_library
from emomusic.music.settings import MusicSettings
from emomusic.service.daemon import Daemon

from conftest import Broker, Probe, daemon_config, free_port, titles, wait, wait_port

PREFIX = "emomusic/mpd"
PASSWORD = "sesame"
# (file, title, mood): the daemon plays "calm" (fixed mood); the user's own queue holds the happy ones.
SONGS = [("calm1.ogg", "Calm One", "calm"), ("calm2.ogg", "Calm Two", "calm"), ("calm3.ogg", "Calm Three", "calm"),
         ("happy1.ogg", "Happy One", "happy"), ("happy2.ogg", "Happy Two", "happy"),
         ("happy3.ogg", "Happy Three", "happy")]


class Mpd:
    """An mpd process of the test's own: stopped and started again on the same port, state kept."""

    def __init__(self, workdir: Path, music: Path, password: str | None = PASSWORD) -> None:
        exe = shutil.which("mpd") or "/usr/bin/mpd"
        if not Path(exe).exists():
            pytest.fail("mpd is not installed (run scripts/test.sh, which installs it)")
        self.exe, self.port, self.password, self.music = exe, free_port(), password, music
        (workdir / "playlists").mkdir()
        self.conf = workdir / "mpd.conf"
        self.conf.write_text(
            f'music_directory "{music}"\nplaylist_directory "{workdir / "playlists"}"\n'
            f'db_file "{workdir / "db"}"\nstate_file "{workdir / "state"}"\n'
            f'bind_to_address "127.0.0.1"\nport "{self.port}"\nzeroconf_enabled "no"\n'
            + (f'password "{password}@read,add,control,admin"\ndefault_permissions ""\n' if password else "")
            + 'audio_output {\n type "null"\n name "null"\n mixer_type "software"\n}\n')
        self.log = workdir / "mpd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen([self.exe, "--no-daemon", "--stderr", str(self.conf)],
                                         stdout=logf, stderr=logf)
        wait_port(self.port)
        end = time.monotonic() + 20
        c = self.client()
        while "updating_db" in c.status() or int(c.stats()["songs"]) < len(list(self.music.glob("*.ogg"))):
            assert time.monotonic() < end, self.log.read_text()[-2000:]
            time.sleep(0.1)
        c.disconnect()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mpd saves its queue in the state file, like a service restart
            self.proc.wait(10)

    def client(self) -> Any:
        c = mpd.MPDClient()
        c.timeout = 10
        c.connect("127.0.0.1", self.port)
        if self.password:
            c.password(self.password)
        return c


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from emomusic.music.demo import synth_music, write_tagged

    folder = tmp_path_factory.mktemp("mpd-music")
    for i, (name, title, mood) in enumerate(SONGS):
        write_tagged(folder / name, synth_music(12.0, 100, mood == "happy", 0.5, seed=i), title, mood, rate=16000)
    return folder


@pytest.fixture
def server(tmp_path: Path, music: Path) -> Iterator[Mpd]:
    work = tmp_path / "mpd"
    work.mkdir()
    m = Mpd(work, music)
    yield m
    m.stop()


def mpd_config(broker: Broker | None, tmp_path: Path, server: Mpd, password: str = PASSWORD, **player: Any) -> Any:
    secret = tmp_path / "mpd-password"
    secret.write_text(password + "\n")
    return daemon_config(broker, tmp_path, "mpd", camera={"enabled": False}, microphone={"enabled": False},
                         library={"min_track_s": 1},
                         player={"enabled": True, "backend": "mpd", "mode": "fixed", "fixed_mood": "calm",
                                 "queue_length": 2, "dwell_s": 30,
                                 "mpd": {"host": "127.0.0.1", "port": server.port, "password_file": str(secret),
                                         "music_directory": str(server.music)} | player})


def test_picks_go_after_the_current_song_hand_picks_are_respected_and_mqtt_reaches_mpd(
        broker: Broker, tmp_path: Path, server: Mpd, supervised: Callable[..., Daemon],
        probe_factory: Callable[..., Probe]) -> None:
    user = server.client()
    for name in ("happy1.ogg", "happy2.ogg"):
        user.add(name)
    user.play(0)  # the user is listening to their own queue when the daemon starts
    playing = user.currentsong()["id"]
    probe = probe_factory(broker.port, [f"{PREFIX}/#"])
    daemon = supervised(mpd_config(broker, tmp_path, server), analyzers={})

    # The daemon's picks (calm, two of them) go right after the user's song; the user's queue stays.
    q = wait(lambda: t[1:3] if len(t := titles(user)) == 4 else None, what="the picks in MPD's queue")
    assert all(title.startswith("Calm") for title in q), titles(user)
    assert titles(user)[0] == "Happy One" and titles(user)[3] == "Happy Two"
    assert user.currentsong()["id"] == playing  # never cut
    shown = probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["title"] == "Happy One", timeout=10).json()
    assert shown["state"] == "playing" and shown["track_valence"] is not None  # a library track, placed by its tag

    # A song chosen by hand on a phone is respected (not cut, no re-plan for dwell_s) and is a mild like.
    happy2 = next(s["id"] for s in user.playlistinfo() if s["title"] == "Happy Two")
    user.playid(happy2)
    probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["title"] == "Happy Two", timeout=10)
    wait(lambda: any("chosen by hand" in d for d in daemon.player.decisions), what="the hand pick noticed")
    picked = str(server.music / "happy2.ogg")
    assert daemon.profile.tracks[picked].picks == 1
    def picks_after_happy_two() -> bool:
        t = titles(user)
        after = t[t.index("Happy Two") + 1:]
        return len(after) == 2 and all(title.startswith("Calm") for title in after)

    wait(picks_after_happy_two, what="the picks moved after the hand-picked song")
    assert titles(user)[0] == "Happy One"  # the user's songs stay where they were
    time.sleep(3)
    assert user.currentsong()["id"] == happy2

    # skip and volume through MQTT reach MPD; a volume set on MPD shows on …/player.
    probe.publish(f"{PREFIX}/player/set", "skip")
    wait(lambda: user.currentsong().get("title", "").startswith("Calm"), what="the skip")
    probe.publish(f"{PREFIX}/volume/set", "35")
    wait(lambda: user.status()["volume"] == "35", what="the volume")
    user.setvol(55)
    probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["volume"] == 55, timeout=10)
    probe.publish(f"{PREFIX}/player/set", "pause")
    wait(lambda: user.status()["state"] == "pause", what="the pause")
    user.disconnect()


def test_mpd_restart_mid_run_is_survived_and_the_users_queue_kept(
        broker: Broker, tmp_path: Path, server: Mpd, supervised: Callable[..., Daemon],
        probe_factory: Callable[..., Probe]) -> None:
    user = server.client()
    user.add("happy3.ogg")  # the user's queue, not playing
    user.disconnect()
    probe = probe_factory(broker.port, [f"{PREFIX}/#"])
    supervised(mpd_config(broker, tmp_path, server), analyzers={})
    probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["state"] == "playing", timeout=20)
    server.stop()
    error = probe.wait_for(f"{PREFIX}/error", lambda m: b"connection lost" in m.payload, timeout=10).json()["error"]
    assert f"MPD at 127.0.0.1:{server.port}" in error
    probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["state"] == "error", timeout=10)
    n = len(probe.messages)
    server.start()
    probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["state"] == "playing", timeout=30, after=n)
    user = server.client()
    wait(lambda: "Happy Three" in titles(user) and sum(t.startswith("Calm") for t in titles(user)) >= 2,
         what="the user's song and the picks after a restart")
    assert titles(user).count("Happy Three") == 1
    user.disconnect()


def test_a_wrong_password_is_said_once_and_the_daemon_keeps_running(
        broker: Broker, tmp_path: Path, server: Mpd, supervised: Callable[..., Daemon],
        probe_factory: Callable[..., Probe]) -> None:
    probe = probe_factory(broker.port, [f"{PREFIX}/#"])
    daemon = supervised(mpd_config(broker, tmp_path, server, password="wrong"), analyzers={})
    error = probe.wait_for(f"{PREFIX}/error", lambda m: b"password" in m.payload, timeout=15).json()["error"]
    assert "refused the password" in error and "player.mpd.password_file" in error
    status = probe.wait_for(f"{PREFIX}/player", lambda m: m.json()["state"] == "error", timeout=10).json()
    assert "refused the password" in status["error"]
    time.sleep(4)  # retries (1 s, 2 s, ...) say nothing new
    assert sum(b"password" in m.payload for m in probe.messages if m.topic == f"{PREFIX}/error") == 1
    assert daemon.player.is_alive()


def test_library_from_mpd_tags_and_csv_and_updates_on_the_database_event(
        tmp_path: Path, server: Mpd, music: Path) -> None:
    # Without music_directory only MPD's tags are known: the mood CSV places songs by artist and title.
    csv = tmp_path / "moods.csv"
    csv.write_text("path_or_title,artist,mood\nCalm One,emomusic demo,calm\nHappy One,emomusic demo,happy\n")
    cfg = mpd_config(None, tmp_path, server, music_directory="")
    cfg = parse_config({**cfg.model_dump(), "library": {"min_track_s": 1, "csv": str(csv)}},
                       env={"EMOMUSIC_MPD_PASSWORD": PASSWORD})
    lib, report = open_library(MusicSettings.of(cfg), rescan=True, listing=backend("mpd").scan_library)
    assert report is not None and report.seen == len(SONGS)
    placed = {t.title: t.source for t in lib.tracks()}
    assert placed == {"Calm One": "csv", "Happy One": "csv"}
    skipped = {r["title"]: r["skip"] for r in lib.rows() if r["skip"]}
    assert "no player.mpd.music_directory" in skipped["Calm Two"]
    assert lib.track("mpd:calm1.ogg") is not None
    lib.close()

    # With music_directory the files are read (mood tags); a song added to MPD's database shows up.
    (tmp_path / "files").mkdir()
    # a state dir without the CSV's placements
    mc = MusicController(MusicSettings.of(mpd_config(None, tmp_path / "files", server)))
    extra = music / "late.ogg"
    mc.start()
    try:
        wait(lambda: mc.library is not None and len(mc.library.tracks()) == len(SONGS), what="the MPD library")
        assert {t.source for t in mc.library.tracks()} == {"tag"}
        shutil.copy(music / "calm1.ogg", extra)
        c = server.client()
        c.update()
        c.disconnect()
        wait(lambda: mc.library is not None and mc.library.track(str(extra)) is not None, what="the new song")
    finally:
        mc.stop()
        mc.join(10)
        extra.unlink(missing_ok=True)


def test_own_queue_policy_replaces_the_queue_but_not_the_current_song(tmp_path: Path, server: Mpd) -> None:
    user = server.client()
    for name in ("happy1.ogg", "happy2.ogg", "happy3.ogg"):
        user.add(name)
    user.play(0)
    mc = MusicController(MusicSettings.of(mpd_config(None, tmp_path, server, queue="own")))
    mc.start()
    try:
        wait(lambda: (t := titles(user)) and len(t) == 3 and all(x.startswith("Calm") for x in t[1:]),
             what="the daemon's own queue")
        assert titles(user)[0] == "Happy One"
        status = mc.status()
        assert status.title == "Happy One" and status.placement == "tag"
        assert json.dumps(status.to_json())
    finally:
        mc.stop()
        mc.join(10)
        user.disconnect()


def test_doctor_checks_the_mpd_player(tmp_path: Path, server: Mpd) -> None:
    from emomusic.cli.doctor import check_mpd

    ok, detail = check_mpd(mpd_config(None, tmp_path, server))
    assert ok and f"{len(SONGS)} songs" in detail
    ok, detail = check_mpd(mpd_config(None, tmp_path, server, password="nope"))
    assert not ok and "refused the password" in detail
