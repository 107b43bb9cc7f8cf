"""Audio helpers shared by the sources and music analysis: any audio to 16 kHz mono int16, WAV out."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 16000


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
