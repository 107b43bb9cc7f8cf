"""Capture sources on real files: pacing, thinning to the analysis rate, resampling, reopen."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emomusic.audio import to_mono_16k
from emomusic.messages import AudioChunk, VideoFrame
from emomusic.queues import DropOldestQueue
from emomusic.sources.camera import CameraSource, FramePool, capture_fps
from emomusic.sources.microphone import AudioFileSource
from emomusic.sources.samples import make_speech_track, make_video


def drain(q: DropOldestQueue, source) -> list:  # type: ignore[no-untyped-def]
    items = []
    while source.is_alive() or len(q):
        item = q.get(0.2)
        if item is not None:
            items.append(item)
    return items


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("v") / "clip.avi"
    make_video(path, seconds=3.0, fps=15.0, size=(320, 240))
    return path


def test_video_file_is_thinned_to_the_analysis_rate_with_stream_timestamps(video: Path) -> None:
    q: DropOldestQueue[VideoFrame] = DropOldestQueue(2)
    src = CameraSource(str(video), q, analysis_fps=5.0, loop=False, fast=True)
    src.start()
    frames = drain(q, src)
    src.join(5)
    assert src.status == "ended"
    assert len(frames) == 15  # 3 s at 5 fps out of 45 frames
    ts = [f.t for f in frames]
    assert ts[0] == 0.0 and np.allclose(np.diff(ts), 0.2, atol=0.07)
    assert frames[0].image.shape == (240, 320, 3)
    assert q.dropped == 0
    # Frames thinning drops are grabbed without decoding: the ones emitted are still the right ones.
    import cv2

    cap = cv2.VideoCapture(str(video))
    decoded = [cap.read()[1] for _ in range(45)]
    for f in frames:
        np.testing.assert_array_equal(f.image, decoded[round(f.t * 15)])


def test_a_frame_buffer_is_reused_only_once_nothing_holds_it(video: Path) -> None:
    """FramePool: frames no one holds any more come back as the buffers of later frames (no fresh 0.9 MB
    of pages a frame), never while a frame, a view of it or a queue still holds them."""
    pool = FramePool(size=2)
    a = np.zeros((4, 4, 3), np.uint8)
    pool.keep(a)
    assert pool.free() is None  # ``a`` is still held here
    view = a[1:]
    del a
    assert pool.free() is None  # so is a view of it
    del view
    assert pool.free() is not None
    import cv2

    cap = cv2.VideoCapture(str(video))
    decoded = [cap.read()[1] for _ in range(45)]
    q: DropOldestQueue[VideoFrame] = DropOldestQueue(2)
    src = CameraSource(str(video), q, analysis_fps=5.0, loop=False, fast=True)
    src.start()
    buffers, kept, frames = set(), [], 0
    while src.is_alive() or len(q):
        frame = q.get(0.2)
        if frame is None:
            continue
        frames += 1
        buffers.add(frame.image.ctypes.data)
        if frame.index % 5 == 0:
            kept.append(frame)  # held on to: never overwritten
        else:  # looked at and let go, as the face analyzer does
            np.testing.assert_array_equal(frame.image, decoded[round(frame.t * 15)])
        del frame
    src.join(5)
    assert frames == 15 and len(kept) == 3
    assert len(buffers) <= 3 + 6  # the kept three, and a few in turn for the twelve let go
    for f in kept:
        np.testing.assert_array_equal(f.image, decoded[round(f.t * 15)])


class FakeCamera:
    """A V4L2 camera as OpenCV shows it: ``grab`` waits for the next frame (advancing the test's clock
    by a frame interval, 1 % longer than nominal), ``retrieve`` decodes the grabbed one (counted). It
    runs at 30 fps unless it ``honours`` a request for another rate."""

    made: list[FakeCamera] = []

    def __init__(self, target: object, api: int = 0, honours: bool = True) -> None:
        self.fps, self.honours, self.grabs, self.decodes, self.props = 30.0, honours, 0, 0, {}
        FakeCamera.made.append(self)

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return True

    def set(self, prop: int, value: float) -> bool:
        import cv2

        self.props[prop] = value
        if prop == cv2.CAP_PROP_FPS and self.honours:
            self.fps = value
        return True

    def get(self, prop: int) -> float:
        return self.fps

    def grab(self) -> bool:
        NOW[0] += 1.0 / (self.fps * 0.99)  # a camera's clock is never quite the host's
        self.grabs += 1
        return True

    def retrieve(self, buf: np.ndarray | None = None) -> tuple[bool, np.ndarray]:
        self.decodes += 1
        return True, np.full((48, 64, 3), self.grabs % 256, np.uint8)

    def release(self) -> None:
        pass


NOW = [0.0]


@pytest.mark.parametrize("honours", [True, False])
def test_a_live_camera_is_asked_for_few_frames_and_only_the_due_ones_are_decoded(
        honours: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    FakeCamera.made.clear()
    NOW[0] = 0.0
    monkeypatch.setattr(cv2, "VideoCapture", lambda target, api=0: FakeCamera(target, api, honours))
    q: DropOldestQueue[VideoFrame] = DropOldestQueue(100)
    src = CameraSource("0", q, analysis_fps=3.0, clock=lambda: NOW[0])
    src.open()
    cam = FakeCamera.made[0]
    assert cam.props[cv2.CAP_PROP_FPS] == 10  # capture_fps(3): twice the analysis rate, a rate cameras offer
    assert cam.fps == (10 if honours else 30)
    for _ in range(round(6 * cam.fps)):  # six seconds of camera
        src.read_once()
    frames = [q.get(0) for _ in range(len(q))]
    assert 17 <= len(frames) <= 19  # 3 a second
    assert cam.decodes == len(frames)  # no frame decoded only to be dropped
    gaps = np.diff([f.t for f in frames])
    # each the first frame at or after its moment: a gap is a third of a second give or take a camera frame,
    # and the moments do not drift
    assert np.all(np.abs(gaps - 1 / 3) <= 1 / cam.fps + 1e-6) and abs(gaps.mean() - 1 / 3) < 0.02


def test_a_pi_camera_is_asked_for_the_same_rate_through_picamera2(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    class FakePicamera2:
        def create_video_configuration(self, main: dict, controls: dict) -> dict:
            return {"main": main, "controls": controls}

        def configure(self, config: dict) -> None:
            self.rate = config["controls"]["FrameRate"]

        def start(self) -> None:
            pass

        def capture_array(self) -> np.ndarray:
            NOW[0] += 1.0 / self.rate
            return np.zeros((48, 64, 3), np.uint8)

    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    NOW[0] = 0.0
    q: DropOldestQueue[VideoFrame] = DropOldestQueue(100)
    src = CameraSource("picamera2", q, analysis_fps=3.0, clock=lambda: NOW[0])
    src.open()
    assert src._picam.rate == 10  # type: ignore[attr-defined]
    for _ in range(60):
        src.read_once()
    assert 17 <= len(q) <= 19


def test_the_camera_rate_asked_for_is_twice_the_analysis_rate_or_the_next_common_one() -> None:
    assert [capture_fps(f) for f in (0.5, 1, 2.5, 3, 5, 8, 12, 20)] == [5, 5, 5, 10, 10, 20, 25, 30]


def test_looping_video_keeps_time_increasing(video: Path) -> None:
    q: DropOldestQueue[VideoFrame] = DropOldestQueue(1000)
    src = CameraSource(str(video), q, analysis_fps=5.0, loop=True, fast=True)
    src.start()
    while len(q) < 40:
        time.sleep(0.01)
    src.stop()
    src.join(5)
    ts = [q.get(0).t for _ in range(40)]  # type: ignore[union-attr]
    assert all(b > a for a, b in zip(ts, ts[1:], strict=False))
    assert ts[-1] > 6.0


def test_real_time_pace_follows_the_wall_clock(video: Path) -> None:
    q: DropOldestQueue[VideoFrame] = DropOldestQueue(100)
    src = CameraSource(str(video), q, analysis_fps=5.0, loop=False)
    start = time.monotonic()
    src.start()
    src.join(10)
    assert time.monotonic() - start >= 2.5  # a 3 s clip is not played faster than real time
    assert len(q) == 15


def test_missing_video_reports_errors_and_retries(tmp_path: Path) -> None:
    events: list[tuple[str, str]] = []
    q: DropOldestQueue[VideoFrame] = DropOldestQueue(2)
    src = CameraSource(str(tmp_path / "gone.avi"), q, on_status=lambda n, s, d: events.append((s, d)))
    src.backoff_min_s = 0.05
    src.start()
    time.sleep(0.5)
    src.stop()
    src.join(5)
    errors = [d for s, d in events if s == "error"]
    assert len(errors) >= 2 and "gone.avi does not exist" in errors[0]
    assert events[-1][0] == "stopped"


@pytest.mark.parametrize("kind", ["video", "audio"])
def test_a_looping_file_that_vanishes_is_an_error_until_it_is_back(kind: str, tmp_path: Path, video: Path) -> None:
    events: list[tuple[str, str]] = []
    on_status = lambda n, s, d: events.append((s, d))  # noqa: E731
    q: DropOldestQueue = DropOldestQueue(4)
    if kind == "video":
        path = tmp_path / "clip.avi"
        shutil.copy(video, path)
        src: CameraSource | AudioFileSource = CameraSource(str(path), q, fast=True, on_status=on_status)
    else:
        path = tmp_path / "tone.wav"
        sf.write(path, 0.3 * np.sin(np.arange(9600) * 2 * np.pi * 440 / 16000), 16000)  # 0.6 s
        src = AudioFileSource(str(path), q, fast=True, on_status=on_status)
    src.backoff_min_s = 0.05
    src.start()
    items: list = []

    def take_until(done: Callable[[], bool], timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end:
            item = q.get(0.05)
            if item is not None:
                items.append(item)
        assert done()

    take_until(lambda: len(items) >= 20)  # several loops of the file
    path.rename(tmp_path / "away")
    take_until(lambda: any(s == "error" for s, _ in events))
    time.sleep(0.3)  # a few reopens fail while it is gone
    before = len(items)
    (tmp_path / "away").rename(path)
    take_until(lambda: len(items) >= before + 20)
    src.stop()
    drain(q, src)
    errors = [d for s, d in events if s == "error"]
    assert f"{path} vanished" in errors[0] and len(errors) >= 2 and "does not exist" in errors[1]
    assert [s for s, _ in events].count("running") >= 2  # delivering again once the file was back
    ts = [item.t for item in items]
    assert all(b > a for a, b in zip(ts, ts[1:], strict=False))  # stream time goes on across the reopen


def test_audio_file_is_resampled_to_16k_mono_in_fixed_chunks(tmp_path: Path) -> None:
    t = np.arange(44100 * 2) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    path = tmp_path / "tone.flac"
    sf.write(path, stereo, 44100)
    q: DropOldestQueue[AudioChunk] = DropOldestQueue(2)
    src = AudioFileSource(str(path), q, block_ms=300, loop=False, fast=True)
    src.start()
    chunks = drain(q, src)
    assert len(chunks) == 7  # 2 s = 6.67 chunks of 0.3 s, the last one padded
    assert all(c.samples.dtype == np.int16 and c.samples.size == 4800 for c in chunks)
    assert [round(c.t, 2) for c in chunks[:3]] == [0.0, 0.3, 0.6]
    spectrum = np.abs(np.fft.rfft(chunks[2].samples.astype(float)))
    assert abs(np.argmax(spectrum) * 16000 / 4800 - 440) < 5
    assert 0.4 < np.abs(chunks[2].samples).max() / 32767 < 0.6


def test_to_mono_16k_handles_integer_input() -> None:
    x = (np.sin(np.linspace(0, 100, 8000)) * 100 + 128).astype(np.uint8)  # 8-bit unsigned, 8 kHz
    y = to_mono_16k(x, 8000)
    assert y.dtype == np.int16 and y.size == 16000
    assert abs(int(y.mean())) < 500


def test_generated_sample_speech_is_16k_and_has_speech_and_pauses(tmp_path: Path) -> None:
    path = tmp_path / "s.wav"
    make_speech_track(path)
    data, rate = sf.read(path, dtype="int16")
    assert rate == 16000 and data.ndim == 1
    frames = data[: data.size // 480 * 480].reshape(-1, 480).astype(float)
    rms = np.sqrt((frames**2).mean(axis=1))
    assert (rms > 1000).mean() > 0.2 and (rms < 200).mean() > 0.2


def test_no_microphone_is_known_without_loading_portaudio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where there is no ALSA capture device and no sound server, 'auto' takes the sample speech without
    PortAudio (3 MB held for as long as the daemon runs); any sign of a microphone asks PortAudio."""
    from emomusic.sources import resolve

    pcm = tmp_path / "pcm"
    runtime = tmp_path / "run"
    (runtime / "pulse").mkdir(parents=True)
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    assert resolve.no_capture_device(pcm, env) == "no ALSA capture device and no sound server"  # no /proc/asound
    pcm.write_text("00-00: bcm2835 Headphones : bcm2835 Headphones : playback 8\n")
    assert resolve.no_capture_device(pcm, env) is not None  # a sound card that only plays
    pcm.write_text("01-00: USB Audio : USB Audio : playback 1 : capture 1\n")
    assert resolve.no_capture_device(pcm, env) is None  # a USB microphone
    pcm.unlink()
    assert resolve.no_capture_device(pcm, env | {"PULSE_SERVER": "tcp:host"}) is None
    (runtime / "pulse" / "native").touch()
    assert resolve.no_capture_device(pcm, env) is None  # a PulseAudio socket: it may bring a microphone

    sample = tmp_path / "speech.wav"
    monkeypatch.setattr(resolve, "no_capture_device", lambda: "no ALSA capture device and no sound server")
    monkeypatch.setattr(resolve, "ensure_samples", lambda folder, stop: (tmp_path / "video.avi", sample))
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # importing it would fail the test
    assert resolve.resolve_microphone("auto", tmp_path) == str(sample)
    assert resolve.resolve_microphone("hw:1,0", tmp_path) == "hw:1,0"
