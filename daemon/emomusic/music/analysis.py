"""Audio analysis of untagged tracks: tempo, loudness, brightness and mode -> valence/arousal.

Numpy only (no librosa at run time). The excerpt analysed is up to ``max_s`` seconds from the
middle of the track at 16 kHz, which is plenty for these global descriptors.

The placement formula (each term clipped to [-1, 1]):

    tempo  = (bpm - 110) / 50             loud = (rms_dBFS + 20) / 10
    bright = (centroid_Hz - 1200) / 800    mode = 10 x (best major - best minor key correlation)
    arousal = 0.5 tempo + 0.25 loud + 0.25 bright
    valence = 0.8 mode + 0.1 tempo + 0.1 bright

Fast, loud, bright music is aroused; major mode is the strongest cue for positive valence, with
tempo and brightness helping (Gabrielsson & Lindström 2010; Eerola et al. 2013).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 16000
N_FFT = 2048
HOP = 512

# Krumhansl-Kessler key profiles (C major / C minor)
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class AudioFeatures:
    bpm: float
    rms_db: float
    centroid_hz: float
    major: bool
    mode_strength: float  # best major minus best minor key correlation
    key: int  # 0 = C

    def placement(self) -> tuple[float, float]:
        """(valence, arousal) by the documented formula."""
        clip = lambda v: float(np.clip(v, -1.0, 1.0))  # noqa: E731
        tempo = clip((self.bpm - 110) / 50)
        loud = clip((self.rms_db + 20) / 10)
        bright = clip((self.centroid_hz - 1200) / 800)
        mode = clip(10 * self.mode_strength)
        arousal = clip(0.5 * tempo + 0.25 * loud + 0.25 * bright)
        valence = clip(0.8 * mode + 0.1 * tempo + 0.1 * bright)
        return valence, arousal


def load_excerpt(path: Path, max_s: float = 60.0) -> np.ndarray:
    """Mono float32 at 16 kHz, the middle ``max_s`` seconds (decoded with libsndfile)."""
    import soundfile as sf

    from emomusic.audio import to_mono_16k

    with sf.SoundFile(str(path)) as f:
        n = f.frames
        want = int(max_s * f.samplerate)
        if n > want:
            f.seek((n - want) // 2)
        data = f.read(min(n, want), dtype="float32", always_2d=True)
        rate = f.samplerate
    return to_mono_16k(data, rate).astype(np.float32) / 32768.0


STFT_BLOCK = 128  # frames transformed at once: a whole minute at once held ~60 MB of temporaries


def _stft_mag(y: np.ndarray) -> np.ndarray:
    """Magnitude spectrogram (bins, frames), float32, computed a block of frames at a time so a
    library scan on a Pi does not need tens of megabytes per track."""
    if y.size < N_FFT:
        y = np.pad(y, (0, N_FFT - y.size))
    n = 1 + (y.size - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP][:n]  # a view, no copy
    window = np.hanning(N_FFT).astype(np.float32)
    out = np.empty((N_FFT // 2 + 1, n), np.float32)
    for i in range(0, n, STFT_BLOCK):
        out[:, i : i + STFT_BLOCK] = np.abs(np.fft.rfft(frames[i : i + STFT_BLOCK] * window, axis=1)).T
    return out


def estimate_tempo(mag: np.ndarray) -> float:
    """Autocorrelation of the spectral-flux onset envelope, with a prior centred on 120 BPM."""
    logm = np.log1p(100 * mag)
    flux = np.maximum(0, np.diff(logm, axis=1)).sum(0)
    flux = flux - flux.mean()
    if not flux.any():
        return 0.0
    ac = np.correlate(flux, flux, mode="full")[flux.size - 1 :]
    fps = RATE / HOP
    lags = np.arange(1, ac.size)
    bpm = 60 * fps / lags
    ok = (bpm >= 50) & (bpm <= 200)
    prior = np.exp(-0.5 * (np.log2(bpm[ok] / 120) / 0.9) ** 2)
    best = np.argmax(ac[1:][ok] * prior)
    return float(bpm[ok][best])


def chroma(mag: np.ndarray) -> np.ndarray:
    freqs = np.fft.rfftfreq(N_FFT, 1 / RATE)
    use = (freqs >= 55) & (freqs <= 4000)
    pitch = np.round(12 * np.log2(freqs[use] / 440.0) + 9).astype(int) % 12  # 0 = C
    energy = mag[use].sum(1)  # magnitude, not power: the bass must not drown the thirds
    return np.bincount(pitch, weights=energy, minlength=12)


def key_mode(c: np.ndarray) -> tuple[int, bool, float]:
    """Best key (0 = C), whether it is major, and best-major minus best-minor correlation."""
    corr = lambda prof: np.array([np.corrcoef(np.roll(prof, k), c)[0, 1] for k in range(12)])  # noqa: E731
    maj, mnr = corr(MAJOR), corr(MINOR)
    strength = float(np.nanmax(maj) - np.nanmax(mnr))
    major = strength >= 0
    return int(np.nanargmax(maj if major else mnr)), major, strength


def analyze(y: np.ndarray) -> AudioFeatures:
    """Features of float audio at 16 kHz."""
    if y.size < RATE:
        raise ValueError("less than one second of audio")
    rms_db = 10 * np.log10(float(np.mean(y * y)) + 1e-10)
    mag = _stft_mag(y)
    freqs = np.fft.rfftfreq(N_FFT, 1 / RATE)
    power = mag.sum(0)
    centroid = float(np.sum((freqs[:, None] * mag).sum(0)) / max(float(power.sum()), 1e-9))
    key, major, strength = key_mode(chroma(mag))
    return AudioFeatures(estimate_tempo(mag), rms_db, centroid, major, strength, key)


def analyze_file(path: Path) -> AudioFeatures:
    return analyze(load_excerpt(path))
