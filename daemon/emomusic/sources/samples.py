"""Sample media for a machine with no camera or microphone: generated once into the state dir.

Nothing here comes from a dataset: the video is drawn, the speech is espeak-ng's (when it is
installed) or a synthetic voiced signal, so the demo carries no licence question.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emomusic.audio import RATE, write_wav

log = logging.getLogger("emomusic.samples")

VIDEO_NAME = "sample_video.avi"
AUDIO_NAME = "sample_speech.wav"
VIDEO_SECONDS, VIDEO_FPS = 20.0, 15.0
SENTENCES = (
    "Good morning. I feel wonderful today, the sun is shining.",
    "I am so tired of waiting. This is really annoying.",
    "Let us sit down and relax for a while.",
    "Oh no, I think I lost my keys again.",
)


def synth_voice(duration_s: float, f0: float, rng: np.random.Generator) -> np.ndarray:
    """A crude voiced signal: glottal-like harmonics with a wandering pitch and syllable envelope."""
    t = np.arange(int(duration_s * RATE)) / RATE
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t) + 0.02 * rng.standard_normal())
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t - np.pi / 2))
    return (x * syllables * 0.25).astype(np.float32)


def espeak_speech(text: str) -> np.ndarray | None:
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        try:
            subprocess.run([exe, "-w", str(out), text], check=True, capture_output=True, timeout=30)
        except (subprocess.SubprocessError, OSError):
            return None
        with wave.open(str(out), "rb") as w:
            rate = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    from emomusic.audio import to_mono_16k

    return to_mono_16k(x, rate).astype(np.float32) / 32768


def make_speech_track(path: Path, seed: int = 0) -> None:
    """Utterances with pauses between them, quiet room noise throughout."""
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    for i, sentence in enumerate(SENTENCES):
        voice = espeak_speech(sentence)
        if voice is None:
            voice = synth_voice(2.5, 110 + 40 * i, rng)
        parts += [np.zeros(int(1.5 * RATE), np.float32), voice / max(1e-6, np.abs(voice).max()) * 0.5]
    parts.append(np.zeros(int(1.5 * RATE), np.float32))
    audio = np.concatenate(parts)
    audio += 0.003 * rng.standard_normal(audio.size).astype(np.float32)
    write_wav(path, (np.clip(audio, -1, 1) * 32767).astype(np.int16))


SAMPLE_FACE = Path(__file__).resolve().parents[1] / "data" / "sample_face.jpg"


def make_video(path: Path, seconds: float = VIDEO_SECONDS, fps: float = VIDEO_FPS,
               size: tuple[int, int] = (640, 480)) -> None:
    """A face (the bundled public-domain portrait) drifting slowly over a gradient background,
    MJPG in AVI so OpenCV reads it everywhere."""
    import cv2

    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot write {path}")
    face = cv2.imread(str(SAMPLE_FACE))
    if face is None:
        raise OSError(f"cannot read {SAMPLE_FACE}")
    grad = cv2.cvtColor(np.tile(np.linspace(60, 160, w, dtype=np.uint8), (h, 1)), cv2.COLOR_GRAY2BGR)
    rng = np.random.default_rng(0)
    for i in range(int(seconds * fps)):
        t = i / fps
        frame = grad.copy()
        # A seated listener: the head sways a few centimetres (up to ~15 px/s here) and leans in a little.
        side = int(min(w, h) * (0.4 + 0.03 * np.sin(t * 0.3)))
        f = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        x = int((w - side) / 2 + 60 * np.sin(t * 0.25))
        y = int((h - side) / 2 + 20 * np.sin(t * 0.4))
        frame[y : y + side, x : x + side] = f
        noise = rng.integers(-6, 7, frame.shape, dtype=np.int16)
        writer.write(np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    writer.release()


class SampleMediaError(OSError):
    """The sample media cannot be written (a read-only or full state dir)."""



def video_is_whole(path: Path, frames: int) -> bool:
    """Whether a video has all its frames and its last one decodes: OpenCV's writer fails silently
    on a full disk, leaving a truncated file that must not be taken for the sample."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened() or int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) != frames:
            return False
        cap.set(cv2.CAP_PROP_POS_FRAMES, frames - 1)
        return bool(cap.read()[0])
    finally:
        cap.release()


def wav_is_whole(path: Path) -> bool:
    try:
        with wave.open(str(path), "rb") as w:
            expected = 44 + w.getnframes() * w.getsampwidth() * w.getnchannels()
        return w.getnframes() > 0 and path.stat().st_size >= expected
    except (OSError, EOFError, wave.Error):
        return False


def _write_whole(final: Path, make: Callable[[Path], None], whole: Callable[[Path], bool], what: str) -> None:
    """Write to a temp file, check it is complete, and only then rename it into place."""
    tmp = final.with_name(f".{final.stem}.tmp{final.suffix}")
    try:
        make(tmp)
        if not whole(tmp):
            raise OSError(errno.ENOSPC, "the file came out incomplete (is the disk full?)")
        tmp.replace(final)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise SampleMediaError(f"cannot write the sample {what} in {final.parent}: {e.strerror or e}") from None


def ensure_samples(directory: Path) -> tuple[Path, Path]:
    """Create the sample video and speech track in ``directory`` unless whole ones exist; raises
    :class:`SampleMediaError` (one readable line) when the directory is not usable."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SampleMediaError(f"cannot create the sample media folder {directory}: {e.strerror or e}") from None
    video, audio = directory / VIDEO_NAME, directory / AUDIO_NAME
    frames = int(VIDEO_SECONDS * VIDEO_FPS)
    if not (video.exists() and video_is_whole(video, frames)):
        log.info("generating sample video %s", video)
        _write_whole(video, make_video, lambda p: video_is_whole(p, frames), "video")
    if not (audio.exists() and wav_is_whole(audio)):
        log.info("generating sample speech %s", audio)
        _write_whole(audio, make_speech_track, wav_is_whole, "speech")
    return video, audio
