"""Audio analysis of untagged tracks: a numpy feature vector from a 30 s excerpt.

Numpy only (no librosa at run time), on the middle ``EXCERPT_S`` seconds at 16 kHz: the features
music-emotion work leans on (Eerola et al. 2013; Panda et al. 2018): loudness and dynamics, timbre
(MFCC statistics, centroid, flatness, roll-off), rhythm (onset rate, tempo and
pulse clarity), tonality (key clarity, major-minor strength, chroma entropy) and roughness (energy
in beating partials). ``music.placement`` turns the vector into (valence, arousal).

Only the excerpt is decoded: libsndfile seeks straight to it, so a long track costs what a short one does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 16000
N_FFT = 1024
HOP = 512
EXCERPT_S = 20.0  # the length of the annotated excerpts the placement model learned from
MIN_AUDIO_S = 1.0
N_MELS = 40
N_MFCC = 13
SILENCE_DB = -55.0  # an excerpt this quiet (mean power) is silence, not music

# Krumhansl-Kessler key profiles (C major / C minor)
MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


class AnalysisError(ValueError):
    """The audio cannot be analysed (too short, silent, undecodable)."""


def feature_names() -> list[str]:
    names = ["rms_db", "rms_std_db", "dynamic_range_db", "low_energy", "centroid_khz", "centroid_std_khz",
             "rolloff_khz", "flatness", "zcr", "flux", "onset_rate", "bpm", "pulse_clarity",
             "key_clarity", "mode_strength", "mode_strength_5s", "chroma_entropy", "roughness"]
    names += [f"mfcc{i}_mean" for i in range(N_MFCC)] + [f"mfcc{i}_std" for i in range(N_MFCC)]
    names += [f"mfcc{i}_delta_std" for i in range(N_MFCC)]
    return names


def load_excerpt(path: Path, seconds: float = EXCERPT_S) -> np.ndarray:
    """Mono float32 at 16 kHz: the middle ``seconds`` of the file (decoded with libsndfile, resampled
    with soxr's quick setting: the features stop at 8 kHz and the scan's cost is mostly here)."""
    import soundfile as sf

    from emomusic.audio import to_mono_float

    with sf.SoundFile(str(path)) as f:
        n = f.frames
        want = int(seconds * f.samplerate)
        if 0 < want < n:
            f.seek((n - want) // 2)
        data = f.read(min(n, want) if n > 0 else want, dtype="float32", always_2d=True)
        rate = f.samplerate
    return to_mono_float(data, rate, quality="LQ")


STFT_BLOCK = 128  # frames transformed at once: bounded temporaries on a Pi


def stft_mag(y: np.ndarray) -> np.ndarray:
    """Magnitude spectrogram (bins, frames), float32, a block of frames at a time."""
    if y.size < N_FFT:
        y = np.pad(y, (0, N_FFT - y.size))
    n = 1 + (y.size - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP][:n]  # a view, no copy
    window = np.hanning(N_FFT).astype(np.float32)
    out = np.empty((N_FFT // 2 + 1, n), np.float32)
    for i in range(0, n, STFT_BLOCK):
        out[:, i : i + STFT_BLOCK] = np.abs(np.fft.rfft(frames[i : i + STFT_BLOCK] * window, axis=1)).T
    return out


_FREQS = np.fft.rfftfreq(N_FFT, 1 / RATE)


def _mel_filters() -> np.ndarray:
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = 700 * (10 ** (np.linspace(mel(30), mel(8000), N_MELS + 2) / 2595) - 1)
    fb = np.zeros((N_MELS, _FREQS.size), np.float32)
    for i in range(N_MELS):
        lo, mid, hi = edges[i : i + 3]
        fb[i] = np.clip(np.minimum((_FREQS - lo) / (mid - lo), (hi - _FREQS) / (hi - mid)), 0, None)
    return fb


_MEL = _mel_filters()
_DCT = np.cos(np.pi / N_MELS * (np.arange(N_MELS) + 0.5)[None, :] * np.arange(N_MFCC)[:, None]).astype(np.float32)


def tempo(flux: np.ndarray) -> tuple[float, float]:
    """(BPM, pulse clarity): autocorrelation of the onset envelope with a prior centred on 120 BPM;
    clarity is the chosen peak's autocorrelation relative to lag 0."""
    f = flux - flux.mean()
    if not f.any():
        return 0.0, 0.0
    ac = np.correlate(f, f, mode="full")[f.size - 1 :]
    lags = np.arange(1, ac.size)
    bpm = 60 * (RATE / HOP) / lags
    ok = (bpm >= 50) & (bpm <= 200)
    prior = np.exp(-0.5 * (np.log2(bpm[ok] / 120) / 0.9) ** 2)
    best = int(np.argmax(ac[1:][ok] * prior))
    return float(bpm[ok][best]), float(max(ac[1:][ok][best], 0.0) / max(ac[0], 1e-9))


def chroma(mag: np.ndarray) -> np.ndarray:
    use = (_FREQS >= 100) & (_FREQS <= 4000)  # 15.6 Hz bins cannot tell semitones apart lower down
    pitch = np.round(12 * np.log2(_FREQS[use] / 440.0) + 9).astype(int) % 12  # 0 = C
    energy = mag[use].sum(1)  # magnitude, not power: the bass must not drown the thirds
    return np.bincount(pitch, weights=energy, minlength=12)


