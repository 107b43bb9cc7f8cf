"""On-device speaker adaptation: each voice's own baseline, learned without labels, kept as statistics.

A person's neutral voice can sound sad or tense to a model that only knows other people. The head
therefore reads the voice embedding *relative to the speaker*: standardised by that voice's running
mean and variance. Voices are told apart by the same embedding (it comes from a speaker encoder):
a window joins the voice whose centroid is nearest by cosine if it is close enough, else it starts a
new one (at most ``MAX_VOICES``; the least recently heard is forgotten).

Safeguards: the voice's statistics are shrunk toward the population's (a prior worth
``PRIOR_WEIGHT`` windows), so a new voice starts exactly as the unadapted model does (cold start is
no worse than before); the effective count is capped (``MAX_WEIGHT``: old speech decays, a voice can
change); and the mean may move at most ``MAX_SHIFT`` population standard deviations per dimension,
so a speaker heard only while angry cannot turn anger into their "neutral".

``standardise`` is the one function used in training (per training speaker), evaluation and the
daemon. The state file holds only counts, means and variances: no audio, no embedding of a window.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emomusic.listener.store import write_json

log = logging.getLogger("emomusic.voice")

PRIOR_WEIGHT = 30.0  # windows: the population's statistics count as this much speech
MAX_WEIGHT = 600.0  # windows: older speech decays beyond this (about ten minutes of talk)
MAX_SHIFT = 1.0  # population standard deviations a voice's mean may move, per dimension
MIN_VAR_RATIO = 0.25  # a voice's variance may not shrink below this share of the population's
SAME_VOICE = 0.7  # cosine to a voice's centroid above which a window is that voice (models/README.md)
MAX_VOICES = 8
STATE_VERSION = 2  # 2: the encoder's top layer at 20 ms steps; statistics of the earlier encoder do not carry over


@dataclass(eq=False)  # a voice is itself: comparing its arrays field by field has no single truth value
class VoiceStats:
    """Exponentially weighted statistics of one voice's embeddings."""

    weight: float
    mean: np.ndarray
    var: np.ndarray
    centroid: np.ndarray  # unit speaker embedding: which voice this is
    last_heard: float
    id: int = 0  # stable while the voice is kept (what the listener told is kept per voice: voice/personal.py)

    def add(self, x: np.ndarray, who: np.ndarray, now: float) -> None:
        w = min(self.weight, MAX_WEIGHT - 1.0)  # beyond MAX_WEIGHT each window replaces a share of the past
        new = w + 1.0
        delta = x - self.mean
        self.mean = self.mean + delta / new
        self.var = (w * self.var + delta * (x - self.mean)) / new
        c = self.centroid * w + who / max(float(np.linalg.norm(who)), 1e-9)
        self.centroid = c / max(float(np.linalg.norm(c)), 1e-9)
        self.weight = new
        self.last_heard = now


def standardise(x: np.ndarray, prior_mean: np.ndarray, prior_var: np.ndarray, weight: float = 0.0,
                mean: np.ndarray | None = None, var: np.ndarray | None = None) -> np.ndarray:
    """Embeddings (n, d) standardised by a voice's statistics shrunk toward the population's prior.

    With ``weight`` 0 (a voice never heard) this is plain population standardisation."""
    if weight <= 0 or mean is None or var is None:
        mu, v = prior_mean, prior_var
    else:
        k = PRIOR_WEIGHT
        mu = (weight * mean + k * prior_mean) / (weight + k)
        v = (weight * var + k * prior_var) / (weight + k)
        sd = np.sqrt(prior_var)
        mu = np.clip(mu, prior_mean - MAX_SHIFT * sd, prior_mean + MAX_SHIFT * sd)
        v = np.maximum(v, MIN_VAR_RATIO * prior_var)
    return ((x - mu) / np.sqrt(v)).astype(np.float32)


