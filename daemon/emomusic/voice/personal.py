"""Few-shot personalisation: each "I feel …" teaches the voice head what *this* voice sounds like then.

A statement is paired with the last windows of speech of the voice that spoke most in the seconds
before it (the head's input, standardised by that voice's own baseline) and kept as a labelled example
of that voice. Per voice, a small additive update of the population head (``dw``, ``db``) is fitted to
those examples, with two anchors that keep it bounded:

- every emotion's population centre must still read as that emotion (weight ``ANCHOR``), so a few
  statements cannot re-draw the other emotions;
- the voice's own centre must still read as the population head reads it (weight ``CENTRE``), so a
  listener who only ever says "sad" cannot turn everything they say into sadness.

Measured on voices never trained on (models/README.md, ``train_voice_head.py --feedback``): one statement
per emotion lifts EMOVO from 45 % to 55 %, three to 71 %; a listener who said only "sad" three times
keeps the other emotions' accuracy within about two points. The statements live in
``<state_dir>/voice_personal.json`` (per statement up to ``MAX_WINDOWS`` 1,536-number summaries of
2 s windows and the label; no audio); ``emomusic profile --reset`` removes it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emomusic.listener.store import file_stamp, write_json
from emomusic.runtime import softmax
from emomusic.voice.head import Head, float16_rows, float16_text

log = logging.getLogger("emomusic.voice")

PERSONAL_FILE = "voice_personal.json"
PAIR_WINDOW_S = 20.0  # a statement pairs with this voice's speech of this many seconds before it
MAX_PER_LABEL = 5  # statements kept per voice and emotion, the newest
MAX_WINDOWS = 4  # a statement pairs with this many of the voice's latest windows (about 5 s of speech)
ANCHOR = 1.0  # weight of each emotion's population centre (in examples)
CENTRE = 4.0  # weight of the voice's own centre, read as the population head reads it
STEPS = 300
RATE = 0.05
STABLE = 8.0
L2 = 1.0
STATE_VERSION = 2  # 2: the encoder's top layer at 20 ms steps; statements summarised by the earlier one do not fit


@dataclass
class Update:
    """One voice's additive correction of the head's logits."""

    dw: np.ndarray
    db: np.ndarray

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return z @ self.dw.T + self.db


def fit_update(head: Head, z: np.ndarray, y: np.ndarray, centre: np.ndarray, weights: np.ndarray | None = None,
               rate: float | None = None) -> Update:
    """The bounded update that reads windows ``z`` (n, dim) as labels ``y`` (n,) (``weights``: a
    statement's windows share one example's weight), keeping each emotion's population centre and the
    voice's ``centre`` where the population head puts them.

    ``STEPS`` of gradient descent on the weighted cross-entropy from no update, with long steps, stopped
    early: each step adds the windows the head still reads wrongly to their emotion's weights (a
    prototype-like correction). Solved to its exact optimum instead, the update fitted the few examples
    too closely and generalised worse (EMOVO, 3 statements per emotion: 55 % instead of 66 %); with
    steps past ``STABLE`` times the stable length, a statement made in the voice's everyday tone
    oscillated to a third emotion instead of settling between the statement and the centre."""
    rate = RATE if rate is None else rate
    k = head.b.shape[0]
    told = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64)
    have = [c for c in range(k) if np.any(head.class_means[c])]
    xs = np.vstack([z, head.class_means[have], centre[None]]).astype(np.float64)
    target = np.vstack([np.eye(k)[y], np.eye(k)[have], softmax(head.logits(centre[None]))])
    weight = np.concatenate([told, np.full(len(have), ANCHOR), [CENTRE]])[:, None]
    base = head.logits(xs)
    # the step: RATE / n, n at least one per emotion, but never so far that it overshoots (the gradient's
    # Lipschitz bound times STABLE)
    n = max(float(told.sum()), k)
    step = min(rate / n, STABLE / (0.5 * float((xs * xs).sum(1).max() + 1.0) * float(weight.sum())))
    dw, db = np.zeros((k, xs.shape[1])), np.zeros(k)
    for _ in range(STEPS):
        g = (softmax(base + xs @ dw.T + db) - target) * weight
        dw -= step * (g.T @ xs + L2 * dw)
        db -= step * (g.sum(0) + L2 * db)
    return Update(dw.astype(np.float32), db.astype(np.float32))


def fit_statements(head: Head, statements: list[tuple[int, np.ndarray]], centre: np.ndarray) -> Update:
    """``fit_update`` on statements: (label, that statement's windows (m, dim)), each worth one example."""
    z = np.vstack([x for _, x in statements])
    y = np.concatenate([np.full(len(x), label) for label, x in statements])
    w = np.concatenate([np.full(len(x), 1.0 / len(x)) for _, x in statements])
    return fit_update(head, z, y, centre, w)


@dataclass
class VoiceExamples:
    """What one voice's listener said they felt: (label index, the windows before the statement)."""

    statements: list[tuple[int, np.ndarray]] = field(default_factory=list)
    update: Update | None = None

    def add(self, label: int, windows: np.ndarray) -> None:
        self.statements.append((label, windows.astype(np.float32)))
        mine = [i for i, (lab, _) in enumerate(self.statements) if lab == label]
        for i in reversed(mine[:-MAX_PER_LABEL]):  # the oldest of this emotion beyond the cap
            del self.statements[i]


class Personaliser:
    """Per-voice updates from the listener's statements. Only the analyzer's own thread calls it."""

    def __init__(self, head: Head, labels: tuple[str, ...], path: Path | None = None) -> None:
        self.head, self.labels, self.path = head, labels, path
        self.dim = head.dim
        self.voices: dict[int, VoiceExamples] = {}
        # (stream time, voice, its windows (m, dim), their weights): what was said lately
        self.recent: deque[tuple[float, int, np.ndarray, np.ndarray]] = deque(maxlen=32)
        self._centres: dict[int, np.ndarray] = {}  # each voice's own centre (its standardised mean)
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self.load()

    def adjust(self, z: np.ndarray, voices: list[int | None]) -> np.ndarray:
        """Added to the head's logits for windows ``z`` (n, dim) of ``voices`` (0 for voices untaught)."""
        out = np.zeros((len(z), len(self.labels)), np.float32)
        for i, v in enumerate(voices):
            ex = self.voices.get(v) if v is not None else None
            if ex is not None and ex.update is not None:
                out[i] = ex.update(z[i])
        return out

    def note(self, t: float, voice: int, z: np.ndarray, weights: np.ndarray, centre: np.ndarray) -> None:
        """Windows ``z`` (m, dim) of ``voice`` ending at stream time ``t``, for a statement to come."""
        self.recent.append((t, voice, z.astype(np.float32), np.maximum(weights, 1e-3)))
        self._centres[voice] = centre.astype(np.float32)
        if time.monotonic() - self._checked > 2.0:  # a reset while running is noticed within seconds
            self.refresh()

    def teach(self, label: str, t: float) -> tuple[int, int] | None:
        """The listener said they feel ``label`` at ``t``: the voice that spoke most in the seconds before
        learns its last windows as that emotion. Returns (voice, statements of that voice kept), or None
        when nobody spoke."""
        if label not in self.labels:
            return None
        self.refresh()
        rows = [r for r in self.recent if t - PAIR_WINDOW_S <= r[0] <= t + 1.0]
        if not rows:
            return None
        spoke: dict[int, float] = {}
        for _, v, _, w in rows:
            spoke[v] = spoke.get(v, 0.0) + float(w.sum())
        voice = max(spoke, key=lambda v: spoke[v])
        windows = np.vstack([z for _, v, z, _ in rows if v == voice])[-MAX_WINDOWS:]  # the latest
        ex = self.voices.setdefault(voice, VoiceExamples())
        ex.add(self.labels.index(label), windows)
        self._refit(voice)
        self.save()
        return voice, len(ex.statements)

    def _refit(self, voice: int) -> None:
        ex = self.voices[voice]
        centre = self._centres.get(voice)
        ex.update = fit_statements(self.head, ex.statements, np.zeros(self.dim) if centre is None else centre)

    def keep_only(self, voices: set[int]) -> None:
        """Forget the statements of voices the adapter forgot."""
        for v in [v for v in self.voices if v not in voices]:
            del self.voices[v]

    # -- persistence ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Removed by ``emomusic profile --reset`` while running: forget what was told."""
        self._checked = time.monotonic()
        if self.path is not None and self._stamp is not None and file_stamp(self.path) is None:
            log.info("voice personalisation: %s removed, what the listener told is forgotten", self.path)
            self.voices.clear()
            self._stamp = None

    def save(self) -> None:
        if self.path is None:
            return
        state = {"version": STATE_VERSION, "labels": list(self.labels), "dim": self.dim,
                 "voices": {str(v): {"statements": [{"label": self.labels[lab], "windows": float16_text(x)}
                                                    for lab, x in ex.statements],
                                     "centre": float16_text(self._centres.get(v, np.zeros(self.dim)))}
                            for v, ex in self.voices.items()}}
        try:
            write_json(self.path, state)
            self._stamp = file_stamp(self.path)
        except OSError as e:
            log.warning("voice personalisation %s not saved (%s); kept in memory", self.path, e.strerror)

    def load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            state = json.loads(self.path.read_text())
            if state.get("version") != STATE_VERSION or state.get("dim") != self.dim:
                raise ValueError("written by another version")
            voices: dict[int, VoiceExamples] = {}
            for key, v in state["voices"].items():
                voices[int(key)] = VoiceExamples([(self.labels.index(s["label"]), float16_rows(s["windows"], self.dim))
                                                  for s in v["statements"]])
                self._centres[int(key)] = float16_rows(v["centre"], self.dim)[0]
            self.voices = voices
            for voice in voices:
                self._refit(voice)
            self._stamp = file_stamp(self.path)
            log.info("voice personalisation: %d voices' statements restored from %s", len(voices), self.path)
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("voice personalisation %s unusable (%s); starting afresh", self.path, e)
            self.voices = {}
