"""Sample media for a machine with no camera or microphone: generated once into the state dir.

Nothing here comes from a dataset: the video is drawn from two bundled public-domain portraits, the
speech is espeak-ng's (when it is installed) or a synthetic voiced signal, so the demo carries no
licence question. The two files tell one short story (:data:`STORY`), cut to the same length so they
loop in step: the listener smiles and chats (happy), leaves the room and talks slowly in a low voice
(sad, from the voice alone), then someone sits down to read with a straight face (neutral, from the
face alone). A first run thus shows the fused state change, and the music re-plan after it, with the
reasons in the log. Each scene outlasts ``player.dwell_s`` (30 s).

The voices and faces were chosen by measurement, not by ear: through the real models each settled
scene leads its runner-up by a clear margin in fused probability (:func:`scene_margins`; the test
asserts it on both backends), so the story reads the same on every CPU.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import itertools
import logging
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emomusic.audio import RATE, write_wav

log = logging.getLogger("emomusic.samples")

# Versioned names: a state dir holding an older story's media makes the new one rather than reuse them,
# and removes the old ones once the new ones are whole.
VIDEO_NAME = "sample_video_v4.avi"  # v4: 3 fps
AUDIO_NAME = "sample_speech_v5.wav"  # v5: the happy voice lower (pitch 60), for the head of 2026-12-04


@dataclass(frozen=True)
class Scene:
    """One part of the sample story: who is in view and how they speak."""

    shows: str  # what the daemon is expected to make of it (README, tests)
    seconds: float
    face: str | None  # "smile", "straight" (the second portrait), or None: nobody in view
    sentences: tuple[str, ...]
    voice: tuple[str, ...] = ()  # espeak-ng options: speed, pitch, amplitude


# espeak-ng's "Gene" variant, measured against the voice model among its voices, speeds and pitches:
# at its lowest pitch and a slowish pace it reads as sad by a wide margin (most others read as disgust,
# and so does Gene at 110 or 95 words a minute to the head trained on three languages); high and fast it
# leans happy. The same voice in both scenes: one listener, so the voice's adaptation learns its baseline
# from the happy scene: at pitch 95 there, the head reading the lower layers too (2026-12-04) heard the sad
# scene as disgust (lead 0.10); at pitch 60 it leads by 0.42 (models/README.md).
HAPPY_VOICE = ("-v", "en+Gene", "-s", "180", "-p", "60")
SAD_VOICE = ("-v", "en+Gene", "-s", "130", "-p", "0")
STORY = (
    Scene("happy", 40.0, "smile", ("Good morning! I feel wonderful today, the sun is shining.",
                                   "This is great news, I am so happy for you!"), HAPPY_VOICE),
    Scene("sad", 40.0, None,  # the listener has left the room: the voice alone, slow and low
          ("I am so tired. Let us sit down quietly for a while.", "The evening is slow and peaceful."),
          SAD_VOICE),
    Scene("neutral", 40.0, "straight", ()),  # someone reads with a straight face, silently: the face alone
)
# 3 fps, the analysis rate: a file is decoded frame by frame (OpenCV's grab decodes too), so frames the
# camera stage would thin away cost a decode each (#35: 0.45 % of a core at 10 fps on a CPU without VNNI)
VIDEO_SECONDS, VIDEO_FPS = sum(scene.seconds for scene in STORY), 3.0
FRAME_BYTES = 16_000  # one 640x480 MJPG frame of the sample, about (for the free-space check)
SENTENCES = (
    "Good morning. I feel wonderful today, the sun is shining.",
    "I am so tired of waiting. This is really annoying.",
    "Let us sit down and relax for a while.",
    "Oh no, I think I lost my keys again.",
)


STORY_MARGIN = 0.2  # each settled scene's label leads its runner-up by this much in fused probability


@dataclass(frozen=True)
class SceneReading:
    """What the daemon made of one scene once it had settled."""

    scene: Scene
    states: int  # fused states in the settled part
    share: float  # of those, the part labelled as the scene shows
    runner_up: str
    margin: float  # mean fused probability of the scene's label minus the runner-up's


def scene_readings(rows: list[dict[str, Any]], story: tuple[Scene, ...] = STORY,
                   settle_s: float = 10.0) -> list[SceneReading]:
    """Each scene of a replayed story (rows of ``emomusic replay --jsonl``: ``t``, ``emotion``,
    ``probabilities``), from ``settle_s`` after it starts to its end."""
    out, start = [], 0.0
    for scene in story:
        settled = [r for r in rows if start + settle_s <= r["t"] < start + scene.seconds]
        start += scene.seconds
        mean: dict[str, float] = {}
        for r in settled:
            for label, p in r["probabilities"].items():
                mean[label] = mean.get(label, 0.0) + p / len(settled)
        others = sorted(((p, label) for label, p in mean.items() if label != scene.shows), reverse=True)
        runner_up = others[0] if others else (0.0, "")
        share = sum(r["emotion"] == scene.shows for r in settled) / max(1, len(settled))
        out.append(SceneReading(scene, len(settled), share, runner_up[1], mean.get(scene.shows, 0.0) - runner_up[0]))
    return out


def synth_voice(duration_s: float, f0: float, rng: np.random.Generator) -> np.ndarray:
    """A crude voiced signal: glottal-like harmonics with a wandering pitch and syllable envelope."""
    t = np.arange(int(duration_s * RATE)) / RATE
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t) + 0.02 * rng.standard_normal())
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t - np.pi / 2))
    return (x * syllables * 0.25).astype(np.float32)


def espeak_speech(text: str, options: tuple[str, ...] = ()) -> np.ndarray | None:
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        try:
            subprocess.run([exe, *options, "-w", str(out), text], check=True, capture_output=True, timeout=30)
        except (subprocess.SubprocessError, OSError):
            return None
        with wave.open(str(out), "rb") as w:
            rate = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    from emomusic.audio import to_mono_16k

    return to_mono_16k(x, rate).astype(np.float32) / 32768


def _utterances(sentences: tuple[str, ...], options: tuple[str, ...], rng: np.random.Generator,
                f0: float) -> list[np.ndarray]:
    """Each sentence, then a 1.5 s pause."""
    parts: list[np.ndarray] = []
    for i, sentence in enumerate(sentences):
        voice = espeak_speech(sentence, options)
        if voice is None:
            voice = synth_voice(2.5, f0 + 40 * i, rng)
        parts += [voice / max(1e-6, float(np.abs(voice).max())) * 0.5, np.zeros(int(1.5 * RATE), np.float32)]
    return parts


def make_speech_track(path: Path, seed: int = 0, story: tuple[Scene, ...] | None = None,
                      should_stop: Callable[[], bool] = lambda: False) -> None:
    """Utterances with pauses between them, quiet room noise throughout. With ``story``, each scene's
    sentences in its voice, repeated to fill exactly the scene's length (so the track loops in step
    with the story video)."""
    rng = np.random.default_rng(seed)
    if story is None:
        parts = [np.zeros(int(1.5 * RATE), np.float32), *_utterances(SENTENCES, (), rng, 110)]
    else:
        parts = []
        for k, scene in enumerate(story):
            n = int(scene.seconds * RATE)
            said = [np.zeros(int(1.0 * RATE), np.float32)]
            while scene.sentences and sum(x.size for x in said) < n:
                if should_stop():
                    raise InterruptedError("stopped while generating the sample speech")
                said += _utterances(scene.sentences, scene.voice, rng, 110 + 30 * k)
            scene_audio = np.zeros(n, np.float32)  # a silent scene is silence (room noise) to its end
            heard = np.concatenate(said)[:n]
            scene_audio[: heard.size] = heard
            parts.append(scene_audio)
    audio = np.concatenate(parts)
    audio += 0.003 * rng.standard_normal(audio.size).astype(np.float32)
    write_wav(path, (np.clip(audio, -1, 1) * 32767).astype(np.int16))


DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE_FACE = DATA / "sample_face.jpg"  # smiling (happy by a wide margin)
STRAIGHT_FACE = DATA / "sample_face_straight.jpg"  # a straight face (neutral)


def make_video(path: Path, seconds: float = VIDEO_SECONDS, fps: float = VIDEO_FPS,
               size: tuple[int, int] = (640, 480), story: tuple[Scene, ...] | None = None,
               should_stop: Callable[[], bool] = lambda: False) -> None:
    """A face (a bundled public-domain portrait) drifting slowly over a gradient background,
    MJPG in AVI so OpenCV reads it everywhere. With ``story``, each scene shows the smiling face, the
    straight face, or nobody, for its length (``seconds`` is then the story's)."""
    import cv2

    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot write {path}")
    face, straight = cv2.imread(str(SAMPLE_FACE)), cv2.imread(str(STRAIGHT_FACE))
    if face is None or straight is None:
        raise OSError(f"cannot read {SAMPLE_FACE if face is None else STRAIGHT_FACE}")
    faces: dict[str | None, np.ndarray | None] = {"smile": face, "straight": straight, None: None}
    ends = list(itertools.accumulate(scene.seconds for scene in story or ()))
    if story:
        seconds = ends[-1]
    grad = cv2.cvtColor(np.tile(np.linspace(60, 160, w, dtype=np.uint8), (h, 1)), cv2.COLOR_GRAY2BGR)
    rng = np.random.default_rng(0)
    noise_bank = [rng.integers(-6, 7, (h, w, 3), dtype=np.int16) for _ in range(8)]  # sensor noise, cycled
    for i in range(int(seconds * fps)):
        if i % 25 == 0 and should_stop():
            writer.release()
            raise InterruptedError("stopped while generating the sample video")
        t = i / fps
        frame = grad.copy()
        shown = faces[story[min(bisect.bisect_right(ends, t), len(story) - 1)].face] if story else face
        if shown is None:  # nobody in view: the empty room
            writer.write(np.clip(frame.astype(np.int16) + noise_bank[i % 8], 0, 255).astype(np.uint8))
            continue
        # A seated listener: the head sways a few centimetres (up to ~15 px/s here) and leans in a little.
        side = int(min(w, h) * (0.4 + 0.03 * np.sin(t * 0.3)))
        f = cv2.resize(shown, (side, side), interpolation=cv2.INTER_AREA)
        x = int((w - side) / 2 + 60 * np.sin(t * 0.25))
        y = int((h - side) / 2 + 20 * np.sin(t * 0.4))
        frame[y : y + side, x : x + side] = f
        writer.write(np.clip(frame.astype(np.int16) + noise_bank[i % 8], 0, 255).astype(np.uint8))
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
    except InterruptedError:  # a stop was asked for: leave nothing half-written
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise SampleMediaError(f"cannot write the sample {what} in {final.parent}: {e.strerror or e}") from None


def ensure_samples(directory: Path, should_stop: Callable[[], bool] = lambda: False) -> tuple[Path, Path]:
    """Create the sample video and speech track in ``directory`` unless whole ones exist; raises
    :class:`SampleMediaError` (one readable line) when the directory is not usable, and
    InterruptedError when ``should_stop`` says so part-way (a SIGTERM during the first start)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SampleMediaError(f"cannot create the sample media folder {directory}: {e.strerror or e}") from None
    video, audio = directory / VIDEO_NAME, directory / AUDIO_NAME
    frames = int(VIDEO_SECONDS * VIDEO_FPS)
    needed = (0 if video.exists() else frames * FRAME_BYTES) + (0 if audio.exists() else int(VIDEO_SECONDS * RATE * 2))
    free = shutil.disk_usage(directory).free
    if needed > free:  # fail now, not after writing two minutes of frames into a writer that fails silently
        raise SampleMediaError(f"cannot write the sample media in {directory}: they need about {needed >> 20} MB, "
                               f"{free >> 20} MB free (No space left on device)")
    if not (video.exists() and video_is_whole(video, frames)):
        log.info("generating sample video %s", video)
        _write_whole(video, lambda p: make_video(p, story=STORY, should_stop=should_stop),
                     lambda p: video_is_whole(p, frames), "video")
    if not (audio.exists() and wav_is_whole(audio)):
        log.info("generating sample speech %s", audio)
        _write_whole(audio, lambda p: make_speech_track(p, story=STORY, should_stop=should_stop), wav_is_whole,
                     "speech")
    _forget_older(directory)
    return video, audio


def _forget_older(directory: Path) -> None:
    """Sample media an earlier version made under another name, which nothing reads any more (an SD
    card keeps no dead megabytes: 6-10 MB a story)."""
    for old in [*directory.glob("sample_video_v*.avi"), *directory.glob("sample_speech_v*.wav")]:
        if old.name not in (VIDEO_NAME, AUDIO_NAME):
            log.info("removing an earlier version's sample media %s", old)
            with contextlib.suppress(OSError):
                old.unlink()
