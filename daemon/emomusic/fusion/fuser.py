"""Fusion: turns a stream of per-modality observations into one steady emotion estimate.

Per modality, evidence is an exponentially time-decayed, confidence-weighted mean of its
distributions. Because it is a *mean* (decayed sum of ``c·p`` over decayed sum of ``c``), a face
analysed several times a second does not outvote a voice heard once a second just by its rate;
what weighs a modality is ``reliability × mean confidence × freshness`` with
``freshness = exp(-age / tau)``, and nothing at all once it is older than ``stale_after_s``.
A provisional reading (a voice's first second of an utterance) counts only until that modality's next
reading arrives, which takes its place: an early guess answers at once but is never counted twice.

The published label has hysteresis: a new leader must beat the current label by ``margin``
for ``hold_s`` before it takes over, so the state (and the music following it) does not flap.
Two exceptions: the listener's own word (modality ``listener``, "I feel sad") is obeyed at once, and
so is a new leader ahead by more than ``jump_margin`` (the evidence jumped: a clear change).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from emomusic.config.fusion import FusionConfig
from emomusic.config.modalities import MODALITIES
from emomusic.labels import ALL_LABELS
from emomusic.messages import FusedState, ModalityEstimate, Observation

UNKNOWN = "unknown"
DEFAULT_RELIABILITY = 0.5
_INDEX = {name: i for i, name in enumerate(ALL_LABELS)}


@dataclass
class _Evidence:
    acc: np.ndarray = field(default_factory=lambda: np.zeros(len(ALL_LABELS)))
    conf_sum: float = 0.0  # decayed sum of confidences
    count: float = 0.0  # decayed number of observations
    t: float = -math.inf
    labels: set[str] = field(default_factory=set)
    # a provisional reading and its distribution, until the modality's next reading replaces it
    pending: tuple[Observation, np.ndarray] | None = None

    def fold(self, obs: Observation, vec: np.ndarray, tau: float) -> None:
        """Decay what is held to ``obs.t`` and add ``obs`` with its confidence."""
        if self.t > -math.inf and obs.t > self.t:
            decay = math.exp(-(obs.t - self.t) / tau)
            self.acc *= decay
            self.conf_sum *= decay
            self.count *= decay
        conf = float(obs.confidence)
        self.acc += conf * vec
        self.conf_sum += conf
        self.count += 1.0
        self.t = max(self.t, obs.t)
        self.labels.update(obs.probabilities)

    def settled(self, tau: float) -> _Evidence:
        """This evidence with the pending provisional reading folded in (a copy; itself unchanged)."""
        if self.pending is None:
            return self
        out = _Evidence(self.acc.copy(), self.conf_sum, self.count, self.t, set(self.labels))
        out.fold(*self.pending, tau)
        return out


def observation_vector(obs: Observation) -> np.ndarray:
    """The observation's distribution over ALL_LABELS, validated and normalised."""
    v = np.zeros(len(ALL_LABELS))
    for name, p in obs.probabilities.items():
        if name not in _INDEX:
            raise ValueError(f"unknown label {name!r}")
        if not math.isfinite(p) or p < 0:
            raise ValueError(f"probability of {name!r} must be finite and >= 0, got {p}")
        v[_INDEX[name]] = p
    total = v.sum()
    if total <= 0:
        raise ValueError("probabilities sum to zero")
    return v / total


class Fusion:
    """Keeps per-modality evidence and produces :class:`FusedState` s with hysteresis."""

    def __init__(self, cfg: FusionConfig) -> None:
        self.cfg = cfg
        self._evidence: dict[str, _Evidence] = {}
        self._va = np.array([cfg.circumplex[name] for name in ALL_LABELS], dtype=float)
        self.label = UNKNOWN
        self._candidate: str | None = None
        self._candidate_since = 0.0
        self._told = False  # the listener just said how they feel: no hysteresis for the next update

    def add(self, obs: Observation) -> None:
        """Fold one observation into its modality's evidence (raises ValueError on a bad one)."""
        if not math.isfinite(obs.t):
            raise ValueError("observation time must be finite")
        conf = float(obs.confidence)
        if not math.isfinite(conf) or not 0 <= conf <= 1:
            raise ValueError(f"confidence must be in [0, 1], got {obs.confidence}")
        vec = observation_vector(obs)
        told = obs.modality in MODALITIES and MODALITIES[obs.modality].told
        if told:  # the listener's latest word replaces the one before
            self._evidence.pop(obs.modality, None)
            self._told = True
        ev = self._evidence.setdefault(obs.modality, _Evidence())
        if obs.provisional:  # held beside the evidence until the next reading of the modality replaces it
            ev.pending = obs, vec
            return
        ev.pending = None
        ev.fold(obs, vec, self.cfg.tau(obs.modality))

    def estimates(self, now: float) -> dict[str, ModalityEstimate]:
        """Each live modality's smoothed distribution and its current weight."""
        out: dict[str, ModalityEstimate] = {}
        for name, held in self._evidence.items():
            ev = held.settled(self.cfg.tau(name))
            age = max(0.0, now - ev.t)
            if age > self.cfg.stale_after(name) or ev.conf_sum <= 0:
                continue
            dist = ev.acc / ev.acc.sum()
            mean_conf = ev.conf_sum / ev.count
            reliability = self.cfg.weight(name, DEFAULT_RELIABILITY)
            weight = reliability * mean_conf * math.exp(-age / self.cfg.tau(name))
            probs = {label: float(dist[_INDEX[label]]) for label in ALL_LABELS if label in ev.labels}
            out[name] = ModalityEstimate(
                modality=name,
                emotion=max(probs, key=probs.__getitem__),
                probabilities=probs,
                weight=weight,
                age_s=age,
                provisional=held.pending is not None,
            )
        return out

    def update(self, now: float) -> FusedState:
        """The fused state at ``now``; advances the hysteresis, so call it with non-decreasing times."""
        estimates = self.estimates(now)
        total = sum(e.weight for e in estimates.values())
        if total <= 0:
            self.label, self._candidate = UNKNOWN, None
            return FusedState(now, UNKNOWN, 0.0, 0.0, 0.0, {}, estimates)
        fused = np.zeros(len(ALL_LABELS))
        present: set[str] = set()
        for e in estimates.values():
            for label, p in e.probabilities.items():
                fused[_INDEX[label]] += e.weight * p
            present.update(e.probabilities)
        fused /= total
        probs = {label: float(fused[_INDEX[label]]) for label in ALL_LABELS if label in present}
        self._advance_label(probs, now)
        # Independent modalities: the chance that at least one of them is right about "something".
        strength = 1.0 - math.prod(1.0 - min(1.0, e.weight) for e in estimates.values())
        valence, arousal = (fused @ self._va).tolist()
        return FusedState(
            t=now,
            emotion=self.label,
            confidence=probs[self.label] * strength,
            valence=valence,
            arousal=arousal,
            probabilities=probs,
            modalities=estimates,
        )

    def _advance_label(self, probs: dict[str, float], now: float) -> None:
        leader = max(probs, key=probs.__getitem__)
        told, self._told = self._told, False
        if self.label == UNKNOWN or self.label not in probs or told:
            self.label, self._candidate = leader, None  # nothing to hold on to: react at once
            return
        lead = probs[leader] - probs[self.label]
        if leader == self.label or lead < self.cfg.margin:
            self._candidate = None
            return
        if lead > self.cfg.jump_margin:
            self.label, self._candidate = leader, None
            return
        if self._candidate != leader:
            self._candidate, self._candidate_since = leader, now
        if now - self._candidate_since >= self.cfg.hold_s:
            self.label, self._candidate = leader, None
