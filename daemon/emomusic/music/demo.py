"""The demo library: synthesized pieces across the four circumplex quadrants, used when no music is configured."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emomusic.audio import RATE

log = logging.getLogger("emomusic.music")


def synth_music(seconds: float, bpm: float = 110.0, major: bool = True, brightness: float = 0.5,
                seed: int = 0, rate: int = RATE) -> np.ndarray:
    """A simple piece: a I-V-vi-IV (or minor i-VI-III-VII) progression of harmonic chords, a bass
    line, a melody and, when brightness is high, hi-hat noise on the beat. Float32 in [-1, 1].

    ``brightness`` (0..1) sets how many harmonics sound, how hard the drums hit and how loud the
    piece is; ``bpm`` sets the note rate; ``major`` the mode. A short room reverb and a soft noise
    bed keep the spectrum from being unlike any recording.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
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
        tt = np.arange(b - a) / rate + (a / rate - start)  # this note's time axis only: no whole-piece array
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
    drums = _drums(n, rate, beat, rng)
    drums *= brightness
    out += drums
    del drums
    # a small room and a soft pink-noise bed: real recordings have no silent spectral valleys
    ir = rng.standard_normal(int(0.4 * rate)) * np.exp(-np.arange(int(0.4 * rate)) / rate * 12) * 0.03
    ir[0] = 1.0
    out = _convolve(out, ir.astype(np.float32))
    out /= max(1e-6, float(np.abs(out).max()))  # in place, as every whole-piece step below (#35)
    bed = _pink(n, rng)
    bed *= 0.05
    out += bed
    del bed
    level = 0.3 + 0.6 * brightness  # energetic pieces are mastered louder
    out /= max(1e-6, float(np.abs(out).max()))
    out *= level
    return out


