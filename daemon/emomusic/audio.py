"""Audio helpers shared by the sources, the voice and the music: any audio to 16 kHz mono, WAV out,
and librosa's mel spectrogram in numpy (no librosa at run time; a test checks it against librosa's).
"""

from __future__ import annotations

import bisect
import math
import wave
from collections import deque
from functools import lru_cache
from pathlib import Path

import numpy as np

RATE = 16000
FRAME_S = 0.03  # a VAD frame (WebRTC VAD's 30 ms)


def to_mono_float(audio: np.ndarray, rate: int, quality: str = "HQ") -> np.ndarray:
    """Float or int audio of any channel count and rate -> 16 kHz mono float32 in [-1, 1]
    (``quality``: soxr's setting; music analysis takes the quick "LQ", its features stop at 8 kHz)."""
    import soxr

    x = np.asarray(audio)
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        x = (x.astype(np.float32) - (info.max + info.min + 1) / 2) / (info.max - info.min + 1) * 2
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if rate != RATE and x.size:
        x = soxr.resample(x, rate, RATE, quality=quality)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def to_mono_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    """Float or int audio of any channel count and rate -> 16 kHz mono int16."""
    return (to_mono_float(audio, rate) * 32767).astype(np.int16)


def read_audio_file(path: str | Path) -> np.ndarray:
    """Whole file as 16 kHz mono int16 (any format libsndfile reads)."""
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return to_mono_16k(data, rate)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> None:
    """Mono int16 WAV through the standard library (no soundfile needed)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype=np.int16).tobytes())


# -- librosa's mel spectrogram, in numpy ---------------------------------------------------------------
def hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default: linear below 1 kHz, logarithmic above)."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=8)
def mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Slaney-normalised triangular filters, (n_mels, 1 + n_fft // 2), as librosa.filters.mel."""
    fmax = sr / 2 if fmax is None else fmax
    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(np.array(fmin)), hz_to_mel(np.array(fmax)), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    return (weights * enorm[:, None]).astype(np.float32)


@lru_cache(maxsize=8)
def hann(n: int) -> np.ndarray:
    """The periodic Hann window (scipy.signal.get_window('hann'), librosa's default)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


# Frames transformed at once: temporaries small enough to stay in the heap. Under the daemon's malloc
# settings (service.memory: large buffers handed back at once) a 2 s voice window took 2.1 ms in one
# block of 201 frames (400 fresh pages faulted in a call), 1.8 ms in blocks of 64 (200) and 1.1 ms in
# blocks of 32 (none); a minute of music the same either way (measured 2026-12-03, numpy 2.4).
MEL_BLOCK = 32


def mel_power(y: np.ndarray, n_fft: int, hop: int, n_mels: int, sr: int = RATE) -> np.ndarray:
    """(frames, n_mels) mel power of float audio: ``librosa.feature.melspectrogram(y=y, sr=sr,
    n_fft=n_fft, hop_length=hop, n_mels=n_mels).T`` (centred frames, zero padding, power 2)."""
    y = np.asarray(y, dtype=np.float32)
    yp = np.pad(y, (n_fft // 2, n_fft // 2))
    n = 1 + (yp.size - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(yp, n_fft)[::hop][:n]  # a view, no copy
    fb, window = mel_filters(sr, n_fft, n_mels).T, hann(n_fft)
    out = np.empty((n, n_mels), np.float32)
    for i in range(0, n, MEL_BLOCK):
        spec = np.fft.rfft(frames[i : i + MEL_BLOCK] * window, axis=1)
        out[i : i + MEL_BLOCK] = (spec.real**2 + spec.imag**2).astype(np.float32) @ fb
    return out


# -- the self-hearing guard -------------------------------------------------------------------------------
class PlaybackGuard:
    """What the daemon knows of its own playback, and the microphone level it causes.

    The level is the median of the last ``history_s`` of frame levels while playing, asked for on every
    30 ms frame: kept sorted as frames come and go (a bisect each) instead of sorted anew per frame,
    which was most of the voice stage's CPU while music played (#35)."""

    def __init__(self, margin_db: float = 10.0, history_s: float = 8.0) -> None:
        self.margin_db = margin_db
        self.playing = False
        self.volume = 0.0
        self._levels: deque[float] = deque(maxlen=int(history_s / FRAME_S))
        self._sorted: list[float] = []  # the same levels, in order

    def set_playback(self, playing: bool, volume: float) -> None:
        """Called by the player; a change of volume invalidates what was learned of the level."""
        if playing != self.playing or abs(volume - self.volume) > 0.05:
            self._levels.clear()
            self._sorted.clear()
        self.playing, self.volume = playing, volume

    @property
    def active(self) -> bool:
        return self.playing and self.volume > 0

    def observe(self, db: float) -> None:
        if self.active:
            if len(self._levels) == self._levels.maxlen:
                del self._sorted[bisect.bisect_left(self._sorted, self._levels[0])]
            self._levels.append(db)
            bisect.insort(self._sorted, db)

    def music_level_db(self) -> float | None:
        """The playback-correlated level at the microphone, once about a second has been heard."""
        n = len(self._sorted)
        if not self.active or n < 30:
            return None
        mid = n // 2
        return self._sorted[mid] if n % 2 else (self._sorted[mid - 1] + self._sorted[mid]) / 2

    def threshold_db(self) -> float:
        """Frames must be louder than this to count as voice (-inf when not playing)."""
        if not self.active:
            return -math.inf
        level = self.music_level_db()
        # Until the level is known, be strict: while music plays, nothing counts as voice.
        return math.inf if level is None else level + self.margin_db
