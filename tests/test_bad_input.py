"""Bad input against the real thing: fuzzed MQTT payloads into a running daemon, configs the service
user cannot read, audio files and images of odd shapes, and proof that no frame or audio sample is
ever written to disk."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emomusic.commands import COMMAND_TOPICS, PayloadError, parse_command, parse_external_emotion
from emomusic.config import parse_config
from emomusic.config.music import MODES
from emomusic.labels import ALL_LABELS
from emomusic.service.daemon import Daemon

from conftest import Broker, Probe
from fakes import factories

PREFIX = "emomusic/fuzzdev"
EXTERNAL = "kitchen/emotion"
LIMIT = 1024


# -- MQTT fuzzing -----------------------------------------------------------------------------------
@pytest.fixture
def fuzz_target(broker: Broker, tmp_path: Path, probe_factory: Callable[..., Probe]) -> Iterator[tuple[Daemon, Probe]]:
    from emomusic.sources.samples import ensure_samples

    video, audio = ensure_samples(tmp_path / "samples")
    cfg = parse_config({
        "device": {"id": "fuzzdev", "state_dir": str(tmp_path / "state")},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "heartbeat_s": 0.5, "min_interval_s": 0.1,
                 "external_emotion_topics": [EXTERNAL], "max_payload_bytes": LIMIT},
        "player": {"enabled": False},
    }, env={})
    probe = probe_factory(broker.port, [f"{PREFIX}/#"])
    daemon = Daemon(cfg, camera=str(video), microphone=str(audio), analyzers=factories())
    daemon.bridge._errors.burst = 10**9  # every rejection answered: the rate limit has its own test
    runner = threading.Thread(target=daemon.run, daemon=True)  # the real supervise loop applies commands
    runner.start()
    probe.wait_for(f"{PREFIX}/availability", lambda m: m.payload == b"online", timeout=10)
    yield daemon, probe
    daemon.request_stop()
    runner.join(10)


label_words = st.sampled_from([*ALL_LABELS, "Happy", "joy", "", "unknown", "💥", "null"])
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20))
json_values = st.recursive(st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=10), label_words),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=3), max_leaves=6)
payloads = st.one_of(
    st.binary(max_size=64),  # mostly invalid UTF-8
    st.binary(min_size=LIMIT + 1, max_size=LIMIT + 64),  # over the limit
    st.text(max_size=40).map(str.encode),
    st.sampled_from(["match", "REGULATE", "off", "skip", "pause", "50", "101", "-1", "7.5", '"play"', "sad",
                     "happy"]).map(str.encode),
    st.builds(lambda e, c: json.dumps({"emotion": e, "confidence": c}).encode(), label_words, numbers),
    json_values.map(lambda v: json.dumps(v).encode()),
)
targets = st.sampled_from([*(f"{PREFIX}/{t}" for t in COMMAND_TOPICS), EXTERNAL])


def rejected(topic: str, payload: bytes) -> bool:
    """What the daemon must answer on …/error: what the parsers reject, and (this daemon has no music
    stage) a valid play/skip/toggle, which cannot act and is answered with the reason."""
    try:
        if topic == EXTERNAL:
            parse_external_emotion(payload, LIMIT, t=0.0)
        else:
            cmd = parse_command(topic[len(PREFIX) + 1 :], payload, LIMIT)
            return cmd.kind == "player" and cmd.value in ("play", "skip", "toggle")
    except PayloadError:
        return True
    return False


# Oversized payloads are the point here, so hypothesis's "data too large" check is off.
@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
@given(st.lists(st.tuples(targets, payloads), min_size=20, max_size=20))
def test_fuzzed_commands_and_emotions_never_hurt_a_running_daemon(fuzz_target: tuple[Daemon, Probe],
                                                                   messages: list[tuple[str, bytes]]) -> None:
    daemon, probe = fuzz_target
    mark = len(probe.messages)
    for topic, payload in messages:
        probe.publish(topic, payload)
    expected = sum(rejected(t, p) for t, p in messages)

    def errors() -> list[Any]:
        return [m for m in probe.messages[mark:] if m.topic == f"{PREFIX}/error" and "topic" in m.json()]

    deadline = time.monotonic() + 10
    while len(errors()) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    got = errors()
    assert len(got) == expected, [m.json() for m in got]
    assert all(m.json()["error"] and m.json()["topic"] in {t for t, _ in messages} for m in got)
    # Still running, and what it publishes is still a valid state.
    assert daemon.healthy() and all(s.is_alive() for s in daemon.sources)
    assert all(w.is_alive() and not w.disabled for w in daemon.workers)
    st_msg = probe.wait_for(f"{PREFIX}/state", after=len(probe.messages), timeout=5).json()
    assert st_msg["emotion"] in (*ALL_LABELS, "unknown")
    assert 0 <= st_msg["confidence"] <= 1 and math.isfinite(st_msg["confidence"])
    if st_msg["emotion"] == "unknown":
        assert st_msg["valence"] is None and st_msg["arousal"] is None
    else:
        assert all(-1 <= st_msg[k] <= 1 for k in ("valence", "arousal"))
    assert all(math.isfinite(p) and 0 <= p <= 1 for p in st_msg["probabilities"].values())
    assert daemon.controls.mode in MODES and 0 <= daemon.controls.volume <= 100


def test_commands_on_other_topics_are_not_taken(fuzz_target: tuple[Daemon, Probe]) -> None:
    daemon, probe = fuzz_target
    before = (daemon.controls.mode, daemon.controls.volume)
    for topic in (f"{PREFIX}/mode", f"{PREFIX}/volume/set/x", f"{PREFIX}/Mode/set", "emomusic/other/mode/set",
                  f"{PREFIX}/state"):
        probe.publish(topic, b"off")
    probe.publish(f"{PREFIX}/volume/set", b"37")  # a marker: once it is applied, the others were seen too
    deadline = time.monotonic() + 5
    while daemon.controls.volume != 37 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.controls.volume == 37 and daemon.controls.mode == before[0]


# -- config -----------------------------------------------------------------------------------------
def load_as_service_user(path: Path) -> str:
    """``load_config(path)`` as an unprivileged user (nobody, when the tests run as root, as CI does);
    returns the ConfigError's text, or "" when it loaded."""
    from emomusic.config import ConfigError, load_config

    if os.geteuid() != 0:
        try:
            load_config(path, env={})
        except ConfigError as e:
            return str(e)
        return ""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child drops root and tries; modules are already imported
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                load_config(path, env={})
                msg = ""
            except ConfigError as e:
                msg = str(e)
            os.write(w, msg.encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        return f.read()


@pytest.fixture
def etc_dir() -> Iterator[Path]:
    """A directory the service user can enter, like /etc/emomusic (pytest's tmp_path is private to root)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        Path(d).chmod(0o755)
        yield Path(d)


def test_a_config_the_service_user_cannot_read_is_reported_as_such(etc_dir: Path) -> None:
    tmp_path = etc_dir
    conf = tmp_path / "config.toml"
    conf.write_text('[mqtt]\nhost = "broker"\n')
    conf.chmod(0o644)
    assert load_as_service_user(conf) == ""
    conf.chmod(0o600 if os.geteuid() == 0 else 0o000)
    msg = load_as_service_user(conf)
    assert msg.startswith(f"{conf}: not readable by this user (uid ") and "\n" not in msg
    # The password file is a secret: readable by the service user only, and named when it is not.
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600 if os.geteuid() == 0 else 0o000)
    conf.write_text(f'[mqtt]\nusername = "emo"\npassword_file = "{secret}"\n')
    conf.chmod(0o644)
    msg = load_as_service_user(conf)
    assert msg.startswith(f"mqtt.password_file: {secret} is not readable by this user") and "s3cret" not in msg


# -- audio files of odd shapes ----------------------------------------------------------------------
def write_pcm(path: Path, rate: int, channels: int, width: int, seconds: float) -> None:
    """A WAV of a 440 Hz tone in every channel (8-bit WAV is unsigned, as the format says)."""
    n = int(rate * seconds)
    tone = np.sin(2 * np.pi * 440 * np.arange(n) / rate)
    if width == 1:
        pcm = (128 + 100 * tone).astype(np.uint8)
    else:
        pcm = (20000 * tone).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.repeat(pcm[:, None], channels, axis=1).tobytes())


def sparse_wav(path: Path, rate: int, channels: int, seconds: float) -> None:
    """A huge 16-bit WAV of silence that takes no disk: the header, then a hole."""
    import struct

    data = int(rate * seconds) * channels * 2
    header = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16) + b"data" + struct.pack("<I", data)
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(len(header) + data)


def run_file_source(path: Path, blocks: int = 1000, timeout: float = 10.0) -> tuple[list[Any], list[tuple[str, str]]]:
    from emomusic.queues import DropOldestQueue
    from emomusic.sources.microphone import AudioFileSource

    out: DropOldestQueue[Any] = DropOldestQueue(10_000, "microphone")
    statuses: list[tuple[str, str]] = []
    src = AudioFileSource(str(path), out, loop=False, fast=True,
                          on_status=lambda name, status, detail: statuses.append((status, detail)))
    src.start()
    chunks: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(chunks) < blocks and src.status not in ("ended", "failed"):
        c = out.get(timeout=0.05)
        if c is not None:
            chunks.append(c)
    src.stop()
    src.join(5)
    while len(chunks) < blocks and (c := out.get(timeout=0)) is not None:
        chunks.append(c)
    return chunks, statuses


@pytest.mark.parametrize(("rate", "channels", "width", "seconds"), [
    (8000, 1, 1, 2.0),  # 8-bit telephone quality
    (8000, 1, 2, 2.0),
    (48000, 6, 2, 2.0),  # a 5.1 recording
    (44100, 2, 2, 0.01),  # shorter than one block
])
def test_odd_audio_files_become_16k_mono_blocks(tmp_path: Path, rate: int, channels: int, width: int,
                                                seconds: float) -> None:
    path = tmp_path / "odd.wav"
    write_pcm(path, rate, channels, width, seconds)
    chunks, statuses = run_file_source(path)
    assert statuses[-1][0] == "ended", statuses
    assert chunks and {c.samples.size for c in chunks} == {4800} and all(c.samples.dtype == np.int16 for c in chunks)
    assert len(chunks) == math.ceil(seconds * 16000 / 4800)
    if seconds >= 1:  # the tone survives: 440 Hz at 16 kHz
        x = np.concatenate([c.samples for c in chunks])[: int(seconds * 16000)].astype(np.float32)
        spectrum = np.abs(np.fft.rfft(x))
        assert abs(np.argmax(spectrum) * 16000 / x.size - 440) < 5


@pytest.mark.parametrize(("content", "expected"), [
    ("empty", "holds no samples"),
    ("garbage", "cannot be decoded"),
])
def test_audio_files_that_are_no_audio_are_errors_that_name_the_file(tmp_path: Path, content: str,
                                                                      expected: str) -> None:
    path = tmp_path / f"{content}.wav"
    if content == "empty":
        write_pcm(path, 16000, 1, 2, 0.0)
    else:
        path.write_bytes(b"RIFF\x00\x00garbage" * 50)
    chunks, statuses = run_file_source(path)
    assert not chunks
    # played once, so it fails for good (retrying a broken file changes nothing): one status, no loop
    assert statuses == [("failed", statuses[0][1])] and str(path) in statuses[0][1] and expected in statuses[0][1]


def test_a_huge_audio_file_is_streamed_not_loaded(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "huge.wav"
    sparse_wav(path, 48000, 6, 5400)  # 1.5 h of 6-channel 48 kHz: 3.1 GB of samples (WAV stops at 4 GB)
    tracemalloc.start()
    try:
        chunks, statuses = run_file_source(path, blocks=50)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(chunks) == 50 and statuses[0][0] == "running"
    assert peak < 50e6, f"{peak / 1e6:.0f} MB"


# -- images of odd shapes ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def analyzer() -> Any:
    from emomusic.face.analyzer import FaceAnalyzer

    cfg = parse_config({"face": {"detect_every": 1}}, env={})
    return FaceAnalyzer(cfg.face, cfg.models)


def odd_images() -> dict[str, tuple[np.ndarray, bool]]:
    """name -> (frame, whether the astronaut's face is in it)."""
    import cv2
    from skimage import data as skdata

    bgr = np.ascontiguousarray(skdata.astronaut()[:, :, ::-1])
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return {
        "gray": (gray, True), "gray with a channel axis": (gray[:, :, None], True),
        "BGRA": (cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), True), "16-bit": (bgr.astype(np.uint16) * 257, True),
        "float 0-1": (bgr.astype(np.float32) / 255, True), "mirrored view": (bgr[:, ::-1], True),
        "4000x3000": (cv2.resize(bgr, (4000, 3000)), True), "1x1": (np.zeros((1, 1, 3), np.uint8), False),
        "empty": (np.zeros((0, 0, 3), np.uint8), False), "2 px wide": (np.zeros((480, 2, 3), np.uint8), False),
    }


@pytest.mark.parametrize("name", list(odd_images()))
def test_odd_frames_are_analysed_or_skipped_never_fatal(analyzer: Any, name: str) -> None:
    from emomusic.messages import VideoFrame

    image, has_face = odd_images()[name]
    obs = analyzer.process(VideoFrame(0.0, image, 0))
    assert (obs is not None) == has_face
    if obs is not None:
        assert obs.top() == "happy" and 0 < obs.confidence <= 1


def test_what_is_no_image_is_a_clear_error(analyzer: Any) -> None:
    from emomusic.messages import VideoFrame

    with pytest.raises(ValueError, match=r"expected a gray, BGR or BGRA frame, got an array of shape \(4, 4, 5\)"):
        analyzer.process(VideoFrame(0.0, np.zeros((4, 4, 5), np.uint8), 0))


# -- privacy ----------------------------------------------------------------------------------------
MEDIA_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"RIFF", b"OggS", b"fLaC", b"ID3", b"\x1aE\xdf\xa3", b"\x93NUMPY")


