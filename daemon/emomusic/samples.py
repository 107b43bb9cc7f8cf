"""Sample media for a machine with no camera or microphone: generated once into the state dir.

Nothing here comes from a dataset: the video is drawn, the speech is espeak-ng's (when it is
installed) or a synthetic voiced signal, so the demo carries no licence question.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger("emomusic.samples")

VIDEO_NAME = "sample_video.avi"
AUDIO_NAME = "sample_speech.wav"
RATE = 16000
SENTENCES = (
    "Good morning. I feel wonderful today, the sun is shining.",
    "I am so tired of waiting. This is really annoying.",
    "Let us sit down and relax for a while.",
    "Oh no, I think I lost my keys again.",
)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> None:
    """Mono int16 WAV through the standard library (no soundfile needed)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype=np.int16).tobytes())


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
    from emomusic.microphone import to_mono_16k

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


SAMPLE_FACE = Path(__file__).resolve().parent / "data" / "sample_face.jpg"


def make_video(path: Path, seconds: float = 20.0, fps: float = 15.0, size: tuple[int, int] = (640, 480)) -> None:
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


def ensure_samples(directory: Path) -> tuple[Path, Path]:
    """Create the sample video and speech track in ``directory`` unless they exist."""
    directory.mkdir(parents=True, exist_ok=True)
    video, audio = directory / VIDEO_NAME, directory / AUDIO_NAME
    if not video.exists():
        log.info("generating sample video %s", video)
        tmp = video.with_suffix(".tmp.avi")
        make_video(tmp)
        tmp.replace(video)
    if not audio.exists():
        log.info("generating sample speech %s", audio)
        tmp = audio.with_suffix(".tmp.wav")
        make_speech_track(tmp)
        tmp.replace(audio)
    return video, audio


def synth_music(seconds: float, bpm: float = 110.0, major: bool = True, brightness: float = 0.5,
                seed: int = 0, rate: int = RATE) -> np.ndarray:
    """A simple piece: a I-V-vi-IV (or minor i-VI-III-VII) progression of harmonic chords, a bass
    line, a melody and, when brightness is high, hi-hat noise on the beat. Float32 in [-1, 1].

    ``brightness`` (0..1) sets how many harmonics sound, so it moves the spectral centroid; ``bpm``
    sets the note rate; ``major`` the mode — the three things audio analysis reads back.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    root = 220.0 * 2 ** (rng.integers(-3, 4) / 12)
    # (root offset, third) per bar: I-IV-V-I in major; i-iv-V-i in (harmonic) minor, whose major V
    # with its raised leading tone leaves no doubt about the key.
    prog = [(0, 4), (5, 4), (7, 4), (0, 4)] if major else [(0, 3), (5, 3), (7, 4), (0, 3)]
    beat = 60.0 / bpm
    bar = 4 * beat
    n_harm = 1 + int(round(brightness * 9))
    out = np.zeros(n, np.float32)

    def tone(freq: float, start: float, dur: float, amp: float) -> None:
        a, b = int(start * rate), min(n, int((start + dur) * rate))
        if a >= n:
            return
        tt = t[a:b] - start
        env = np.minimum(1.0, tt / 0.01) * np.exp(-tt * (1.5 / max(dur, 1e-3)))
        wave = sum(np.sin(2 * np.pi * freq * k * tt) / k**1.2 for k in range(1, n_harm + 1))
        out[a:b] += (amp * env * wave).astype(np.float32)

    scale = [0, 2, 4, 5, 7, 9, 11] if major else [0, 2, 3, 5, 7, 8, 10]
    k = 0
    start = 0.0
    while start < seconds:
        chord, third = prog[k % len(prog)]
        base = root * 2 ** (chord / 12)
        for interval in (0, third, 7):
            tone(base * 2 ** (interval / 12), start, bar, 0.12)
        tone(base / 2, start, bar, 0.2)
        for b in range(4):  # melody (chord tones and scale steps) and hats on the beats
            step = (chord + (0, third, 7)[b % 3]) % 12 if b % 2 == 0 else scale[int(rng.integers(0, len(scale)))]
            tone(root * 2 * 2 ** (step / 12), start + b * beat, beat * 0.9, 0.1)
            if brightness > 0.4:
                a = int((start + b * beat) * rate)
                m = min(n - a, int(0.04 * rate))
                if m > 0:
                    out[a : a + m] += (0.08 * brightness * rng.standard_normal(m) * np.linspace(1, 0, m)).astype(
                        np.float32
                    )
        start += bar
        k += 1
    return (out / max(1e-6, float(np.abs(out).max())) * 0.8).astype(np.float32)


# (title, bpm, major, brightness, mood tag or "", format): two pieces per circumplex quadrant.
DEMO_PIECES = (
    ("Sunrise Run", 140, True, 0.8, "happy, energetic", "ogg"),
    ("Market Day", 128, True, 0.7, "", "flac"),
    ("Storm Front", 150, False, 0.9, "aggressive", "mp3"),
    ("Pressure", 160, False, 0.8, "", "ogg"),
    ("Grey Harbour", 62, False, 0.1, "melancholic", "flac"),
    ("Rain on Glass", 58, False, 0.15, "", "mp3"),
    ("Still Water", 70, True, 0.2, "calm, peaceful", "ogg"),
    ("Evening Porch", 76, True, 0.25, "", "flac"),
)


def write_tagged(path: Path, audio: np.ndarray, title: str, mood: str, rate: int = 22050) -> None:
    """Write audio as OGG Vorbis, FLAC or MP3 (by suffix) with title/artist and, if given, a mood tag
    where each format keeps it (Vorbis comment MOOD, ID3v2.4 TMOO)."""
    import mutagen
    import soundfile as sf
    from mutagen.id3 import ID3, TIT2, TMOO, TPE1

    fmt = {".ogg": ("OGG", "VORBIS"), ".flac": ("FLAC", "PCM_16"), ".mp3": ("MP3", "MPEG_LAYER_III")}[path.suffix]
    sf.write(str(path), audio, rate, format=fmt[0], subtype=fmt[1])
    if path.suffix == ".mp3":
        tags = ID3()
        tags.add(TIT2(encoding=3, text=title))
        tags.add(TPE1(encoding=3, text="emomusic demo"))
        if mood:
            tags.add(TMOO(encoding=3, text=mood))
        tags.save(str(path), v2_version=4)
        return
    f = mutagen.File(str(path))
    if f.tags is None:
        f.add_tags()
    f["title"] = title
    f["artist"] = "emomusic demo"
    if mood:
        f["mood"] = mood
    f.save()


def make_demo_library(directory: Path, seconds: float = 40.0,
                      should_stop: Callable[[], bool] = lambda: False) -> list[Path]:
    """The demo library: synthesized pieces spanning the four quadrants, some mood-tagged, some not
    (those are placed by audio analysis). Existing files are kept; ``should_stop`` is polled between
    pieces so a daemon asked to stop does not wait for the rest."""
    import soxr

    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (title, bpm, major, bright, mood, ext) in enumerate(DEMO_PIECES):
        if should_stop():
            raise InterruptedError("stopped while generating the demo library")
        path = directory / f"{i + 1:02d} {title}.{ext}"
        if not path.exists():
            audio = soxr.resample(synth_music(seconds, bpm, major, bright, seed=i), RATE, 22050)
            tmp = path.with_name(f".tmp-{path.name}")
            write_tagged(tmp, audio.astype(np.float32), title, mood)
            tmp.replace(path)
        out.append(path)
    return out
