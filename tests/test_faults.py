"""Faults on real parts: a network camera that stalls or goes away, a video file that vanishes, a
microphone stream that errors, an analyzer that keeps raising, model files missing or corrupt, music
files that vanish after the scan, a scan killed with SIGKILL, and SIGTERM in every phase of the
daemon's life."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from skimage import data as skdata

from emomusic.config import Config
from emomusic.messages import Sensed
from emomusic.service.daemon import Daemon
from emomusic.sources.samples import make_video

from conftest import Broker, Probe, daemon_config
from fakes import ConstantAnalyzer, factories
from mjpeg_server import MjpegServer

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "emomusic/faultdev"


def config(broker: Broker, tmp_path: Path, **sections: Any) -> Config:
    return daemon_config(broker, tmp_path, "faultdev", **sections)


def state(m: Any) -> dict[str, Any]:
    return json.loads(m.payload)


# -- camera -----------------------------------------------------------------------------------------
ASTRONAUT = np.ascontiguousarray(skdata.astronaut()[:, :, ::-1])


# What the source reports for each fault (in the status detail on .../modality/face and the log).
CAMERA_FAULT_DETAIL = {"stall": ("nothing delivered", "no frame"), "drop": ("no frame", "cannot open"),
                       "vanish": ("vanished", "does not exist")}


@pytest.mark.parametrize("fault", ["stall", "drop", "vanish"])
def test_camera_fault_fades_the_face_and_it_comes_back(
        fault: str, broker: Broker, tmp_path: Path, supervised: Callable[..., Daemon],
        probe_factory: Callable[..., Probe], caplog: pytest.LogCaptureFixture,
        request: pytest.FixtureRequest) -> None:
    """stall: a network camera stops sending, the connection stays open (FFmpeg's read times out);
    drop: the camera goes away, open streams cut and new connections refused (a failing or unplugged
    device); vanish: the looping video file is deleted, and later put back."""
    caplog.set_level(logging.INFO, logger="emomusic")
    if fault == "vanish":
        video, away = tmp_path / "loop.avi", tmp_path / "away.avi"
        make_video(video, seconds=1.0)  # a 1 s clip: the source loops it, and finds it gone within a second
        spec = str(video)
        break_it, mend_it = (lambda: video.rename(away)), (lambda: away.rename(video))
    else:
        server = MjpegServer(ASTRONAUT)
        request.addfinalizer(server.close)
        spec = server.url
        flag = server.paused if fault == "stall" else server.down
        break_it, mend_it = flag.set, flag.clear
    cfg = config(broker, tmp_path, camera={"stall_s": 1.0}, microphone={"enabled": False},
                 fusion={"stale_after_s": 2.0})
    probe = probe_factory(broker.port, [f"{PREFIX}/#"])
    supervised(cfg, camera=spec, analyzers=factories(face="happy"))
    face_seen = lambda m: "face" in state(m)["modalities"]  # noqa: E731
    probe.wait_for(f"{PREFIX}/state", lambda m: face_seen(m) and state(m)["emotion"] == "happy", timeout=15)

    mark = len(probe.messages)
    break_it()
    status = probe.wait_for(f"{PREFIX}/modality/face", lambda m: state(m).get("status") in ("stalled", "error"),
                            after=mark, timeout=10)
    assert any(words in state(status)["detail"] for words in CAMERA_FAULT_DETAIL[fault]), state(status)
    faded = probe.wait_for(f"{PREFIX}/state", lambda m: not face_seen(m), after=mark, timeout=10)
    assert state(faded)["emotion"] == "unknown"  # the only modality is gone: no stale verdict lingers
    time.sleep(2.0)  # a few failed reopens: the backoff grows, the daemon keeps running

    mark = len(probe.messages)
    mend_it()
    probe.wait_for(f"{PREFIX}/modality/face", lambda m: state(m).get("status") == "running", after=mark, timeout=20)
    back = probe.wait_for(f"{PREFIX}/state", face_seen, after=mark, timeout=10)
    assert state(back)["emotion"] == "happy"
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "emomusic.source.camera")
    assert any(words in logged for words in CAMERA_FAULT_DETAIL[fault])
    assert "running" in logged


# -- microphone -------------------------------------------------------------------------------------
class ScriptedInputStream:
    """Stands in for ``sounddevice.InputStream`` (no sound card here): calls back from its own thread
    at 48 kHz like PortAudio, then misbehaves as its script says: ``stall`` (the callbacks stop),
    ``stop`` (the stream dies, as when a USB mic is unplugged) or ``overflow`` (input overflows)."""

    scripts: list[str] = []
    opened = 0
    blocksizes: list[int] = []

    def __init__(self, *, device: Any, channels: int, samplerate: int, dtype: str, blocksize: int,
                 callback: Callable[..., None]) -> None:
        self.script = self.scripts[min(ScriptedInputStream.opened, len(self.scripts) - 1)]
        ScriptedInputStream.opened += 1
        self.rate, self.blocksize, self.callback = samplerate, blocksize, callback
        ScriptedInputStream.blocksizes.append(blocksize)
        self.active = False
        self._closed = threading.Event()

    def start(self) -> None:
        self.active = True
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        t = np.arange(self.blocksize) / self.rate
        misbehave_at = max(2, round(0.6 * self.rate / self.blocksize))  # after 0.6 s of sound
        for i in range(100_000):
            if self._closed.wait(self.blocksize / self.rate):
                return
            if i == misbehave_at and self.script == "stall":
                self._closed.wait()
                return
            if i == misbehave_at and self.script == "stop":
                self.active = False
                return
            flags = type("Flags", (), {"input_overflow": self.script == "overflow" and i % 5 == 4})()
            block = (0.3 * np.sin(2 * np.pi * 220 * (t + i * self.blocksize / self.rate)))[:, None]
            self.callback(block.astype(np.float32), self.blocksize, None, flags)

    def close(self) -> None:
        self.active = False
        self._closed.set()


def test_microphone_stall_stop_and_overflow_are_reported_and_the_stream_reopened(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sounddevice

    from emomusic.queues import DropOldestQueue
    from emomusic.sources.microphone import MicrophoneSource

    monkeypatch.setattr(sounddevice, "query_devices", lambda device, kind: {"default_samplerate": 48000.0})
    monkeypatch.setattr(sounddevice, "InputStream", ScriptedInputStream)
    monkeypatch.setattr(ScriptedInputStream, "scripts", ["stall", "stop", "overflow"])
    monkeypatch.setattr(ScriptedInputStream, "opened", 0)
    monkeypatch.setattr(ScriptedInputStream, "blocksizes", [])
    statuses: list[tuple[str, str]] = []
    out: DropOldestQueue[Any] = DropOldestQueue(1000, "microphone")
    src = MicrophoneSource("default", out, block_ms=300, stall_s=0.5,
                           on_status=lambda name, status, detail: statuses.append((status, detail)))
    src.backoff_min_s = 0.1
    src.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any("input overflow" in d for _, d in statuses):
        time.sleep(0.05)
    src.stop()
    src.join(5)
    details = [d for s, d in statuses if s == "error"]
    assert any("delivered nothing for" in d for d in details), statuses
    assert any("stream stopped" in d for d in details), statuses
    assert any(s == "running" and "input overflow" in d for s, d in statuses), statuses
    assert ScriptedInputStream.opened >= 3 and not src.is_alive() and statuses[-1][0] == "stopped"
    chunks = []
    while (c := out.get(timeout=0)) is not None:
        chunks.append(c)
    assert chunks and {c.samples.size for c in chunks} == {4800}  # 300 ms at 16 kHz, resampled from 48 kHz
    assert set(ScriptedInputStream.blocksizes) == {14400}  # one callback per 300 ms block at 48 kHz, not every 30 ms
    assert all(b.t > a.t for a, b in zip(chunks, chunks[1:], strict=False))


# -- analyzers and models ---------------------------------------------------------------------------
class RaisingAnalyzer:
    modality = "face"
    latency_s = 0.0

    def process(self, item: Sensed) -> None:
        raise RuntimeError("simulated analyzer bug")


def test_failing_analyzer_is_restarted_then_disabled_and_the_rest_keeps_running(
        broker: Broker, tmp_path: Path, supervised: Callable[..., Daemon],
        probe_factory: Callable[..., Probe]) -> None:
    from emomusic.sources.samples import ensure_samples

    video, audio = ensure_samples(tmp_path / "samples")
    built: list[RaisingAnalyzer] = []

    def face_factory(cfg: Config, playback: Any, persist: bool) -> RaisingAnalyzer:
        built.append(RaisingAnalyzer())
        return built[-1]

    probe = probe_factory(broker.port, [f"{PREFIX}/#"])
    d = supervised(config(broker, tmp_path), camera=str(video), microphone=str(audio),
                   analyzers={"face": face_factory, "voice": lambda cfg, pb, keep: ConstantAnalyzer("voice", "sad")})
    probe.wait_for(f"{PREFIX}/modality/face", lambda m: state(m).get("status") == "restarted", timeout=10)
    disabled = probe.wait_for(f"{PREFIX}/modality/face", lambda m: state(m).get("status") == "disabled", timeout=10)
    assert "5 failures" in state(disabled)["detail"] and "simulated analyzer bug" in state(disabled)["detail"]
    fault = probe.wait_for(f"{PREFIX}/error", lambda m: state(m).get("modality") == "face", timeout=5)
    assert "disabled" in state(fault)["error"]
    assert len(built) == 5  # the first one and four restarts, then no more
    mark = len(probe.messages)
    after = probe.wait_for(f"{PREFIX}/state", lambda m: "voice" in state(m)["modalities"], after=mark, timeout=10)
    assert state(after)["emotion"] == "sad" and "face" not in state(after)["modalities"]
    assert d.healthy() and all(s.is_alive() for s in d.sources)


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_missing_or_corrupt_model_is_one_line_and_a_nonzero_exit(tmp_path: Path, damage: str) -> None:
    models = tmp_path / "models"
    models.mkdir()
    for f in (ROOT / "models").iterdir():
        if f.is_file():
            (models / f.name).write_bytes(f.read_bytes())
    broken = models / "voice_encoder_int8.onnx"
    if damage == "missing":
        broken.unlink()
    else:
        broken.write_bytes(broken.read_bytes()[:1000])  # a truncated download or a bad copy
    conf = tmp_path / "config.toml"
    conf.write_text(f'[device]\nstate_dir = "{tmp_path / "state"}"\n[models]\ndir = "{models}"\n'
                    '[player]\nenabled = false\n[mqtt]\nenabled = false\n')
    proc = subprocess.run([sys.executable, "-m", "emomusic", "run", "--config", str(conf)], capture_output=True,
                          text=True, timeout=60, env=os.environ | {"SDL_AUDIODRIVER": "dummy"})
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert str(broken) in last and "build_voice_encoder.py" in last
    assert ("not found" if damage == "missing" else "cannot be loaded") in last


# -- music ------------------------------------------------------------------------------------------
def test_music_files_deleted_or_corrupted_after_the_scan_are_skipped_at_play_time(
        broker: Broker, tmp_path: Path, probe_factory: Callable[..., Probe]) -> None:
    from emomusic.music.demo import DEMO_PIECES, synth_music, write_tagged
    from emomusic.music.library import Library
    from emomusic.music.scan import open_library
    from emomusic.music.settings import MusicSettings

    music = tmp_path / "music"
    music.mkdir()
    for i, (title, bpm, major, bright, mood, ext) in enumerate(DEMO_PIECES[:4]):
        write_tagged(music / f"{i}.{ext}", synth_music(1.0, bpm, major, bright, seed=i), title, mood, rate=16000)
    cfg = config(broker, tmp_path, library={"folders": [str(music)], "scan_on_start": False, "min_track_s": 0},
                 player={"enabled": True, "fade_ms": 0, "queue_length": 4, "history": 1, "mode": "fixed",
                         "fixed_mood": "happy"},
                 camera={"enabled": False}, microphone={"enabled": False})
    lib, _ = open_library(MusicSettings.of(cfg), rescan=True)
    titles = {Path(r["path"]).name: r["title"] for r in lib.rows()}
    lib.close()
    deleted, corrupted = sorted(music.iterdir())[:2]
    deleted.unlink()
    corrupted.write_bytes(b"\x00garbage" * 100)  # same name, no longer audio
    probe = probe_factory(broker.port, [f"{PREFIX}/player"])
    daemon = Daemon(cfg, analyzers={})
    daemon.start()
    try:
        played: set[str] = set()

        def collect(m: Any) -> bool:
            if (title := state(m).get("title")) is not None:
                played.add(title)
            return len(played) >= 2

        probe.wait_for(f"{PREFIX}/player", collect, timeout=30)
        deadline = time.monotonic() + 15
        errors: dict[str, str] = {}
        while time.monotonic() < deadline and len(errors) < 2:
            errors = {Path(r["path"]).name: r["error"] for r in Library(cfg.library_path).rows() if r["error"]}
            time.sleep(0.2)
    finally:
        daemon.stop()
    assert set(errors) == {deleted.name, corrupted.name}
    assert "no longer exists" in errors[deleted.name] and "cannot be played" in errors[corrupted.name]
    assert played <= {titles[n] for n in titles if n not in errors}  # only the intact files ever played
    assert daemon.player is not None and not daemon.player.is_alive()


def test_sqlite_library_survives_sigkill_during_a_scan(tmp_path: Path) -> None:
    from emomusic.audio import write_wav
    from emomusic.music.demo import synth_music
    from emomusic.music.library import BATCH, Library

    music = tmp_path / "music"
    music.mkdir()
    n = 4 * BATCH
    base = synth_music(3.0, 100, True, 0.5, seed=1)
    for i in range(n):  # untagged: each one is analysed, so the scan takes a while
        write_wav(music / f"{i:03d}.wav", (np.roll(base, i * 997) * 20000).astype(np.int16))
    conf = tmp_path / "config.toml"
    conf.write_text(f'[device]\nstate_dir = "{tmp_path / "state"}"\n'
                    f'[library]\nfolders = ["{music}"]\nmin_track_s = 0\n')
    db = tmp_path / "state" / "library.db"
    proc = subprocess.Popen([sys.executable, "-m", "emomusic", "scan", "--config", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    committed = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and committed < BATCH:
        time.sleep(0.05)
        if db.exists():
            try:
                committed = sqlite3.connect(db, timeout=1).execute("SELECT count(*) FROM tracks").fetchone()[0]
            except sqlite3.OperationalError:  # the schema is being created
                pass
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert BATCH <= committed < n, f"killed after {committed} of {n} tracks"
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert check.execute("SELECT count(*) FROM tracks").fetchone()[0] >= committed  # nothing committed was lost
    check.close()
    again = subprocess.run([sys.executable, "-m", "emomusic", "scan", "--config", str(conf)], capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    rows = Library(db).rows()
    assert len(rows) == n and not any(r["error"] for r in rows)
    assert all(r["source"] == "analysis" for r in rows)


# -- SIGTERM in every phase -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough untagged files that a scan takes seconds (each one is analysed)."""
    from emomusic.audio import write_wav
    from emomusic.music.demo import synth_music

    music = tmp_path_factory.mktemp("big-music")
    base = (synth_music(3.0, 90, False, 0.3, seed=2) * 20000).astype(np.int16)
    for i in range(120):
        write_wav(music / f"{i:03d}.wav", np.roll(base, i * 1013))
    return music


@pytest.mark.parametrize("phase", ["loading", "scanning", "running", "broker down"])
def test_sigterm_in_every_phase_is_a_clean_exit(phase: str, broker: Broker, tmp_path: Path, big_music: Path,
                                                probe_factory: Callable[..., Probe]) -> None:
    from conftest import free_port

    port = free_port() if phase == "broker down" else broker.port
    state_dir = tmp_path / "state"
    conf = tmp_path / "config.toml"
    conf.write_text(f'[device]\nid = "faultdev"\nstate_dir = "{state_dir}"\n[library]\nfolders = ["{big_music}"]\n'
                    f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n')
    probe = probe_factory(broker.port, [f"{PREFIX}/availability", f"{PREFIX}/state"])
    proc = subprocess.Popen([sys.executable, "-m", "emomusic", "demo", "--config", str(conf)],
                            env=os.environ | {"SDL_AUDIODRIVER": "dummy"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    trigger = {"loading": "starting (config", "scanning": "scanning the library",
               "broker down": "is not reachable"}.get(phase)
    try:
        if trigger:
            deadline = time.monotonic() + 60
            while not any(trigger in line for line in lines) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert any(trigger in line for line in lines), lines
        else:
            probe.wait_for(f"{PREFIX}/state", timeout=60)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        elapsed = time.monotonic() - t0
    finally:
        proc.kill()
    reader.join(5)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert elapsed < 5.0, f"took {elapsed:.1f} s to stop"
    assert "Traceback" not in out
    online = [i for i, m in enumerate(probe.messages) if m.topic.endswith("/availability") and m.payload == b"online"]
    if online:  # it got as far as the broker: it must have said goodbye
        probe.wait_for(f"{PREFIX}/availability", lambda m: m.payload == b"offline", after=online[-1], timeout=3)
    leftovers = [p for p in state_dir.rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers  # nothing half-written
    db = state_dir / "library.db"
    if db.exists():
        assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