def test_no_frame_or_audio_sample_is_written_anywhere(tmp_path: Path) -> None:
    """The real pipeline (face and voice models) on a video with a face and speech: afterwards the
    only new file is the requested timeline of labels, in the working, temp, home and state dirs."""
    from emomusic.sources.samples import ensure_samples

    video, audio = ensure_samples(tmp_path / "media")
    dirs = {name: tmp_path / name for name in ("cwd", "tmp", "home", "state", "cache")}
    for d in dirs.values():
        d.mkdir()
    out = dirs["cwd"] / "timeline.jsonl"
    # Without the telemetry opt-outs this test process got by importing emomusic: the daemon must set them itself.
    env = {k: v for k, v in os.environ.items() if "TELEMETRY" not in k} | {
        "TMPDIR": str(dirs["tmp"]), "HOME": str(dirs["home"]), "EMOMUSIC_STATE_DIR": str(dirs["state"]),
        "XDG_CACHE_HOME": str(dirs["cache"])}
    proc = subprocess.run([sys.executable, "-m", "emomusic", "replay", "--video", str(video), "--audio", str(audio),
                           "--jsonl", str(out), "--fast"], cwd=dirs["cwd"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    written = [p for d in dirs.values() for p in d.rglob("*") if p.is_file()]
    assert written == [out], written
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and {"face", "voice"} <= {m for r in rows for m in r["modalities"]}
    assert not out.read_bytes().startswith(MEDIA_MAGIC)
    allowed = {"t", "emotion", "confidence", "valence", "arousal", "probabilities", "modalities"}
    assert all(set(r) <= allowed for r in rows)
    assert all(len(r["probabilities"]) <= len(ALL_LABELS) for r in rows)  # labels and numbers, nothing else