def _profiles() -> np.ndarray:
    """The 24 key profiles (12 major, 12 minor), each centred and scaled to unit norm."""
    p = np.array([np.roll(prof, k) for prof in (MAJOR, MINOR) for k in range(12)])
    p = p - p.mean(1, keepdims=True)
    return p / np.linalg.norm(p, axis=1, keepdims=True)


_KEYS = _profiles()


def key_mode(c: np.ndarray) -> tuple[float, float]:
    """(key clarity: best key correlation, mode strength: best major minus best minor correlation)."""
    x = c - c.mean()
    norm = float(np.linalg.norm(x))
    if norm == 0:
        return 0.0, 0.0
    corr = _KEYS @ (x / norm)  # Pearson correlation with each key profile
    return float(corr.max()), float(corr[:12].max() - corr[12:].max())


def roughness(mag: np.ndarray) -> float:
    """Sensory dissonance, cheaply: the share of spectral-peak energy whose nearest neighbouring peak
    lies within the beating range (20-200 Hz apart, below 2 kHz) of the average spectrum's peaks."""
    spec = mag[:, :: max(1, mag.shape[1] // 200)].mean(1)
    band = _FREQS < 2000
    s = spec[band]
    peaks = np.flatnonzero((s[1:-1] > s[:-2]) & (s[1:-1] > s[2:]) & (s[1:-1] > 0.05 * s.max())) + 1
    if peaks.size < 2:
        return 0.0
    f, a = _FREQS[peaks], s[peaks]
    gaps = np.diff(f)
    near = np.minimum(np.r_[gaps, np.inf], np.r_[np.inf, gaps])
    beating = (near >= 20) & (near <= 200)
    return float((a * beating).sum() / a.sum())


def features(y: np.ndarray) -> np.ndarray:
    """The feature vector (``feature_names()`` order) of float audio at 16 kHz."""
    if y.size < MIN_AUDIO_S * RATE:
        raise AnalysisError(f"only {y.size / RATE:.1f} s of audio (at least {MIN_AUDIO_S:.0f} s needed)")
    power_db = 10 * np.log10(float(np.mean(y * y)) + 1e-12)
    if power_db < SILENCE_DB:
        raise AnalysisError(f"silent ({power_db:.0f} dBFS)")
    mag = stft_mag(y)
    power = mag**2
    frame_db = 10 * np.log10(power.sum(0) / N_FFT + 1e-12)
    # half-second loudness, for dynamics
    chunk = max(1, int(0.5 * RATE / HOP))
    loud = frame_db[: frame_db.size // chunk * chunk].reshape(-1, chunk).mean(1) if frame_db.size >= chunk \
        else frame_db
    total = mag.sum(0) + 1e-9
    centroid = (_FREQS[:, None] * mag).sum(0) / total / 1000
    cum = np.cumsum(mag, axis=0)
    rolloff = _FREQS[np.argmax(cum >= 0.85 * cum[-1], axis=0)] / 1000
    flatness = np.exp(np.log(mag + 1e-9).mean(0)) / (mag.mean(0) + 1e-9)
    signs = np.signbit(y)
    zcr = float(np.count_nonzero(signs[1:] != signs[:-1]) / y.size * RATE / 1000)  # kHz
    logm = np.log1p(100 * mag)
    flux = np.maximum(0, np.diff(logm, axis=1)).sum(0)
    thresh = flux.mean() + flux.std()
    onsets = np.count_nonzero((flux[1:-1] > flux[:-2]) & (flux[1:-1] >= flux[2:]) & (flux[1:-1] > thresh))
    bpm, clarity = tempo(flux)
    c = chroma(mag)
    key_clarity, mode_strength = key_mode(c)
    seg = max(1, int(5 * RATE / HOP))  # mode per 5 s: a modulating song is not "no mode"
    mode_5s = float(np.mean([key_mode(chroma(mag[:, i : i + seg]))[1] for i in range(0, mag.shape[1], seg)]))
    cp = c / max(c.sum(), 1e-9)
    entropy = float(-(cp * np.log2(cp + 1e-12)).sum() / np.log2(12))
    logmel = np.log(_MEL @ power + 1e-6)
    mfcc = _DCT @ logmel
    head = [float(np.mean(loud)), float(np.std(loud)),
            float(np.percentile(loud, 95) - np.percentile(loud, 10)),
            float(np.mean(frame_db < frame_db.mean())),
            float(centroid.mean()), float(centroid.std()), float(rolloff.mean()), float(flatness.mean()), zcr,
            float(flux.mean()), onsets / (y.size / RATE), bpm, clarity,
            key_clarity, mode_strength, mode_5s, entropy, roughness(mag)]
    delta = np.diff(mfcc, axis=1) if mfcc.shape[1] > 1 else np.zeros_like(mfcc)
    vec = np.array(head + list(mfcc.mean(1)) + list(mfcc.std(1)) + list(delta.std(1)), np.float32)
    return np.nan_to_num(vec)


def analyze_file(path: Path) -> np.ndarray:
    """Feature vector of the file's middle excerpt; AnalysisError when it cannot be analysed."""
    try:
        y = load_excerpt(path)
    except Exception as e:  # libsndfile cannot decode it (AAC in MP4, a broken stream)
        raise AnalysisError(f"cannot decode: {e}") from None
    return features(y)
