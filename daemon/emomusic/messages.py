"""Plain messages passed between stages (sources -> analyzers -> fusion -> publishers), and the
Publisher port everything the daemon tells the world goes through.

Timestamps are seconds on the pipeline clock: ``time.monotonic()`` when live, stream
seconds when a file is replayed as fast as possible, so fusion behaves the same either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

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


Sensed = VideoFrame | AudioChunk  # what a source hands its analyzers


@dataclass(frozen=True, slots=True)
class Observation:
    """One analyzer's verdict: a distribution over canonical labels with a confidence weight."""

    modality: str
    t: float
    probabilities: dict[str, float]
    confidence: float
    extras: dict[str, Any] = field(default_factory=dict)
    # a first reading that the modality's next one replaces in fusion (a voice's first second of speech)
    provisional: bool = False

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
    provisional: bool = False  # it holds a first reading its next one will replace (a voice's first second)

    def to_json(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "emotion": self.emotion,
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "weight": round(self.weight, 4),
            "age_s": round(self.age_s, 2),
            "provisional": self.provisional,
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
            "modalities": {  # each modality's estimate without its name and probabilities
                name: {k: v for k, v in m.to_json().items() if k not in ("modality", "probabilities")}
                for name, m in self.modalities.items()
            },
        }


@dataclass(frozen=True, slots=True)
class QueuedTrack:
    title: str
    artist: str
    valence: float
    arousal: float


@dataclass(frozen=True, slots=True)
class PlayerStatus:
    """What the music stage is doing, as the world may know it (``…/player``, the page)."""

    state: str  # playing | paused | idle | error
    title: str | None
    artist: str | None
    track_valence: float | None
    track_arousal: float | None
    placement: str | None
    mode: str
    fixed_mood: str
    volume: int
    target: tuple[float, float] | None
    error: str | None
    upcoming: tuple[QueuedTrack, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "title": self.title, "artist": self.artist, "track_valence": self.track_valence,
                "track_arousal": self.track_arousal, "placement": self.placement, "queue": len(self.upcoming),
                "mode": self.mode, "fixed_mood": self.fixed_mood, "volume": self.volume,
                "target": list(self.target) if self.target else None, "error": self.error}


class Publisher(Protocol):
    """Everything the daemon tells the world. MQTT, the page and the log are equal implementations,
    wired in one place (``service.daemon``); a new one is a class with these methods and one line there."""

    def on_state(self, state: FusedState) -> None:
        """Every fused state."""

    def on_modality_status(self, modality: str, status: str, detail: str) -> None:
        """A modality's source or analyzer changed health (running, stalled, failed, disabled …)."""

    def on_player(self, status: PlayerStatus) -> None:
        """The music stage's status changed."""

    def on_controls(self, mode: str, volume: int, mood: str) -> None:
        """The user's controls, at start and after each change."""

    def on_fault(self, part: str, error: str) -> None:
        """A part stopped working and a person must know (a modality disabled, the music stage)."""

    def on_refusal(self, topic: str, error: str) -> None:
        """A valid command that cannot act now, and why (``topic``: the command topic, e.g. player/set)."""


class Quiet:
    """A publisher that says nothing: subclasses override what they care about."""

    def on_state(self, state: FusedState) -> None:
        pass

    def on_modality_status(self, modality: str, status: str, detail: str) -> None:
        pass

    def on_player(self, status: PlayerStatus) -> None:
        pass

    def on_controls(self, mode: str, volume: int, mood: str) -> None:
        pass

    def on_fault(self, part: str, error: str) -> None:
        pass

    def on_refusal(self, topic: str, error: str) -> None:
        pass
