"""Training-only variations of an acted clip, so the voice head learns emotion rather than a few actors.

Each corpus has a handful of actors; the daemon hears one listener, and the independent check reads other
corpora (another accent, talk-show speech). Speed perturbation (Ko et al. 2015, Kaldi's recipe) resamples a
clip by 0.9-1.1: pitch, formants and tempo move together, as from one vocal tract to another, while the
emotion's contour stays. Held out by whole corpus and by actor (models/README.md), it lifted every set;
a room (reverberation), a microphone's band and tilt, and pink noise on top of it were measured too and
cost 2-4 points on the unseen corpora (EMO-DB, EMOVO), so they are not drawn.

Used by ``scripts/train_voice_head.py --augment N`` (never by the daemon): the variations of a clip count as
another voice of its speaker (their statistics differ, and the daemon adapts per voice) and stay on the
training side of every split; held-out clips are always scored as recorded.
"""

from __future__ import annotations

import numpy as np

RATE = 16000
SPEEDS = (0.9, 0.95, 1.05, 1.1)


def vary(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random speed of a 16 kHz int16 clip, as int16."""
    import soxr

    x = soxr.resample(samples.astype(np.float32) / 32768.0, RATE * float(rng.choice(SPEEDS)), RATE)
    return np.clip(x * 32768.0, -32768, 32767).astype(np.int16)
