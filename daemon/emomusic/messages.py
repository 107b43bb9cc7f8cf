"""Plain messages passed between stages: sources -> analyzers -> fusion -> sinks.

Timestamps are seconds on the pipeline clock: ``time.monotonic()`` when live, stream
seconds when a file is replayed as fast as possible, so fusion behaves the same either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# scheme://userinfo@ : the userinfo (user:password) of a camera or stream URL.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s'\"]+)@")


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``: an RTSP camera's
    password must never reach the log or a (retained) MQTT topic."""
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}***@", text)


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One BGR frame chosen for analysis (already thinned to the analysis rate)."""

    t: float
    image: np.ndarray
    index: int


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """A block of 16 kHz mono int16 samples; ``t`` is the time of its first sample."""

    t: float
    samples: np.ndarray
    sample_rate: int = 16000


@dataclass(frozen=True, slots=True)
class Observation:
    """One analyzer's verdict: a distribution over canonical labels with a confidence weight."""

    modality: str
    t: float
    probabilities: dict[str, float]
    confidence: float
    extras: dict[str, Any] = field(default_factory=dict)

    def top(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)


@dataclass(frozen=True, slots=True)
class ModalityEstimate:
    """What one modality currently says, after its own time smoothing."""

    modality: str
    emotion: str
    probabilities: dict[str, float]
    weight: float
    age_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "emotion": self.emotion,
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "weight": round(self.weight, 4),
            "age_s": round(self.age_s, 2),
        }


@dataclass(frozen=True, slots=True)
class FusedState:
    """The published emotion estimate. ``emotion`` is ``"unknown"`` while no modality has evidence."""

    t: float
    emotion: str
    confidence: float
    valence: float
    arousal: float
    probabilities: dict[str, float]
    modalities: dict[str, ModalityEstimate]

    def to_json(self) -> dict[str, Any]:
        known = self.emotion != "unknown"  # no evidence: no position either (not the neutral centre)
        return {
            "emotion": self.emotion,
            "confidence": round(self.confidence, 4),
            "valence": round(self.valence, 4) if known else None,
            "arousal": round(self.arousal, 4) if known else None,
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "modalities": {
                name: {
                    "emotion": m.emotion,
                    "weight": round(m.weight, 4),
                    "age_s": round(m.age_s, 2),
                }
                for name, m in self.modalities.items()
            },
        }
