"""The voice pipeline: VAD-gated windows of speech -> MFCCs -> speech-emotion CNN.

Only voiced audio is analysed; the audio itself never leaves this process. One observation per
audio chunk that completed at least one window (several windows in one chunk are averaged).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emomusic.config import Config
from emomusic.labels import VOICE_LABELS
from emomusic.messages import AudioChunk, Observation
from emomusic.runtime import Backend, load_classifier, peakedness, softmax
from emomusic.voice.mfcc import voice_features
from emomusic.voice.vad import PlaybackGuard, SpeechWindow, SpeechWindower

REBUILD_VOICE = "python scripts/train_voice.py (see models/README.md)"


class VoiceClassifier:
    """Speech windows (int16, 2 s) -> probabilities over VOICE_LABELS."""

    def __init__(self, models_dir: Path, backend: Backend = "onnxruntime", precision: str = "int8",
                 threads: int = 1) -> None:
        self.model = load_classifier(models_dir, "voice_emotion", VOICE_LABELS, backend, precision, threads,
                                     REBUILD_VOICE)
        self.labels = VOICE_LABELS

    def classify(self, windows: list[np.ndarray]) -> np.ndarray:
        if not windows:
            return np.zeros((0, len(self.labels)), np.float32)
        x = np.stack([voice_features(w) for w in windows])
        return softmax(self.model.run(x)[0])


def window_confidence(w: SpeechWindow, probs: np.ndarray, window_s: float, margin_db: float) -> float:
    """How much to trust one window: enough speech, clearly above the noise (and the music), decisive."""
    duration = min(1.0, w.speech_s / window_s)
    snr = float(np.clip((w.snr_db - 3.0) / 20.0, 0.1, 1.0))
    music = 1.0 if w.over_music_db is None else float(np.clip((w.over_music_db - margin_db) / 10.0, 0.1, 1.0))
    return duration * snr * music * (0.5 + 0.5 * peakedness(probs))


class VoiceAnalyzer:
    """AudioChunk -> Observation for the windows of speech it completed, or None."""

    modality = "voice"

    def __init__(self, cfg: Config, classifier: VoiceClassifier | None = None,
                 guard: PlaybackGuard | None = None) -> None:
        v, m = cfg.voice, cfg.models
        self.cfg = v
        self.classifier = classifier or VoiceClassifier(m.path, m.backend, m.precision, m.threads)
        self.guard = guard or PlaybackGuard(v.music_margin_db)
        self.windower = SpeechWindower(
            v.vad_aggressiveness, v.window_s, v.hop_s, v.min_speech_s, guard=self.guard
        )

    def process(self, item: AudioChunk) -> Observation | None:
        windows = self.windower.feed(item.samples, item.t)
        if not windows:
            return None
        probs = self.classifier.classify([w.samples for w in windows])
        conf = np.array([window_confidence(w, p, self.cfg.window_s, self.cfg.music_margin_db)
                         for w, p in zip(windows, probs, strict=True)])
        pooled = (probs * conf[:, None]).sum(0) / max(conf.sum(), 1e-9)
        return Observation(
            modality=self.modality,
            t=windows[-1].t + self.cfg.window_s,
            probabilities={label: float(p) for label, p in zip(VOICE_LABELS, pooled, strict=True)},
            confidence=float(np.clip(conf.max(), 0.0, 1.0)),
            extras={"speech_s": round(sum(w.speech_s for w in windows), 2),
                    "snr_db": round(float(np.mean([w.snr_db for w in windows])), 1)},
        )
