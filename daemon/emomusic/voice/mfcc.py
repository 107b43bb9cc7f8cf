"""MFCCs in numpy with librosa's definitions (Slaney mel, power_to_db with top_db=80, DCT-II ortho),
so training features (computed here too) and the daemon's are identical without librosa at run time.

``mfcc(y)`` equals ``librosa.feature.mfcc(y=y, sr=16000, n_mfcc=40, n_fft=512, hop_length=160,
win_length=400, n_mels=64, fmin=0, fmax=8000)`` (center=True, zero padding); checked by a test
against reference values computed once with librosa.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SR = 16000
N_FFT = 512
HOP = 160
WIN = 400
N_MELS = 64
N_MFCC = 40
FMIN = 0.0
FMAX = 8000.0


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=4)
def mel_filters(sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = FMIN,
                fmax: float = FMAX) -> np.ndarray:
    """Slaney-normalised triangular filters, (n_mels, 1 + n_fft // 2), as librosa.filters.mel."""
    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(np.array(fmin)), hz_to_mel(np.array(fmax)), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    return (weights * enorm[:, None]).astype(np.float32)


@lru_cache(maxsize=4)
def _window(n_fft: int = N_FFT, win: int = WIN) -> np.ndarray:
    n = np.arange(win)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / win)  # periodic Hann, as scipy.signal.get_window
    lpad = (n_fft - win) // 2
    return np.pad(w, (lpad, n_fft - win - lpad)).astype(np.float32)


@lru_cache(maxsize=4)
def _dct_matrix(n_mfcc: int = N_MFCC, n_mels: int = N_MELS) -> np.ndarray:
    """DCT-II with orthonormal scaling (scipy.fftpack.dct(norm='ortho')), first n_mfcc rows."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


def power_spectrogram(y: np.ndarray) -> np.ndarray:
    """|STFT|^2, centred frames with zero padding: (1 + n_fft // 2, 1 + len(y) // hop)."""
    y = np.asarray(y, dtype=np.float32)
    pad = N_FFT // 2
    yp = np.pad(y, (pad, pad))
    n_frames = 1 + (len(yp) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    frames = yp[idx] * _window()
    spec = np.fft.rfft(frames, n=N_FFT, axis=1)
    return (spec.real**2 + spec.imag**2).T.astype(np.float32)


def mfcc(y: np.ndarray) -> np.ndarray:
    """(N_MFCC, frames) MFCCs of float audio in [-1, 1] at 16 kHz."""
    mel = mel_filters() @ power_spectrogram(y)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    return _dct_matrix() @ db


def voice_features(window: np.ndarray) -> np.ndarray:
    """The classifier's input for one audio window (int16 or float): MFCCs normalised per
    coefficient over the window (removes the microphone's and the room's fixed colouring)."""
    y = window.astype(np.float32) / 32768.0 if window.dtype == np.int16 else window.astype(np.float32)
    m = mfcc(y)
    return ((m - m.mean(axis=1, keepdims=True)) / (m.std(axis=1, keepdims=True) + 1e-5)).astype(np.float32)
