"""The voice encoder: a 2 s speech window -> a 256-d embedding (Resemblyzer's GE2E LSTM, int8 ONNX).

The encoder was trained to tell speakers apart, so its embedding carries the voice (who) and a good
deal of how it is used (pitch range, effort, tempo): a small head reads emotion from it once the
speaker's own baseline is taken out (``voice.adapt``), and the same embedding tells voices apart.
Its input is computed here in numpy exactly as Resemblyzer computes it with librosa: volume
normalised to -30 dBFS, 25 ms Hann frames every 10 ms, power spectrum, 40 Slaney mel bands (no log).
The LSTM reads the loudest 1.6 s of each 2 s window as one sequence (Resemblyzer's partial length;
its cost grows with the sequence, and the daemon's budget is 10 ms per second of speech); its top
layer reads the layer below in 20 ms steps, a fifth less arithmetic at the same accuracy, and its upper
two layers compute in int8 (scripts/build_voice_encoder.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emomusic.audio import mel_power
from emomusic.runtime import Model

SR = 16000
N_FFT = 400
HOP = 160
N_MELS = 40
TARGET_DBFS = -30.0
EMBED_DIM = 256
STATE_DIM = 1536
MAX_FRAMES = 160  # frames the LSTM reads per window (1.6 s)
REBUILD_ENCODER = "python scripts/build_voice_encoder.py (see models/README.md)"



def mel_frames(y: np.ndarray) -> np.ndarray:
    """(frames, 40) mel power of float audio at 16 kHz, librosa.feature.melspectrogram's definition
    (centred frames, zero padding) after Resemblyzer's volume normalisation."""
    y = np.asarray(y, dtype=np.float32)
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) if y.size else 0.0
    if rms > 1e-6:
        y = y * np.float32(10 ** (TARGET_DBFS / 20) / rms)
    return mel_power(y, N_FFT, HOP, N_MELS, SR)


def loudest(mel: np.ndarray, frames: int = MAX_FRAMES) -> np.ndarray:
    """The ``frames`` consecutive frames with the most energy (the encoder's cost grows with the
    sequence; 1.6 s is the partial length Resemblyzer was trained on, and a 2 s window is often
    padded at one end)."""
    if mel.shape[0] <= frames:
        return mel
    energy = np.cumsum(np.r_[0.0, mel.sum(1)])
    start = int(np.argmax(energy[frames:] - energy[:-frames]))
    return mel[start : start + frames]


class VoiceEncoder:
    """Speech windows (int16 or float, 16 kHz) -> speaker embeddings (n, 256), L2-normalised, and
    the emotion head's input (n, 1536): the top LSTM layer's outputs averaged over time, every layer's
    final state, and the lower two layers' outputs averaged over time."""

    def __init__(self, models_dir: Path, threads: int = 1) -> None:
        # onnxruntime whatever models.backend says (its int8 LSTM layers are onnxruntime's own operator);
        # prepacked: the int8 layers run 2x slower from unpacked weights. Not ``weight_only``: the float
        # first layer's recurrent weights then stay behind their DequantizeLinear instead of being folded
        # and prepacked at load, and a step at batch 1, a matrix-vector product, runs faster from the plain
        # layout (encoder 7.9 vs 9.1 ms a window on a 2-core EPYC without VNNI, docs/PERFORMANCE.md)
        self.model = Model(models_dir / "voice_encoder_int8.onnx", "onnxruntime", threads,
                           rebuild_hint=REBUILD_ENCODER, prepack=True)

    def encode(self, windows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        emb = np.empty((len(windows), EMBED_DIM), np.float32)
        states = []  # as wide as the encoder makes them (one built with --top-only, to compare heads)
        for i, w in enumerate(windows):
            y = w.astype(np.float32) / 32768.0 if w.dtype == np.int16 else w.astype(np.float32)
            e, st = self.model.run(loudest(mel_frames(y))[None])
            emb[i] = e[0]
            states.append(st[0])
        return emb, np.stack(states).astype(np.float32) if states else np.zeros((0, STATE_DIM), np.float32)