def _convolve(x: np.ndarray, ir: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """``np.convolve(x, ir)[:len(x)]`` through the FFT, block by block (overlap-add): a 0.4 s reverb over
    80 s of audio in a few MB, where one FFT of the whole piece took about 70 MB at its peak (#35)."""
    size = 1 << (block + len(ir) - 2).bit_length()
    kernel = np.fft.rfft(ir, size)
    out = np.zeros(len(x) + len(ir) - 1, np.float32)
    for a in range(0, len(x), block):
        seg = x[a : a + block]
        y = np.fft.irfft(np.fft.rfft(seg, size) * kernel, size)[: len(seg) + len(ir) - 1]
        out[a : a + len(y)] += y.astype(np.float32)
    return out[: len(x)]


def _drums(n: int, rate: int, beat: float, rng: np.random.Generator) -> np.ndarray:
    """Kick on beats 1 and 3, a noise snare on 2 and 4."""
    out = np.zeros(n, np.float32)
    k, start = 0, 0.0
    while start * rate < n:
        a = int(start * rate)
        m = min(n - a, int(0.2 * rate))
        tt = np.arange(m) / rate
        if k % 2 == 0:
            hit = 0.5 * np.sin(2 * np.pi * (50 + 80 * np.exp(-tt * 30)) * tt) * np.exp(-tt * 20)
        else:
            hit = 0.3 * rng.standard_normal(m) * np.exp(-tt * 18)
        out[a : a + m] += hit.astype(np.float32)
        start += beat
        k += 1
    return out


def _pink(n: int, rng: np.random.Generator, taps: int = 1 << 17, block: int = 1 << 16) -> np.ndarray:
    """White noise shaped 1/f: filtered by the impulse response of (1 - z^-1)^(-1/2), whose power
    falls as 1/f above rate/taps (1 Hz at 16 kHz), block by block through :func:`_convolve`. One FFT
    of the whole piece did the same with 40 MB of scratch at its peak for an 80 s piece (#35); this
    holds two piece-long float32 arrays."""
    h = np.ones(taps, np.float64)
    h[1:] = np.cumprod((np.arange(1, taps) - 0.5) / np.arange(1, taps))
    white = np.empty(n, np.float32)
    for a in range(0, n, block):  # the same draws as one rng.standard_normal(n), in float32
        white[a : a + block] = rng.standard_normal(min(block, n - a))
    y = _convolve(white, h.astype(np.float32), block)
    del white
    y /= max(1e-9, float(np.abs(y).max()))
    return y


# (title, bpm, major, brightness, mood tag, format): four pieces per circumplex quadrant and four near
# its centre, their mood tags spread over it (music.moods), so that every mode has a choice near any
# listener and the no-repeat
# rule (half the library at most) still leaves neighbours. Every piece carries its mood tag: the learned
# placement (music.placement) knows real recordings, and places these synthesized ones in the right
# order but squeezed toward low arousal (models/README.md).
DEMO_PIECES = (
    ("Sunrise Run", 140, True, 0.8, "happy, energetic", "ogg"),
    ("Market Day", 128, True, 0.7, "cheerful", "flac"),
    ("Carnival", 150, True, 0.9, "euphoric", "mp3"),
    ("Sunny Side", 112, True, 0.6, "sunny, whimsical", "ogg"),
    ("Storm Front", 150, False, 0.9, "aggressive", "mp3"),
    ("Pressure", 160, False, 0.8, "tense", "ogg"),
    ("Undertow", 124, False, 0.7, "menacing", "flac"),
    ("Fever", 170, False, 1.0, "hostile", "mp3"),
    ("Grey Harbour", 62, False, 0.1, "melancholic", "flac"),
    ("Rain on Glass", 58, False, 0.15, "sad", "mp3"),
    ("Last Light", 72, False, 0.3, "wistful", "ogg"),
    ("Long Winter", 54, False, 0.05, "tired, gloomy", "flac"),
    ("Still Water", 70, True, 0.2, "calm, peaceful", "ogg"),
    ("Evening Porch", 76, True, 0.25, "relaxed", "flac"),
    ("Lullaby", 64, True, 0.15, "tender, gentle", "mp3"),
    ("Warm Kitchen", 88, True, 0.35, "warm, sweet", "ogg"),
    # and four near the centre, for a listener who is neither up nor down
    ("Tide Tables", 96, True, 0.45, "neutral", "flac"),
    ("Slow Traffic", 92, False, 0.4, "hypnotic", "ogg"),
    ("Small Hours", 84, False, 0.45, "mysterious", "mp3"),
    ("Blue Hour", 100, True, 0.5, "cool", "flac"),
)


# The rate sound cards and SDL's mixer run at: SDL resampled the 22.05 kHz pieces before (v2) as it mixed,
# 0.08-0.1 % of a core of the player's 0.2-0.3 % (scripts/bench.py's player, 2026-12-04).
DEMO_RATE = 44100


def write_tagged(path: Path, audio: np.ndarray, title: str, mood: str, rate: int = DEMO_RATE,
                 source_rate: int | None = None) -> None:
    """Write audio as OGG Vorbis, FLAC or MP3 (by suffix) with title/artist and, if given, a mood tag
    where each format keeps it (Vorbis comment MOOD, ID3v2.4 TMOO). Audio at ``source_rate`` is resampled
    to ``rate`` block by block as it is written (a whole 80 s piece at 44.1 kHz would be 14 MB more)."""
    import mutagen
    import soundfile as sf
    from mutagen.id3 import ID3, TIT2, TMOO, TPE1

    fmt = {".ogg": ("OGG", "VORBIS"), ".flac": ("FLAC", "PCM_16"), ".mp3": ("MP3", "MPEG_LAYER_III")}[path.suffix]
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    stream = None
    if source_rate is not None and source_rate != rate:
        import soxr

        stream = soxr.ResampleStream(source_rate, rate, channels, dtype="float32")
    block = 1 << 15
    with sf.SoundFile(str(path), "w", rate, channels, format=fmt[0], subtype=fmt[1]) as out:
        for a in range(0, len(audio), block):  # in blocks: libvorbis held ~15 MB for a whole 80 s piece
            part = np.asarray(audio[a : a + block], np.float32)
            out.write(part if stream is None else stream.resample_chunk(part, last=a + block >= len(audio)))
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


DEMO_FOLDER = "demo-music-v3"  # in the state dir; v3: at 44.1 kHz; v2: twenty 80 s pieces (v1: eight)
PIECE_NAME = re.compile(r"(\.tmp-)?\d\d [^/]+\.(ogg|flac|mp3)")  # what make_demo_library names a piece
DEMO_SECONDS = 80.0  # longer than a scene of the sample story: re-plans there follow the listener, not track ends


def make_demo_library(directory: Path, seconds: float = DEMO_SECONDS,
                      should_stop: Callable[[], bool] = lambda: False) -> list[Path]:
    """The demo library: synthesized, mood-tagged pieces spanning the four quadrants. Existing
    files are kept; ``should_stop`` is polled between
    pieces so a daemon asked to stop does not wait for the rest."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (title, bpm, major, bright, mood, ext) in enumerate(DEMO_PIECES):
        if should_stop():
            raise InterruptedError("stopped while generating the demo library")
        path = directory / f"{i + 1:02d} {title}.{ext}"
        if not path.exists():
            tmp = path.with_name(f".tmp-{path.name}")
            write_tagged(tmp, synth_music(seconds, bpm, major, bright, seed=i), title, mood, source_rate=RATE)
            tmp.replace(path)
        out.append(path)
    return out


def forget_older_demos(state_dir: Path) -> list[Path]:
    """An earlier version's demo library (another ``demo-music*`` folder in the state dir) removed once this
    version's is whole: its pieces, and the folder where nothing else is left in it (a file a person put
    there stays). What was removed; a file that cannot be removed is left for the next start."""
    gone = []
    for folder in sorted(state_dir.glob("demo-music*")):
        if folder.name == DEMO_FOLDER or not folder.is_dir():
            continue
        pieces = [f for f in sorted(folder.iterdir()) if f.is_file() and PIECE_NAME.fullmatch(f.name)]
        for f in pieces:
            try:
                f.unlink()
                gone.append(f)
            except OSError as e:
                log.warning("cannot remove %s of an earlier demo library: %s", f, e)
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty: something of the user's stays with it
        if pieces:
            log.info("removed the earlier demo library in %s (%d pieces)", folder, len(pieces))
    return gone