class SpeakerAdapter:
    """Voices heard so far and their statistics; persisted to ``path`` (JSON) if given."""

    def __init__(self, prior_mean: np.ndarray, prior_var: np.ndarray, path: Path | None = None) -> None:
        self.prior_mean, self.prior_var = prior_mean.astype(np.float64), prior_var.astype(np.float64)
        self.path = path
        self.voices: list[VoiceStats] = []
        self.next_id = 1  # a forgotten voice's id is not given to a new one (its statements are its own)
        self._dirty = 0
        if path is not None:
            self.load()

    def voice_of(self, who: np.ndarray) -> int | None:
        """Index of the voice a speaker embedding belongs to, or None for a new one."""
        if not self.voices:
            return None
        u = who / max(float(np.linalg.norm(who)), 1e-9)
        sims = [float(v.centroid @ u) for v in self.voices]
        best = int(np.argmax(sims))
        return best if sims[best] >= SAME_VOICE else None

    def transform(self, x: np.ndarray, who: np.ndarray) -> tuple[np.ndarray, float]:
        """Features of windows (n, d) standardised by their voices (speaker embeddings ``who``), and
        how far adaptation has got for them (0 = a new voice .. 1)."""
        out = np.empty_like(x, dtype=np.float32)
        adapted = []
        for i, (e, w) in enumerate(zip(x, who, strict=True)):
            k = self.voice_of(w)
            if k is None:
                out[i] = standardise(e[None], self.prior_mean, self.prior_var)[0]
                adapted.append(0.0)
            else:
                v = self.voices[k]
                out[i] = standardise(e[None], self.prior_mean, self.prior_var, v.weight, v.mean, v.var)[0]
                adapted.append(v.weight / (v.weight + PRIOR_WEIGHT))
        return out, float(np.mean(adapted)) if adapted else 0.0

    def update(self, x: np.ndarray, who: np.ndarray, now: float | None = None) -> list[int]:
        """Learn from windows of speech: features ``x`` (n, d), each joining its voice (or starting one).
        Returns each window's voice id."""
        now = time.time() if now is None else now
        ids = []
        for e, w in zip(np.asarray(x, dtype=np.float64), who, strict=True):
            k = self.voice_of(w)
            if k is None:
                if len(self.voices) >= MAX_VOICES:
                    del self.voices[min(range(len(self.voices)), key=lambda i: self.voices[i].last_heard)]
                u = w / max(float(np.linalg.norm(w)), 1e-9)
                self.next_id = max([self.next_id, *(v.id + 1 for v in self.voices)])  # never reused
                self.voices.append(VoiceStats(1.0, e.copy(), self.prior_var.copy(), u.astype(np.float64), now,
                                              self.next_id))
                ids.append(self.next_id)
                self.next_id += 1
            else:
                self.voices[k].add(e, w, now)
                ids.append(self.voices[k].id)
        self._dirty += len(x)
        if self.path is not None and self._dirty >= 20:
            self.save()
        return ids

    def centre(self, voice_id: int) -> np.ndarray | None:
        """A voice's own mean, standardised as its speech is: where its everyday voice sits for the head."""
        for v in self.voices:
            if v.id == voice_id:
                return standardise(v.mean[None], self.prior_mean, self.prior_var, v.weight, v.mean, v.var)[0]
        return None

    # -- persistence: statistics only ---------------------------------------------------------------
    def save(self) -> None:
        if self.path is None:
            return
        state = {"version": STATE_VERSION, "dim": int(self.prior_mean.size), "next_id": self.next_id, "voices": [
            {"weight": round(v.weight, 3), "mean": v.mean.round(6).tolist(), "var": v.var.round(6).tolist(),
             "centroid": v.centroid.round(6).tolist(), "last_heard": round(v.last_heard, 1), "id": v.id}
            for v in self.voices]}
        try:
            write_json(self.path, state)
            self._dirty = 0
        except OSError as e:
            log.warning("voice adaptation state %s not saved (%s); kept in memory", self.path, e.strerror)

    def load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            state = json.loads(self.path.read_text())
            if state.get("version") != STATE_VERSION or state.get("dim") != self.prior_mean.size:
                raise ValueError("written by another version")
            self.voices = [VoiceStats(float(v["weight"]), np.array(v["mean"]), np.array(v["var"]),
                                      np.array(v["centroid"]), float(v["last_heard"]), int(v.get("id", i + 1)))
                           for i, v in enumerate(state["voices"])]  # files before ids: numbered in order
            self.next_id = int(state.get("next_id", max((v.id + 1 for v in self.voices), default=1)))
            log.info("voice adaptation: %d voices restored from %s", len(self.voices), self.path)
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("voice adaptation state %s unusable (%s); starting afresh", self.path, e)
            self.voices = []
